"""`t5peek attend`: one head recomputed from the module's weights, checked against transformers itself.

The oracle is an independent run of the same checkpoint: `output_attentions=True` over the decoder input the report
gives (teacher forcing, no cache), a pre-hook on the real output projection for the head's output, the real output
projection applied to that head alone for its contribution, the model's own argmax for the greedy tokens, and
`compute_bias` / `_relative_position_bucket` for T5's position bias. Then a few runs of the installed script.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from families import FAMILIES, by_name
from helpers import assert_known_outcome, run_t5peek

import t5peek
from t5peek import families as family_table
from t5peek.attend.heads import relative_buckets
from t5peek.attend.records import AttendReport, AttentionKind
from t5peek.errors import UnsupportedModel, UsageError

PROMPT = "translate English to German : the red house is small"
DEMO_PROMPT = "translate English to Spanish: the red house is small"
TOLERANCE = 1e-5


# ----------------------------------------------------------------------------- the oracle


def _oracle(folder, report: AttendReport) -> dict:
    """The same head in an independent forward pass: weights, head output, contribution, greedy tokens, T5 bias."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    source = folder if folder != "demo" else Path(t5peek.__file__).parent / "demo"
    model = AutoModelForSeq2SeqLM.from_pretrained(source, attn_implementation="eager").eval()
    input_ids = AutoTokenizer.from_pretrained(source)(report.prompt, return_tensors="pt")["input_ids"]
    assert tuple(input_ids[0].tolist()) == report.source_ids
    modules = dict(model.named_modules())
    attention = modules[report.module]
    projection = attention.o if hasattr(attention, "o") else attention.out_proj
    kept = {}
    handle = projection.register_forward_pre_hook(lambda _module, args: kept.setdefault("input", args[0]))
    decoder_ids = torch.tensor([list(report.decoder_ids or (model.config.decoder_start_token_id,))])
    with torch.no_grad():
        output = model(input_ids=input_ids, decoder_input_ids=decoder_ids, output_attentions=True)
    handle.remove()
    attentions = {AttentionKind.ENCODER_SELF: output.encoder_attentions, AttentionKind.DECODER_SELF:
                  output.decoder_attentions, AttentionKind.CROSS: output.cross_attentions}[report.kind]
    row, (start, stop) = report.query_position, report.output_columns
    head_output = kept["input"][0, row, start:stop]
    alone = torch.zeros(projection.in_features)
    alone[start:stop] = head_output
    with torch.no_grad():
        contribution = projection(alone) - projection(torch.zeros_like(alone))
        found = dict(weights=attentions[report.layer][0, report.head, row], head_output=head_output,
                     contribution=contribution, greedy=output.logits[0].argmax(-1).tolist())
        if report.buckets is not None:
            stack = model.get_encoder() if report.kind is AttentionKind.ENCODER_SELF else model.get_decoder()
            owner = attention if attention.has_relative_attention_bias else stack.block[0].layer[0].SelfAttention
            count = len(report.keys)
            found["bias"] = owner.compute_bias(count, count)[0, report.head, row]
    return found


def _max_diff(values, expected) -> float:
    import torch

    return float((torch.tensor(values, dtype=torch.float32) - expected.float()).abs().max())


def check_against_oracle(folder, report: AttendReport) -> None:
    oracle = _oracle(folder, report)
    weights = [key.weight for key in report.keys]
    assert _max_diff(weights, oracle["weights"]) <= TOLERANCE
    assert abs(sum(weights) - 1) <= TOLERANCE
    scale = max(1.0, float(oracle["head_output"].abs().max()))
    assert _max_diff(report.head_output, oracle["head_output"]) <= TOLERANCE * scale
    scale = max(1.0, float(oracle["contribution"].abs().max()))
    assert _max_diff(report.contribution, oracle["contribution"]) <= TOLERANCE * scale
    assert report.check.weights_max_abs_diff <= TOLERANCE
    if report.kind is not AttentionKind.ENCODER_SELF:
        greedy = oracle["greedy"]
        assert list(report.decoder_ids[1:]) == greedy[:report.step] and report.next_id == greedy[report.step]
    if report.buckets is not None:
        assert _max_diff([key.bias for key in report.keys], oracle["bias"]) <= TOLERANCE
    else:
        assert all(key.bias == 0 and key.bucket is None for key in report.keys)
    for key in report.keys:  # the score is the sum of its parts
        assert abs(key.score - (key.scaled + key.bias + key.mask)) <= 1e-4 * max(1.0, abs(key.score))
        assert abs(key.scaled - key.dot * report.scaling) <= 1e-4 * max(1.0, abs(key.dot))


VIEWS = (dict(encoder=True, query=3, layer=0, head=1), dict(encoder=True, head=3), dict(cross=False, step=2, head=2),
         dict(cross=False, step=0, layer=0), dict(step=1, head=3, layer=0), dict(step=4), dict())
