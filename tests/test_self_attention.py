"""`generate --self`: the encoder's and the decoder's self-attention, checked against transformers' own forward."""

from __future__ import annotations

import io
import json

import pytest

torch = pytest.importorskip("torch")

from helpers import assert_known_outcome, run_t5peek  # noqa: E402
from t5peek.generate import DecodeSettings, decode  # noqa: E402

PROMPT = "translate English to German : the red house is small"
DEMO_PROMPT = "translate English to Spanish: the red house is small"


def _load(folder):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(str(folder), attn_implementation="eager").eval()
    return model, AutoTokenizer.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def models(tiny_t5_untied, tiny_bart):
    return {"t5": _load(tiny_t5_untied), "bart": _load(tiny_bart)}


def _teacher_forced(model, input_ids, output_ids):
    """The oracle: one forward over the whole output, every attention returned."""
    with torch.no_grad():
        return model(input_ids=input_ids, decoder_input_ids=torch.tensor([list(output_ids[:-1])]),
                     output_attentions=True, return_dict=True)


@pytest.mark.parametrize("family", ["t5", "bart"])
@pytest.mark.parametrize("requested", [{"max_new_tokens": 6}, {"num_beams": 3, "max_new_tokens": 6}],
                         ids=["greedy", "beam"])
@pytest.mark.parametrize("layer", [None, 0])
def test_self_attention_equals_a_teacher_forced_forward(models, family, requested, layer):
    """Encoder map and decoder rows (mean of heads, every head too) equal transformers' attentions; with beams,
    the rows are those of the beam that survives."""
    model, tokenizer = models[family]
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    run = decode(model, tokenizer, ids, DecodeSettings(requested=requested, layer=layer, self_attention=True,
                                                       keep_heads=True))
    oracle = _teacher_forced(model, ids, run.output_ids)
    shown = run.layer
    encoder = run.encoder_self_attention
    assert encoder.layer == (len(oracle.encoder_attentions) - 1 if layer is None else layer)
    expected = oracle.encoder_attentions[encoder.layer][0].mean(dim=0)
    assert torch.tensor(encoder.weights).sub(expected).abs().max() < 1e-5
    assert torch.tensor(run.encoder_head_attention).sub(torch.stack(oracle.encoder_attentions)[:, 0]).abs().max() \
        < 1e-5
    worst = 0.0
    for t, step in enumerate(run.steps):
        assert len(step.self_attention) == t + 1  # causal: step t sees t + 1 decoder input tokens
        row = oracle.decoder_attentions[shown][0, :, t, : t + 1].mean(dim=0)
        worst = max(worst, torch.tensor(step.self_attention).sub(row).abs().max().item())
        heads = torch.stack([a[0, :, t, : t + 1] for a in oracle.decoder_attentions])
        worst = max(worst, torch.tensor(run.decoder_head_attention[t]).sub(heads).abs().max().item())
        assert sum(step.self_attention) == pytest.approx(1.0, abs=1e-5)
    assert worst < 1e-5


def test_without_self_the_records_and_json_keep_their_shape(models):
    from t5peek.jsonable import to_jsonable

    model, tokenizer = models["t5"]
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    run = decode(model, tokenizer, ids, DecodeSettings(requested={"max_new_tokens": 3}))
    assert run.encoder_self_attention is None and all(step.self_attention is None for step in run.steps)
    data = to_jsonable(run)
    assert "encoder_self_attention" not in data and "occlusion" not in data
    assert "self_attention" not in data["steps"][0]


def test_long_sources_show_a_corner_and_say_so():
    """A 200-token source: the maps show the first 48 tokens and say how many there are, at 80 columns."""
    import t5peek
    from t5peek.render.format import SafeConsole
    from t5peek.render.self_attention import SHOWN, render_self_attention

    words = "the red house is small".split()
    prompt = "translate English to Spanish: " + " ".join(words[i % 5] for i in range(200))
    run = t5peek.Model("demo").generate(prompt, max_new_tokens=3, self_attention=True)
    buffer = io.StringIO()
    render_self_attention(run, SafeConsole(file=buffer, width=80, color_system=None))
    text = buffer.getvalue()
    assert f"showing the first {SHOWN} of {len(run.source_ids)} source tokens" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert text.count("│") // 2 <= 2 * SHOWN + 2 * len(run.steps)  # rows drawn: capped, not 200


