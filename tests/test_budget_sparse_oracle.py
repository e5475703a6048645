"""`t5peek budget` against measurement for the encoders that do not attend every token to every token (issue #24):
LongT5 local and transient-global, LED, BigBird-Pegasus and PEGASUS-X pad the source to whole blocks or windows and
compute their own patterns, so a short source costs far more than full attention over it would. FLOPs equal
FlopCounterMode exactly, saved activations are within 5% of saved_tensors_hooks, at sources that are short, on a
block boundary and between boundaries (BigBird both below its block-sparse threshold of 36 tokens and above it).
Switch Transformers' router products are counted too."""

from __future__ import annotations

import pytest

from support import budget_measure as measure
from t5peek.api import Model

pytestmark = pytest.mark.slow  # every case loads a tiny model and runs it under FlopCounterMode or saved_tensors_hooks

SPARSE = ["longt5-local", "longt5-tglobal", "led", "bigbird", "pegasus_x"]
SOURCES = [1, 5, 12, 13, 41]  # blocks and windows of 4 tokens; BigBird runs block-sparse above 36
BATCH, TARGET = 2, 3


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    import families

    root = tmp_path_factory.mktemp("sparse-models")
    builders = {"longt5-local": families.build_longt5_local, "longt5-tglobal": families.build_longt5_tglobal,
                "led": families.build_led, "bigbird": families.build_bigbird_pegasus,
                "pegasus_x": families.build_pegasus_x, "switch": families.build_switch}
    return {name: build(root / name) for name, build in builders.items()}


def _budget(folder, source, mode="generate", **kwargs):
    return Model(str(folder)).budget(batch=BATCH, source=source, target=TARGET, mode=mode, **kwargs)


def _encoder_flops(folder, source) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    model = measure.load(folder)  # fresh: BigBird switches a model to full attention for good after a short source
    model.requires_grad_(False)
    with FlopCounterMode(display=False) as counter:
        model.get_encoder()(input_ids=measure._ids(model, BATCH, source))
    return counter.get_total_flops()


@pytest.mark.parametrize("name", SPARSE)
@pytest.mark.parametrize("source", SOURCES)
def test_encoder_and_generate_flops_equal_flop_counter(folders, name, source):
    report = _budget(folders[name], source)
    assert report.row("encoder_flops").flops == _encoder_flops(folders[name], source)
    real = measure.generate_flops(measure.load(folders[name]), BATCH, source, TARGET, 1)
    assert report.row("generate_flops").flops == real


@pytest.mark.parametrize("name", [*SPARSE, "switch"])
@pytest.mark.parametrize("source", [5, 41])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_training_flops_equal_flop_counter(folders, name, source, checkpointing):
    """Backward skips what needs no gradient (LongT5's one-hot block sums, PEGASUS-X's last global tokens);
    checkpointing does not run a pre-norm block's last projection again."""
    forward, step = measure.training_flops(measure.load(folders[name]), BATCH, source, TARGET, checkpointing)
    report = _budget(folders[name], source, mode="train", gradient_checkpointing=checkpointing)
    assert (report.row("forward_flops").flops, report.row("training_step_flops").flops) == (forward, step)


@pytest.mark.parametrize("name", SPARSE)
@pytest.mark.parametrize("source", SOURCES)
def test_saved_activations_match_saved_tensors_hooks(folders, name, source):
    real = measure.saved_bytes(measure.load(folders[name]), BATCH, source, TARGET)
    predicted = _budget(folders[name], source, mode="train").row("saved_total").bytes
    assert abs(predicted - real) <= 0.05 * real, (predicted, real)


@pytest.mark.parametrize("name,source", [("longt5-local", 5), ("longt5-tglobal", 41), ("pegasus_x", 5),
                                         ("pegasus_x", 41), ("bigbird", 12)])
def test_checkpointed_saved_activations_match_saved_tensors_hooks(folders, name, source):
    real = measure.saved_bytes(measure.load(folders[name]), BATCH, source, TARGET, checkpointing=True)
    report = _budget(folders[name], source, mode="train", gradient_checkpointing=True)
    assert abs(report.row("saved_total").bytes - real) <= 0.10 * real, (report.row("saved_total").bytes, real)


@pytest.mark.parametrize("name", SPARSE)
def test_caches_hold_the_unpadded_source(folders, name):
    """The encoders pad inside, and slice the padding off their output: the cross-attention cache is the source's."""
    own, cross = measure.cache_bytes(measure.load(folders[name]), BATCH, 13, TARGET, 1)
    report = _budget(folders[name], 13)
    assert (report.row("self_attention_cache").bytes, report.row("cross_attention_cache").bytes) == (own, cross)


@pytest.mark.parametrize("source", [5, 41])
def test_switch_generate_flops_count_the_router(folders, source):
    real = measure.generate_flops(measure.load(folders["switch"]), BATCH, source, TARGET, 1)
    assert _budget(folders["switch"], source).row("generate_flops").flops == real