MAIN_FAMILIES = ("t5 (v1.0)", "t5 v1.1 / flan-t5", "bart", "marian")


@pytest.fixture(scope="module")
def main_families(tmp_path_factory) -> dict[str, str]:
    """T5, flan-t5 style (gated, untied), BART and Marian, seeded so that greedy decoding runs 5 tokens."""
    root = tmp_path_factory.mktemp("attend-families")
    return {name: str(by_name(name).make(root / by_name(name).slug)) for name in MAIN_FAMILIES}


@pytest.mark.parametrize("name", MAIN_FAMILIES)
def test_every_view_equals_transformers(main_families, name):
    model = t5peek.Model(main_families[name])
    for view in VIEWS:
        check_against_oracle(main_families[name], model.attend(PROMPT, **view))


@pytest.mark.parametrize("fixture", ["tiny_t5", "tiny_t5_untied", "tiny_bart", "tiny_t5_asym"])
def test_the_fixture_models_equal_transformers(fixture, request):
    folder = str(request.getfixturevalue(fixture))
    model = t5peek.Model(folder)
    for view in (dict(encoder=True, query=2, head=1), dict(cross=False, head=2), dict(layer=0, head=3)):
        check_against_oracle(folder, model.attend(PROMPT, **view))


def test_the_demo_equals_transformers():
    model = t5peek.Model("demo")
    for view in (dict(), dict(step=1, head=3), dict(cross=False, step=3, layer=1, head=7),
                 dict(encoder=True, query=7, layer=1, head=5)):
        report = model.attend(DEMO_PROMPT, **view)
        check_against_oracle("demo", report)
    assert report.keys[report.query_position].bucket == 0 and report.bidirectional is True


SUPPORTED = [family for family in FAMILIES if family_table.family(family.model_type).attend_supported]


@pytest.mark.slow
@pytest.mark.parametrize("family", SUPPORTED, ids=lambda family: family.slug)
def test_every_supported_family_equals_transformers(family, tmp_path):
    folder = str(family.make(tmp_path / family.slug))
    model = t5peek.Model(folder)
    for view in (dict(encoder=True, query=2, head=1), dict(cross=False, step=1, head=2), dict(step=1, layer=0)):
        check_against_oracle(folder, model.attend(PROMPT, **view))


def test_marian_and_untied_t5_are_covered():
    names = {family.model_type for family in SUPPORTED}
    assert {"t5", "mt5", "umt5", "bart", "mbart", "marian"} <= names
    assert by_name("t5 v1.1 / flan-t5") in SUPPORTED


@pytest.mark.parametrize("family", [f for f in FAMILIES if not family_table.family(f.model_type).attend_supported],
                         ids=lambda family: family.slug)
def test_other_families_are_refused_in_one_line(family, tmp_path):
    folder = str(family.make(tmp_path / family.slug))
    with pytest.raises(UnsupportedModel) as refused:
        t5peek.Model(folder).attend(PROMPT)
    assert refused.value.exit_code == 2 and "\n" not in refused.value.message
    assert f"does not support {family.model_type} models" in refused.value.message


# ----------------------------------------------------------------------------- the pieces


@pytest.mark.parametrize("buckets, max_distance", [(32, 128), (8, 16), (32, 64), (16, 20)])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_buckets_match_transformers(buckets, max_distance, bidirectional):
    import torch
    from transformers.models.t5.modeling_t5 import T5Attention

    relative = torch.arange(-400, 401)
    expected = T5Attention._relative_position_bucket(relative, bidirectional=bidirectional, num_buckets=buckets,
                                                     max_distance=max_distance)
    assert torch.equal(relative_buckets(relative, bidirectional, buckets, max_distance), expected)


def test_the_decoder_self_attention_sees_positions_up_to_the_query(tiny_t5):
    report = t5peek.Model(str(tiny_t5)).attend(PROMPT, cross=False, step=3)
    assert [key.position for key in report.keys] == [0, 1, 2, 3]
    assert [key.relative_position for key in report.keys] == [-3, -2, -1, 0]
    assert report.bidirectional is False and not any(key.masked for key in report.keys)
    assert report.keys[-1].token == report.query_token == report.decoder_tokens[3]


def test_bart_scales_and_has_no_position_bias(tiny_bart):
    report = t5peek.Model(str(tiny_bart)).attend(PROMPT, head=1)
    assert report.scaling == pytest.approx(report.d_kv ** -0.5)
    assert report.position_kind == "learned" and report.buckets is None
    assert all(key.relative_position is None for key in report.keys)


def test_hooks_are_removed_after_the_run(tiny_t5):
    model = t5peek.Model(str(tiny_t5))
    report = model.attend(PROMPT, step=1)
    loaded = model.session.weights(eager_attention=True).model
    for module in loaded.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, report.module