def test_cli_self_human_at_80_columns_in_ascii():
    run = run_t5peek("generate", "-m", "demo", DEMO_PROMPT, "--self",
                     env={"COLUMNS": "80", "NO_COLOR": "1", "T5PEEK_ASCII": "1"})
    assert_known_outcome(run, 0)
    out = run.stdout
    assert "encoder self-attention - encoder layer 2 (of 0-2)" in out
    assert "decoder self-attention - decoder layer 2" in out
    assert all(len(line) <= 80 for line in out.splitlines())
    assert out.isascii()
    triangle = out[out.index("decoder self-attention"):]
    rows = [line for line in triangle.splitlines() if line.count("|") == 2][:3]
    # the causal triangle: the first row has one shaded cell, then two, then three (two characters each)
    assert [len(row.split("|")[1].rstrip()) for row in rows] == [2, 4, 6]


def test_cli_self_json_has_the_maps_only_when_asked():
    run = run_t5peek("generate", "-m", "demo", DEMO_PROMPT, "--self", "--json", "-n", "4")
    record = run.json()
    encoder = record["encoder_self_attention"]
    source = len(record["source_ids"])
    assert encoder["layer"] == 2 and encoder["heads"] == 8 and encoder["encoder_layers"] == 3
    assert len(encoder["weights"]) == source and all(len(row) == source for row in encoder["weights"])
    assert [len(step["self_attention"]) for step in record["steps"]] == [1, 2, 3, 4]
    plain = run_t5peek("generate", "-m", "demo", DEMO_PROMPT, "--json", "-n", "4").json()
    assert "encoder_self_attention" not in plain and "self_attention" not in plain["steps"][0]
    assert len(json.dumps(plain)) < len(json.dumps(record))


def test_other_families_are_refused_in_one_line(tmp_path):
    from families import by_name

    folder = by_name("fsmt").make(tmp_path / "fsmt")
    for option in ("--self", "--occlusion"):
        run = run_t5peek("generate", "-m", str(folder), "hello", option)
        assert_known_outcome(run, 2, option, "T5 and BART families", "fsmt")


def test_local_encoder_attention_is_refused_for_self_and_left_out_of_the_report(tmp_path):
    """LongT5's local attention is no source x source map: --self says so (exit 2); --html goes on without it."""
    from families import PROMPT, by_name
    from helpers import assert_clean_error, run_cli

    folder = by_name("longt5, local").make(tmp_path / "longt5")
    assert_clean_error(run_cli("generate", "-m", str(folder), PROMPT, "--self", "-n", "2"), 2, "locally")
    result = run_cli("generate", "-m", str(folder), PROMPT, "--html", str(tmp_path / "r.html"), "-n", "2")
    assert result.exit_code == 0, result.stderr
    assert '"encoder": null' in (tmp_path / "r.html").read_text()


def test_the_legend_gives_the_thresholds_the_cells_use():
    """A cell takes shade i from (i - 0.5) / 4 of the strongest weight: 62.5 %, not the 62 % the legend said."""
    from t5peek.render.heatmap import SHADES, legend, shade_lines

    text = " ".join(str(piece) for piece in legend(1.0, 4, 200))
    assert "<12.5%" in text and "≥37.5%" in text and "≥62.5%" in text and "≥87.5%" in text
    below, at = (str(shade_lines([[w, 1.0]], ["x"], ["a", "b"], 200)[-2]) for w in (0.624, 0.625))
    assert below.split("│")[1][:2] == SHADES[2] * 2 and at.split("│")[1][:2] == SHADES[3] * 2
