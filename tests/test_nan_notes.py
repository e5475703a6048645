"""NaN logits in every view of a model's own numbers (issue #25): `lens`, `attend`, `trace --compare` and
`generate --occlusion` say where the numbers stop being finite, in the sentence `generate` says ("From step 0 on the
scores are NaN; ..."), exit 0 as greedy `generate` does, and claim no check or difference their numbers cannot
show."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import assert_known_outcome, run_t5peek

DEMO = Path(__file__).resolve().parent.parent / "src" / "t5peek" / "demo"
PROMPT = "translate English to Spanish: the red house is small"
TARGET = "la casa es"
ENV = {"COLUMNS": "100", "NO_COLOR": "1", "T5PEEK_ASCII": "1"}


@pytest.fixture(scope="module")
def overflowing(tmp_path_factory) -> Path:
    """Finite weights that overflow float32 (as in test_generate_nan): the encoder's final norm scales its output to
    ~3e38 per feature, some of it inf, so every cross-attention of the decoder and every logit is NaN."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("nan") / "model"
    shutil.copytree(DEMO, folder)
    tensors = load_file(folder / "model.safetensors")
    weight = tensors["encoder.final_layer_norm.weight"]
    tensors["encoder.final_layer_norm.weight"] = torch.full_like(weight, 3e38)
    assert all(torch.isfinite(t).all() for t in tensors.values())  # past the check for inf/NaN weights
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def _text(*args) -> str:
    """The stdout of a run that must succeed, its lines joined (the notes wrap at the width)."""
    run = run_t5peek(*args, env=ENV)
    assert_known_outcome(run, 0)
    return " ".join(run.stdout.split())


def _json(*args) -> dict:
    run = run_t5peek(*args, "--json")
    assert_known_outcome(run, 0)
    return run.json()


def test_generate_says_it_in_the_shared_sentence(overflowing):
    from t5peek import finite

    notes = _json("generate", "-m", overflowing, PROMPT, "-n", "2")["notes"]
    assert notes == [finite.from_step(0, "scores", "NaN", "the choices are arbitrary")]
    assert notes == ["From step 0 on the scores are NaN; the choices are arbitrary."]


# ---------------------------------------------------------------------------------------------- lens


def test_lens_names_the_step_and_depth_and_claims_no_check(overflowing):
    out = _text("lens", "-m", overflowing, PROMPT, "-n", "2")
    assert ("note: From step 0 on the logits are NaN; the choices are arbitrary. At step 0 the stream is first NaN "
            "at depth '0 cross-attention'") in out
    check = out[out.index("check:"):]
    assert "0.0e+00" not in check and "largest difference nan" not in check
    assert "check: not possible: the model's own logits are not finite at any step" in check


def test_lens_json_teacher_forced(overflowing):
    record = _json("lens", "-m", overflowing, PROMPT, "--target", TARGET)
    assert record["nonfinite_from"] == 0
    assert record["lens_error"] == "nan" and record["attribution_error"] == "nan"
    assert any(note.startswith("From step 0 on the logits are NaN; ") and "'0 cross-attention'" in note
               for note in record["notes"]), record["notes"]


def test_lens_on_finite_numbers_has_no_such_note():
    record = _json("lens", "-m", "demo", PROMPT, "-n", "2")
    assert record["nonfinite_from"] is None and record["lens_error"] < 1e-4
    assert not any(note.startswith("From step") for note in record["notes"])


# ---------------------------------------------------------------------------------------------- attend


def test_attend_names_the_step_and_the_heads_first_nonfinite_number(overflowing):
    out = _text("attend", "-m", overflowing, PROMPT)
    assert "note: From step 0 on the logits are NaN; the choices are arbitrary." in out
    assert ("note: In this head the first number that is not finite is the hidden state that entered "
            "EncDecAttention (NaN).") in out
    check = out[out.index("check:"):]
    assert "at most nan" not in check and "check: not possible: the numbers are not finite" in check


def test_attend_json_at_layer_0_blames_the_encoder_output(overflowing):
    record = _json("attend", "-m", overflowing, PROMPT, "--layer", "0")
    notes = record["notes"]
    assert "From step 0 on the logits are NaN; the choices are arbitrary." in notes
    assert "In this head the first number that is not finite is the encoder's output its keys and values come " \
           "from (inf and -inf)." in notes


