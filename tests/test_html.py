"""The HTML report: self-contained, safe with any token text, and drawn by a real browser (headless Chromium)."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from t5peek.generate import DecodeSettings, decode  # noqa: E402
from t5peek.render.html import render_html, report_data, write_html  # noqa: E402

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
        run = decode(model, tokenizer, ids, DecodeSettings(requested=requested, keep_heads=True))
        out[name] = dataclasses.replace(run, model="tiny", prompt=PROMPT)
    return out


def _embedded(page: str) -> dict:
    block = re.search(r'<script type="application/json" id="t5peek-data">(.*?)</script>', page, re.S)
    assert block, "no data block"
    return json.loads(block.group(1))


@pytest.mark.parametrize("name", ["t5", "bart-beam"])
def test_page_is_self_contained(runs, name):
    page = render_html(runs[name])
    assert not EXTERNAL.search(page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page  # the browser refuses any request the page might make
    assert page.count("<script") == 2 and page.count("</script>") == 2
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
                                                       keep_heads=True))
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
    assert page.count("</script>") == 2
    assert not EXTERNAL.search(page)
    assert "<b>model</b>" not in page
    data = _embedded(page)
    assert data["steps"][0]["token"] == evil and data["source_tokens"][0] == evil
    assert data["prompt"] == evil + " {{JS}} {{DATA}}"  # placeholders in the text stay text
    assert page.count('"use strict"') == 1


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


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _browser(tmp_path: Path, *args: str, url: str) -> subprocess.CompletedProcess:
    binary = _chromium()
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    # virtual time lets the page finish inflating its maps (a promise) before the DOM is dumped
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
               "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _png_is_not_blank(path: Path) -> bool:
    """Decode the PNG's pixel bytes (zlib, no imaging library) and check they are not all one colour."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, width = 8, b"", 0
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        chunk = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            width = struct.unpack(">I", chunk[:4])[0]
        elif kind == b"IDAT":
            idat += chunk
        offset += 12 + length
    pixels = zlib.decompress(idat)
    stride = len(pixels) // max(1, len(pixels) // (width * 4 + 1))
    rows = [pixels[i + 1:i + stride] for i in range(0, len(pixels), stride)]
    distinct = set()
    for row in rows[:: max(1, len(rows) // 200)]:
        distinct.update(row[::7])
    return len(distinct) > 8


needs_browser = pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed "
                                   "(apt-get install chromium); the browser test needs a real browser")


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
    assert f': {round(weight, 4):.4f}"' in dom.stdout
    encoder_weight = round(run.encoder_head_attention[1][3][0][0] * 254) / 254
    first = run.source_tokens[0]
    shown = f'{first} → {first}: {round(encoder_weight, 4):.4f}"'
    assert shown in dom.stdout or shown.replace("<", "&lt;").replace(">", "&gt;") in dom.stdout

    shot = tmp_path / "shot.png"
    result = _browser(tmp_path, f"--screenshot={shot}", "--window-size=1200,900", url=page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 5000
    assert _png_is_not_blank(shot)