@pytest.mark.parametrize("arguments, fragment", [
    (dict(layer=2), "--layer 2 is out of range: the decoder of"),
    (dict(head=4), "--head 4 is out of range"),
    (dict(encoder=True, query=11), "--query 11 is out of range: PROMPT has 11 tokens, positions 0 to 10"),
    (dict(encoder=True, step=1), "with --encoder the query is a source position"),
    (dict(encoder=True, cross=True), "the encoder has self-attention only"),
    (dict(query=1), "--query picks a source position for --encoder"),
    (dict(step=-1), "--step must be between 0"),
    (dict(head=-1), "--head counts heads from 0"),
])
def test_usage_errors(tiny_t5, arguments, fragment):
    with pytest.raises(UsageError) as error:
        t5peek.Model(str(tiny_t5)).attend(PROMPT, **arguments)
    assert fragment in error.value.message and error.value.exit_code == 2


def test_a_step_past_the_end_of_sequence_is_refused(tiny_bart):
    model = t5peek.Model(str(tiny_bart))
    eos = model.session.tokenizer.eos_token_id
    ends = next(step for step in range(40) if model.attend(PROMPT, step=step).next_id == eos)  # this one ends
    with pytest.raises(UsageError, match=f"past the end: greedy decoding writes </s> at step {ends},"):
        model.attend(PROMPT, step=ends + 1)


def test_the_record_fits_the_schema_builder():
    """scripts/make_schemas.py can describe the record (only the hint kinds it handles)."""
    spec = importlib.util.spec_from_file_location("make_schemas", Path(__file__).parent.parent / "scripts" /
                                                  "make_schemas.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    builder = module._Builder()
    assert builder.of(AttendReport) == {"$ref": "#/$defs/AttendReport"}
    assert {"AttendReport", "KeyRow", "HeadCheck"} <= set(builder.defs)


# ----------------------------------------------------------------------------- the installed script


def test_the_demo_reads_at_80_columns_in_ascii():
    run = run_t5peek("attend", "-m", "demo", DEMO_PROMPT, "--step", "1", "--head", "3",
                     env={"COLUMNS": "80", "NO_COLOR": "1", "T5PEEK_ASCII": "1"})
    assert_known_outcome(run, 0)
    lines = run.stdout.splitlines()
    assert all(len(line) <= 80 and line.isascii() for line in lines), run.stdout
    assert "step 1: the decoder reads la at position 1 and picks casa" in run.stdout
    house = next(line for line in lines if line.split()[:2] == ["7", "house"])
    assert "100.0%" in house  # head 3 looks at 'house' while writing 'casa'
    assert "Q asks." in run.stdout and "K answers." in run.stdout and "V is what gets passed on." in run.stdout


def test_json_carries_every_vector():
    run = run_t5peek("attend", "-m", "demo", DEMO_PROMPT, "--self", "--step", "2", "--json")
    assert_known_outcome(run, 0)
    document = json.loads(run.stdout)
    assert document["command"] == "attend" and document["schema_version"] == 1
    assert document["kind"] == "decoder self-attention" and document["decoder_tokens"] == ["<pad>", "la", "casa"]
    assert len(document["query"]) == document["d_kv"] == 16 and len(document["contribution"]) == 128
    assert all(len(key["key"]) == len(key["value"]) == 16 for key in document["keys"])
    assert abs(sum(key["weight"] for key in document["keys"]) - 1) < 1e-5
    assert document["check"]["weights_max_abs_diff"] <= TOLERANCE


@pytest.mark.parametrize("args, fragment", [
    (("--layer", "3"), "--layer 3 is out of range: the decoder of 'demo' has layers 0 to 2"),
    (("--encoder", "--head", "8"), "--head 8 is out of range: the encoder self-attention of 'demo' has heads 0 to 7"),
])
def test_usage_errors_are_one_line(args, fragment):
    run = run_t5peek("attend", "-m", "demo", DEMO_PROMPT, *args)
    assert_known_outcome(run, 2, fragment)


def test_a_family_it_cannot_read_is_refused(tmp_path):
    folder = by_name("longt5, local").make(tmp_path / "longt5")
    run = run_t5peek("attend", "-m", folder, PROMPT)
    assert_known_outcome(run, 2, "t5peek attend does not support longt5 models")


def test_the_printed_formulas_name_the_encoder_output_and_the_biases(tiny_bart):
    """Cross-attention's keys and values come from the encoder's final output; BART's projections add biases,
    which the recomputation adds too, so the formulas say so (issue #24)."""
    from helpers import run_cli

    text = " ".join(run_cli("attend", "-m", tiny_bart, "the red house is small", "--step", "0").stdout.split())
    assert "q = W_q x + b_q" in text and "k = W_k h + b_k" in text and "v = W_v h + b_v" in text
    assert "encoder's final output" in text
    own = " ".join(run_cli("attend", "-m", tiny_bart, "the red house is small", "--step", "0", "--self").stdout
                   .split())
    assert "k = W_k x + b_k" in own and "encoder's final output" not in own
