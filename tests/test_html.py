"""The HTML report: self-contained, safe with any token text, and drawn by a real browser (headless Chromium)."""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import re
import zlib

import pytest
from support.browser import browser as _browser, dump_dom, needs_browser, script_errors
from support.browser import png_is_not_blank as _png_is_not_blank

torch = pytest.importorskip("torch")

from t5peek.generate import DecodeSettings, decode  # noqa: E402
from t5peek.render.format import probability  # noqa: E402
from t5peek.render.html import render_html, report_data, write_html  # noqa: E402
from t5peek.render.pages.packing import expand  # noqa: E402

PROMPT = "translate English to German : the red house is small"
EXTERNAL = re.compile(r"""(src|href|action|poster|data)\s*=\s*["']?\s*(https?:|//)""", re.I)


@pytest.fixture(scope="module")
def runs(tiny_t5_untied, tiny_bart):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    out = {}
    for name, folder, requested in (("t5", tiny_t5_untied, {"max_new_tokens": 5}),
                                    ("bart-beam", tiny_bart, {"num_beams": 3, "max_new_tokens": 5})):
        model = AutoModelForSeq2SeqLM.from_pretrained(str(folder), attn_implementation="eager").eval()
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        ids = tokenizer(PROMPT, return_tensors="pt").input_ids
        run = decode(model, tokenizer, ids, DecodeSettings(requested=requested, keep_heads=True,
                                                           self_attention=name == "t5"))
        out[name] = dataclasses.replace(run, model="tiny", prompt=PROMPT)
    return out


def _embedded(page: str) -> dict:
    block = re.search(r'<script type="application/json" id="t5peek-data">(.*?)</script>', page, re.S)
    assert block, "no data block"
    return expand(json.loads(block.group(1)))


@pytest.mark.parametrize("name", ["t5", "bart-beam"])
def test_page_is_self_contained(runs, name):
    page = render_html(runs[name])
    assert not EXTERNAL.search(page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page  # the browser refuses any request the page might make
    assert page.count("<script") == 3 and page.count("</script>") == 3  # catch errors, data, drawing
    data = _embedded(page)
    run = runs[name]
    assert data["output_ids"] == list(run.output_ids)
    assert len(data["steps"]) == len(run.steps)
    assert "head_attention" not in data  # packed: one byte per weight, deflated
    assert data["attention"]["cross"]["shape"] == [len(run.steps), run.decoder_layers, run.heads,
                                                   len(run.source_tokens)]


def _unpacked(data: dict, part: str):
    import numpy as np

    packed = data["attention"][part]
    quantized = np.frombuffer(zlib.decompress(base64.b64decode(packed["data"])), dtype=np.uint8)
    return np.where(quantized == 255, np.nan, quantized / 254.0)


@pytest.mark.parametrize("name", ["t5", "bart-beam"])
def test_packed_attention_holds_every_layer_and_head_to_within_a_byte(runs, name):
    """Cross-attention, encoder and decoder self-attention: each weight to within half a step of 1/254."""
    import numpy as np

    run = runs[name]
    data = report_data(run)
    cross = np.asarray(run.head_attention).ravel()
    encoder = np.asarray(run.encoder_head_attention).ravel()
    decoder = np.concatenate([np.asarray(step).ravel() for step in run.decoder_head_attention])
    source, steps = len(run.source_tokens), len(run.steps)
    assert np.asarray(run.encoder_head_attention).shape[2:] == (source, source)
    assert [np.asarray(step).shape[-1] for step in run.decoder_head_attention] == list(range(1, steps + 1))
    for part, exact in (("cross", cross), ("encoder", encoder), ("decoder", decoder)):
        assert np.abs(_unpacked(data, part) - exact).max() <= 0.5 / 254 + 1e-6, part


def test_nan_weights_are_marked_not_a_number(runs):
    import math

    run = runs["t5"]
    heads = [[[list(head) for head in layer] for layer in step] for step in run.head_attention]
    heads[0][0][0][0] = math.nan
    data = report_data(dataclasses.replace(run, head_attention=tuple(heads)))
    assert math.isnan(_unpacked(data, "cross")[0])


@pytest.mark.slow
def test_report_at_256_source_by_64_new_tokens_stays_under_2_mb(tmp_path):
    """Every layer and head of cross, encoder and decoder self-attention of a flan-t5-small-shaped run (8 layers,
    6 heads; attention maps do not depend on d_model, so a narrow model keeps the test quick)."""
    from support.builders import t5_config
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    from support.builders import build_tokenizer

    torch.manual_seed(0)
    model = T5ForConditionalGeneration(t5_config(num_layers=8, num_heads=6, d_kv=8, d_model=48,
                                                 feed_forward_proj="gated-gelu",
                                                 attn_implementation="eager")).eval()
    build_tokenizer(tmp_path, "t5")
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path))
    words = "the red house is small and the big dog sees a blue car".split()
    ids = tokenizer(" ".join(words[i % len(words)] for i in range(255)), return_tensors="pt").input_ids
    assert ids.shape == (1, 256)
    run = decode(model, tokenizer, ids, DecodeSettings(requested={"max_new_tokens": 64, "min_new_tokens": 64},
                                                       keep_heads=True, self_attention=True))
    assert len(run.steps) == 64 and run.encoder_head_attention and run.decoder_head_attention
    page = write_html(dataclasses.replace(run, model="flan-t5-small-shaped", prompt="x"), tmp_path / "big.html")
    assert page.stat().st_size <= 2 * 1024 * 1024