def test_attend_on_a_finite_encoder_layer_has_no_such_note(overflowing):
    """The overflow comes after the encoder's last layer: its self-attention is finite, and says nothing."""
    record = _json("attend", "-m", overflowing, PROMPT, "--encoder")
    assert not any("not finite" in note or "NaN" in note for note in record["notes"]), record["notes"]
    assert record["check"]["weights_max_abs_diff"] < 1e-5


# ---------------------------------------------------------------------------------------------- trace --compare


def test_compare_says_not_compared_instead_of_differ(overflowing):
    out = _text("trace", "-m", overflowing, PROMPT, "--target", TARGET, "--compare")
    assert "DIFFER" not in out and "does not compute what training computes" not in out
    assert "not compared: from position 0 on the logits of both paths are not finite (see the note)." in out
    assert ("note: From position 0 on the logits of both paths are NaN; teacher forcing and the cached steps are "
            "not compared there.") in out
    assert "note: From step 0 on the free-running scores are NaN; the choices are arbitrary." in out
    assert "exposure bias" not in out and "first departure" not in out
    assert "the mask held" not in out and "LEAKED" not in out


def test_compare_json(overflowing):
    record = _json("trace", "-m", overflowing, PROMPT, "--target", TARGET, "--compare")
    comparison = record["comparison"]
    assert comparison["agrees"] is None
    assert comparison["positions"] and not any(p["compared"] for p in comparison["positions"])
    assert comparison["max_abs_diff"] == "nan" and comparison["arbitrary_from"] == 0
    assert comparison["notes"] == [
        "From position 0 on the logits of both paths are NaN; teacher forcing and the cached steps are not compared "
        "there.", "From step 0 on the free-running scores are NaN; the choices are arbitrary."]


# ---------------------------------------------------------------------------------------------- --occlusion


def test_occlusion_says_not_compared_instead_of_differs(overflowing):
    out = _text("generate", "-m", overflowing, PROMPT, "-n", "2", "--occlusion")
    section = out[out.index("occlusion - each source token"):]
    assert "differs" not in section and "agree 0 of" not in section
    assert "? not finite" in section and "no steps compared: their probabilities are not finite" in section
    assert ("note: From step 0 on the probabilities are NaN; attention and occlusion are not compared there."
            in section)


def test_occlusion_json(overflowing):
    occlusion = _json("generate", "-m", overflowing, PROMPT, "-n", "2", "--occlusion")["occlusion"]
    assert occlusion["total"] == 0 and occlusion["agree"] == 0
    assert occlusion["notes"] == ["From step 0 on the probabilities are NaN; attention and occlusion are not "
                                  "compared there."]


# ---------------------------------------------------------------------------------------------- the shared pieces


def test_largest_lets_a_nan_win_where_max_keeps_the_first():
    from t5peek import finite

    assert max(0.0, float("nan")) == 0.0  # what the self-checks printed as 0.0e+00
    assert str(finite.largest([0.0, float("nan"), 1.0])) == "nan" and str(finite.largest([])) == "nan"
    assert finite.largest([0.5, 2.0]) == 2.0


def test_lens_reading_skips_positions_whose_own_logits_are_not_finite(models):
    """Per position: the check's gap where the model's logits are finite (NaN where the lens alone is not: a real
    difference), None where they are not; and the first depth whose stream is not finite."""
    torch = pytest.importorskip("torch")
    from t5peek.lens.project import head_logits, read
    from t5peek.lens.stream import read_anatomy

    model, _ = models["t5"]
    shape = read_anatomy(model, "t5")
    depths, width = len(shape.taps), model.config.d_model
    streams = torch.randn(depths, 3, width)
    streams[2:, 1] = float("nan")  # position 1: finite up to depth 1
    streams[-1, 2] = float("inf")  # position 2: its last depth only
    with torch.no_grad():
        own = head_logits(shape.head, streams[-1])
        own[2] = 0.0  # finite logits where the lens reads an inf stream
        reading = read(shape.head, streams, torch.tensor([0, 1, 2]), 2, own)
    errors = reading.final_errors
    assert errors[0] < 1e-5 and errors[1] is None and str(errors[2]) == "nan"
    assert reading.first_nonfinite_depth == [None, (2, "NaN"), (depths - 1, "inf")]
