"""`t5peek budget` against measurement on tiny checkpoints (T5, flan-t5 style, BART, Marian, the demo), three shapes
each: cache bytes exactly, FLOPs within 2% of FlopCounterMode, saved activations within 10% of what
saved_tensors_hooks sees, gradients and optimizer state exactly; on a GPU, the peaks within 15%."""

from __future__ import annotations

import pytest

from support import budget_measure as measure
from t5peek.api import Model
from t5peek.loading import DEMO_FOLDER

pytestmark = pytest.mark.slow  # budget against measured memory, FLOPs and a real optimizer step

SHAPES = [(1, 7, 5, 1), (2, 16, 9, 3), (3, 11, 4, 2)]  # batch, source, target, beams
MODELS = ["t5", "flan-t5", "bart", "marian", "demo"]


@pytest.fixture(scope="module")
def folders(tiny_t5, tiny_t5_untied, tiny_bart, tmp_path_factory):
    from families import build_marian

    marian = build_marian(tmp_path_factory.mktemp("models") / "tiny-marian")
    return {"t5": tiny_t5, "flan-t5": tiny_t5_untied, "bart": tiny_bart, "marian": marian, "demo": DEMO_FOLDER}


def _budget(folder, batch, source, target, beams=1, mode="generate", **kwargs):
    return Model(str(folder)).budget(batch=batch, source=source, target=target, num_beams=beams, mode=mode,
                                     **kwargs)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch,source,target,beams", SHAPES)
def test_cache_bytes_equal_the_real_caches_after_generate(folders, name, batch, source, target, beams):
    own, cross = measure.cache_bytes(measure.load(folders[name]), batch, source, target, beams)
    report = _budget(folders[name], batch, source, target, beams)
    assert report.row("self_attention_cache").bytes == own
    assert report.row("cross_attention_cache").bytes == cross
    assert report.row("self_attention_cache_per_token").bytes * target == own


def _close(predicted: int, real: int, tolerance: float) -> bool:
    return abs(predicted - real) <= tolerance * real


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch,source,target,beams", SHAPES)
def test_generate_flops_match_flop_counter(folders, name, batch, source, target, beams):
    real = measure.generate_flops(measure.load(folders[name]), batch, source, target, beams)
    predicted = _budget(folders[name], batch, source, target, beams).row("generate_flops").flops
    assert _close(predicted, real, 0.02), (predicted, real)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch,source,target,beams", SHAPES)
@pytest.mark.parametrize("checkpointing", [False, True])
def test_training_flops_match_flop_counter(folders, name, batch, source, target, beams, checkpointing):
    forward, step = measure.training_flops(measure.load(folders[name]), batch, source, target, checkpointing)
    report = _budget(folders[name], batch, source, target, mode="train", gradient_checkpointing=checkpointing)
    assert _close(report.row("forward_flops").flops, forward, 0.02)
    assert _close(report.row("training_step_flops").flops, step, 0.02)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch,source,target,beams", SHAPES)
@pytest.mark.parametrize("checkpointing", [False, True])
def test_saved_activations_match_saved_tensors_hooks(folders, name, batch, source, target, beams, checkpointing):
    real = measure.saved_bytes(measure.load(folders[name]), batch, source, target, checkpointing)
    report = _budget(folders[name], batch, source, target, mode="train", gradient_checkpointing=checkpointing)
    assert _close(report.row("saved_total").bytes, real, 0.10), (report.row("saved_total").bytes, real)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("optimizer", ["adamw", "adafactor", "sgd"])
def test_gradients_and_optimizer_state_equal_the_real_ones(folders, name, optimizer):
    gradients, state = measure.optimizer_state_bytes(measure.load(folders[name]), optimizer)
    report = _budget(folders[name], 2, 5, 4, mode="train", optimizer=optimizer)
    assert report.row("gradients").bytes == gradients
    assert report.row("optimizer_state").bytes == state


def test_dropout_changes_the_prediction_as_it_changes_the_measurement(folders):
    """The tiny T5 trains with dropout 0.1; the demo with none: masks and dropped copies are counted only there."""
    for name in ("t5", "demo"):
        real = measure.saved_bytes(measure.load(folders[name]), 2, 16, 9)
        assert _close(_budget(folders[name], 2, 16, 9, mode="train").row("saved_total").bytes, real, 0.01)


@pytest.mark.device
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("mode", ["generate", "train"])
def test_predicted_peak_is_within_15_percent_of_cuda_max_memory_allocated(folders, dtype, mode):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    batch, source, target = 8, 256, 64
    real = measure.cuda_peak(DEMO_FOLDER, dtype, mode, batch, source, target)
    report = Model("demo", dtype=dtype).budget(batch=batch, source=source, target=target, mode=mode,
                                                device="cuda")
    assert _close(report.needed_bytes, real, 0.15), (report.needed_bytes, real)