def test_token_text_cannot_break_out_of_the_page(runs):
    run = runs["t5"]
    evil = '</script><img src="https://example.com/x.png">&amp;'
    step = dataclasses.replace(run.steps[0], token=evil)
    hostile = dataclasses.replace(run, steps=(step,) + run.steps[1:], output_text=evil,
                                  source_tokens=(evil,) + run.source_tokens[1:], model="<b>model</b>",
                                  prompt=evil + " {{JS}} {{DATA}}")
    page = render_html(hostile)
    assert page.count("</script>") == 3
    assert not EXTERNAL.search(page)
    assert "<b>model</b>" not in page
    data = _embedded(page)
    assert data["steps"][0]["token"] == evil and data["source_tokens"][0] == evil
    assert data["prompt"] == evil + " {{JS}} {{DATA}}"  # placeholders in the text stay text
    assert page.count("T5PEEK.views.generate = function") == 1


def test_non_finite_scores_are_json_strings(runs):
    run = runs["bart-beam"]  # forced EOS at the last step masks every other token with -inf
    data = report_data(run)
    text = json.dumps(data, allow_nan=False)
    assert "-inf" in text
    json.loads(text)


def test_report_without_heads_still_renders_the_shown_layer(runs):
    run = dataclasses.replace(runs["t5"], head_attention=None, encoder_head_attention=None,
                              decoder_head_attention=None)
    data = _embedded(render_html(run))
    assert data["attention"]["cross"] is None and data["attention"]["encoder"] is None
    assert data["steps"][0]["cross_attention"]


# ----------------------------------------------------------------------------- in a real browser


