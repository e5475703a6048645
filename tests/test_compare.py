"""`trace --target TEXT --compare`: every number against transformers itself (the oracle), on T5, flan-t5-style
(gated, untied), BART, Marian and the demo; the first departure at a known position; the causal mask; the output."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest
from families import by_name
from helpers import assert_clean_error, assert_known_outcome, run_cli, run_t5peek

from t5peek import loading
from t5peek.render.compare import render_comparison
from t5peek.render.format import SafeConsole
from t5peek.trace import compare as compare_module
from t5peek.trace.compare import RELATIVE_TOLERANCE, compare_runs
from t5peek.trace.records import TraceReport

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "translate english to german : the red house is small"
TARGET = "the blue house is small"
DEMO_PROMPT = "translate English to Spanish: the red house is small"
DEMO_TARGET = "la casa azul es pequeña"  # the demo says "roja": the first departure is at position 2


def load(folder):
    loading.quiet_libraries()
    return loading.load_model(loading.resolve_model(str(folder)), eager_attention=True)


@pytest.fixture(scope="module")
def models(tiny_t5, tiny_t5_untied, tiny_bart, tmp_path_factory):
    marian = by_name("marian").make(tmp_path_factory.mktemp("compare") / "marian")
    return {"t5": (tiny_t5, PROMPT, TARGET), "flan-t5-untied": (tiny_t5_untied, PROMPT, TARGET),
            "bart": (tiny_bart, PROMPT, TARGET), "marian": (marian, PROMPT, TARGET),
            "demo": ("demo", DEMO_PROMPT, DEMO_TARGET)}


def encode(loaded, prompt, target):
    encoded = loaded.tokenizer(prompt, return_tensors="pt")
    labels = loaded.tokenizer(text_target=target, return_tensors="pt")["input_ids"]
    return encoded["input_ids"], encoded["attention_mask"], labels


def oracle_cached_logits(model, input_ids, attention_mask, labels):
    """transformers' own cached decoding, forced onto the labels: generate() with only the label allowed at each
    step, its raw logits (output_logits, before any processor)."""
    label_list = labels[0].tolist()
    out = model.generate(input_ids, attention_mask=attention_mask, do_sample=False, num_beams=1,
                         max_new_tokens=len(label_list), min_new_tokens=0, output_logits=True,
                         return_dict_in_generate=True,
                         prefix_allowed_tokens_fn=lambda _batch, ids: [label_list[len(ids) - 1]])
    assert out.sequences[0, 1:].tolist() == label_list  # the oracle did read the labels
    import torch

    return torch.stack([step[0] for step in out.logits]).float()


@pytest.mark.parametrize("name", ["t5", "flan-t5-untied", "bart", "marian", "demo"])
def test_teacher_forcing_equals_cached_steps_and_greedy_equals_generate(models, name):
    import torch

    folder, prompt, target = models[name]
    loaded = load(folder)
    model = loaded.model
    input_ids, attention_mask, labels = encode(loaded, prompt, target)
    result = compare_runs(model, loaded.tokenizer, input_ids, attention_mask, labels)

    with torch.no_grad():
        trained = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_attentions=True)
    forced = trained.logits[0].float()
    cached = oracle_cached_logits(model, input_ids, attention_mask, labels)
    differences = (forced - cached).abs().amax(-1)
    assert len(result.positions) == labels.shape[-1]
    for position, difference in zip(result.positions, differences.tolist()):
        assert position.max_abs_diff == pytest.approx(difference, abs=position.tolerance)
        assert difference <= position.tolerance
        assert position.agrees
    assert result.agrees and result.dtype == "float32" and result.relative_tolerance == RELATIVE_TOLERANCE["float32"]
    assert min(p.tolerance for p in result.positions) >= 1e-4  # the float32 floor
    assert result.max_abs_diff == pytest.approx(float(differences.max()), abs=1e-4)
    # the loss both ways: the model's own loss, and the same cross-entropy over the cached logits
    assert result.forced_loss == pytest.approx(float(trained.loss), rel=1e-5)
    assert result.cached_loss == pytest.approx(float(torch.nn.functional.cross_entropy(cached, labels[0])), rel=1e-5)
    assert [p.forced_top_id for p in result.positions] == forced.argmax(-1).tolist()
    assert [p.input_id for p in result.positions] == model.prepare_decoder_input_ids_from_labels(
        labels=labels)[0].tolist()
    probabilities = torch.softmax(forced, -1)
    assert [p.label_probability for p in result.positions] == pytest.approx(
        [float(probabilities[i, label]) for i, label in enumerate(labels[0].tolist())], abs=1e-6)

    generated = model.generate(input_ids, attention_mask=attention_mask, do_sample=False, num_beams=1,
                               max_new_tokens=labels.shape[-1])[0, 1:].tolist()
    assert [p.chosen_id for p in result.free_running] == generated
    chosen = [p.chosen_id for p in result.free_running]
    departures = [i for i, (c, label) in enumerate(zip(chosen, labels[0].tolist())) if c != label]
    expected = departures[0] if departures else (len(chosen) if len(chosen) < labels.shape[-1] else None)
    assert result.first_departure == expected

    weights = torch.stack(trained.decoder_attentions)  # [layers, 1, heads, T, T]
    assert (result.mask.size, result.mask.layers, result.mask.heads) == (labels.shape[-1], *weights.shape[:3:2])
    assert result.mask.above_diagonal_max == float(weights.triu(1).abs().max()) == 0.0
    assert bool((weights.tril().sum(-1) - 1).abs().max() < 1e-5)  # each row's weights sum to 1 below the diagonal


def test_the_first_departure_is_marked_where_the_label_leaves_the_models_choice(tiny_t5_untied):
    """Labels = the model's own greedy output with position 3 changed: the departure is at 3, and up to it the
    free-running choice is the teacher-forced top guess (both runs read the same prefix)."""
    import torch

    loaded = load(tiny_t5_untied)
    model = loaded.model
    input_ids, attention_mask, _ = encode(loaded, PROMPT, TARGET)
    own = model.generate(input_ids, attention_mask=attention_mask, do_sample=False, num_beams=1,
                         max_new_tokens=6)[0, 1:].tolist()
    assert len(own) == 6
    labels = list(own)
    labels[3] = next(t for t in range(5, 40) if t != own[3])
    result = compare_runs(model, loaded.tokenizer, input_ids, attention_mask, torch.tensor([labels]))
    assert result.first_departure == 3
    assert [p.chosen_id for p in result.free_running] == own  # the labels do not steer free running
    assert [p.matches for p in result.free_running[:3]] == [True, True, True]
    assert not result.free_running[3].matches
    assert [p.forced_top_id for p in result.positions[:4]] == own[:4]
    assert result.free_running[4].input_id == own[3] != result.positions[4].input_id == labels[3]


def test_the_same_target_as_the_model_has_no_departure(tiny_t5_untied):
    import torch

    loaded = load(tiny_t5_untied)
    input_ids, attention_mask, _ = encode(loaded, PROMPT, TARGET)
    own = loaded.model.generate(input_ids, attention_mask=attention_mask, do_sample=False, num_beams=1,
                                max_new_tokens=5)[0, 1:].tolist()
    result = compare_runs(loaded.model, loaded.tokenizer, input_ids, attention_mask, torch.tensor([own]))
    assert result.first_departure is None and all(p.matches for p in result.free_running)


def test_a_wrong_cached_path_is_caught(tiny_t5, monkeypatch):
    """The check can fail: feed the cached decoder the labels unshifted and the logits no longer agree."""
    loaded = load(tiny_t5)
    input_ids, attention_mask, labels = encode(loaded, PROMPT, TARGET)
    monkeypatch.setattr(compare_module, "shift_right", lambda _model, labels: labels)
    result = compare_runs(loaded.model, loaded.tokenizer, input_ids, attention_mask, labels)
    assert not result.agrees and result.max_abs_diff > 1.0


def test_bfloat16_uses_the_looser_tolerance(tiny_t5_untied):
    import torch

    loaded = load(tiny_t5_untied)
    model = loaded.model.to(torch.bfloat16)
    try:
        input_ids, attention_mask, labels = encode(loaded, PROMPT, TARGET)
        result = compare_runs(model, loaded.tokenizer, input_ids, attention_mask, labels)
    finally:
        model.to(torch.float32)
    assert result.dtype == "bfloat16" and result.relative_tolerance == RELATIVE_TOLERANCE["bfloat16"]
    assert result.agrees


# --------------------------------------------------------------------------------------------- the command


def test_compare_needs_a_target():
    run = run_t5peek("trace", "-m", "demo", "the house", "--compare")
    assert_known_outcome(run, 2, "--compare needs --target")


@pytest.mark.parametrize("family", ["fsmt", "encoder-decoder (bert2bert)"])
def test_other_families_are_refused_in_one_line(family, tmp_path):
    folder = by_name(family).make(tmp_path / "model")
    result = run_cli("trace", "a b", "-m", folder, "--target", "c d", "--compare")
    assert_clean_error(result, 2, "supports the T5 and BART families", by_name(family).model_type)


def test_the_demo_at_80_columns():
    run = run_t5peek("trace", "-m", "demo", DEMO_PROMPT, "--target", DEMO_TARGET, "--compare", "--depth", "0",
                     env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert_known_outcome(run, 0)
    out = run.stdout
    assert "\x1b[" not in out and max(len(line) for line in out.splitlines()) <= 80
    section = out[out.index("training vs inference"):]
    words = " ".join(section.split())
    assert "the two agree at every position" in words and "the mask held" in words
    assert "2 casa     █ █ █ · · ·" in section  # the triangle, drawn once
    assert section.count("█ █ █ █ █ █") == 1
    assert "first departure at position 2: the model chose 'roja' where the target has 'azul'" in words
    row = next(line for line in section.splitlines() if "✗ first departure" in line)
    assert row.split()[:4] == ["2", "casa", "(183)", "azul"]
    assert "free-running output: 'la casa roja es pequeña'" in section


def test_the_demo_in_ascii():
    result = run_cli("trace", "-m", "demo", DEMO_PROMPT, "--target", DEMO_TARGET, "--compare", "--depth", "0",
                     env={"COLUMNS": "80", "NO_COLOR": "1", "T5PEEK_ASCII": "1"})
    assert result.exit_code == 0, result.stderr
    assert result.stdout.isascii()
    assert "# # # - - -" in result.stdout and "x first departure" in result.stdout


def test_the_demo_json_document():
    run = run_t5peek("trace", "-m", "demo", DEMO_PROMPT, "--target", DEMO_TARGET, "--compare", "--json")
    assert_known_outcome(run, 0)
    document = run.json()
    comparison = document["comparison"]
    assert comparison["agrees"] is True and comparison["first_departure"] == 2
    assert [p["label_token"] for p in comparison["positions"]] == document["label_tokens"]
    assert [p["chosen_token"] for p in comparison["free_running"]] == ["la", "casa", "roja", "es", "pequeña", "</s>"]
    assert comparison["mask"] == {"size": 6, "layers": 3, "heads": 8, "above_diagonal_max": 0.0}
    assert document["phases"]  # the teacher-forcing trace comes with it
    jsonschema = pytest.importorskip("jsonschema")
    errors = list(jsonschema.Draft202012Validator(_trace_schema()).iter_errors(document))
    assert not errors, errors[0].message[:300]


def _trace_schema() -> dict:
    """The trace schema as scripts/make_schemas.py builds it from the records' type hints."""
    spec = importlib.util.spec_from_file_location("make_schemas", ROOT / "scripts" / "make_schemas.py")
    make_schemas = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_schemas)
    return make_schemas.command_schema("trace", TraceReport)


def test_long_targets_show_a_corner_of_the_mask(tiny_t5):
    loaded = load(tiny_t5)
    input_ids, attention_mask, _ = encode(loaded, PROMPT, TARGET)
    labels = loaded.tokenizer(text_target=" ".join(["the red house is small"] * 8), return_tensors="pt")["input_ids"]
    result = compare_runs(loaded.model, loaded.tokenizer, input_ids, attention_mask, labels)
    buffer = io.StringIO()
    render_comparison(result, SafeConsole(file=buffer, width=80, no_color=True, highlight=False))
    text = buffer.getvalue()
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    assert f"of {labels.shape[-1]} positions: every row continues the same way" in text
    assert result.mask.size == labels.shape[-1] > 30 and result.mask.above_diagonal_max == 0.0


def test_the_python_api_refuses_a_global_attention_mask_before_loading():
    import t5peek
    from t5peek.errors import UsageError

    model = t5peek.Model("demo")
    with pytest.raises(UsageError, match="global_attention_mask"):
        model.trace(DEMO_PROMPT, target=DEMO_TARGET, compare=True, global_attention_mask=object())
    assert not model.session._loaded  # no weights were loaded