@pytest.mark.slow
@pytest.mark.browser
@needs_browser
@pytest.mark.parametrize("name", ["t5", "bart-beam"])
def test_browser_draws_the_map_and_switches_heads(runs, tmp_path, name):
    run = runs[name]
    page = write_html(run, tmp_path / "report.html")
    cells = len(run.steps) * len(run.source_tokens)

    dom = _browser(tmp_path, "--dump-dom", url=page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<title>t5peek generate · tiny</title>" in dom.stdout
    assert f'<span id="prompt">{PROMPT}</span>' in dom.stdout
    assert f'data-rendered-cells="{cells}"' in dom.stdout
    assert f'data-layer="{run.layer}"' in dom.stdout and 'data-head="mean"' in dom.stdout
    source, steps = len(run.source_tokens), len(run.steps)
    # the self-attention maps: the encoder's source x source, the decoder's causal triangle
    assert f'data-encoder-cells="{source * source}"' in dom.stdout
    assert f'data-decoder-cells="{steps * (steps + 1) // 2}"' in dom.stdout
    assert dom.stdout.count('class="cell"') == cells + source * source + steps * (steps + 1) // 2
    assert 'id="encoder-map"' in dom.stdout and 'id="decoder-map"' in dom.stdout
    assert 'id="step-0"' in dom.stdout  # the per-step top-k

    # a link can pick layer 0, head 2: the first cell then shows that head's weight (to within a byte)
    dom = _browser(tmp_path, "--dump-dom", url=page.as_uri() + "#layer=0&head=2&encoder-layer=1&encoder-head=3")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-layer="0"' in dom.stdout and 'data-head="2"' in dom.stdout
    weight = round(run.head_attention[0][0][2][0] * 254) / 254
    assert f': ≈{round(weight, 4):.4f}"' in dom.stdout  # from the page's one-byte copy, and marked so
    encoder_weight = round(run.encoder_head_attention[1][3][0][0] * 254) / 254
    first = run.source_tokens[0]
    shown = f'{first} → {first}: ≈{round(encoder_weight, 4):.4f}"'
    assert shown in dom.stdout or shown.replace("<", "&lt;").replace(">", "&gt;") in dom.stdout

    shot = tmp_path / "shot.png"
    result = _browser(tmp_path, f"--screenshot={shot}", "--window-size=1200,900", url=page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 5000
    assert _png_is_not_blank(shot)


# ----------------------------------------------------------------------------- the report's gaps, fixed

DEMO_PROMPT = "translate English to Spanish: the red house is small"


@pytest.fixture(scope="module")
def demo_run():
    import t5peek

    return t5peek.Model("demo").generate(DEMO_PROMPT, keep_heads=True, self_attention=True, occlusion=True)


def test_page_carries_the_json_document(tmp_path):
    """Golden: the page's data is `generate --json`'s document, every number exact (no rounding: a probability
    of 2e-12 is not 0), plus every head's attention under "attention"."""
    from helpers import run_t5peek

    page = tmp_path / "report.html"
    run = run_t5peek("generate", "-m", "demo", DEMO_PROMPT, "--self", "--occlusion", "--html", page, "--json")
    assert run.exit_code == 0, run.stderr
    data = _embedded(page.read_text(encoding="utf-8"))
    assert set(data.pop("attention")) == {"scale", "not_a_number", "cross", "encoder", "decoder"}
    assert data == json.loads(run.stdout)


def _with_distinct_encoder_label(run):
    """The run with the exact encoder self-attention of source token 0 raised by 0.05 at its strongest key: a
    label drawn from the exact numbers says so, one drawn from the one-byte copy cannot."""
    weights = [list(row) for row in run.encoder_self_attention.weights]
    best = max(range(len(weights[0])), key=lambda k: weights[0][k])
    weights[0][best] += 0.05
    encoder = dataclasses.replace(run.encoder_self_attention, weights=tuple(map(tuple, weights)))
    return dataclasses.replace(run, encoder_self_attention=encoder), best, weights[0][best]


@pytest.mark.slow
@pytest.mark.browser
@needs_browser
def test_browser_shows_occlusion_legends_exact_labels_and_terminal_numbers(demo_run, tmp_path):
    run, best, raised = _with_distinct_encoder_label(demo_run)
    page = write_html(run, tmp_path / "report.html")
    dom = dump_dom(tmp_path, page)
    assert script_errors(dom) is None and 'data-rendered="true"' in dom
    # occlusion: shown, one row per generated token
    assert f'data-occlusion-rows="{len(run.occlusion.rows)}"' in dom
    assert '<div id="occlusion" hidden' not in dom and "needs most" in dom
    # a colour legend beside each map: cross-attention, encoder and decoder self-attention
    assert dom.count('class="legend"') == 3
    # labels from the exact numbers: source token 0's strongest key, as the terminal prints it (two decimals)
    label = f"{run.source_tokens[best]} {raised:.2f}</td>"
    assert re.search(r'<th class="tok">' + re.escape(run.source_tokens[0]) + r"</th>(<td[^>]*>[^<]*</td>)*?"
                     r'<td class="focus dim">' + re.escape(label), dom), label
    # every candidate's probability as the terminal formats it: '<0.01%' where it is below 0.005%, never '0%'
    shown = [html.unescape(text) for text in re.findall(r'<td class="num">([^<]*%)</td>', dom.split('id="steps"')[1])]
    expected = [probability(c.probability) for s in run.steps
                for c in s.top_k + ((s.chosen,) if s.chosen_rank is None else ())]
    assert shown == expected and "<0.01%" in shown and "0%" not in shown
