"""The HTML report: self-contained, safe with any token text, and drawn by a real browser (headless Chromium)."""

from __future__ import annotations

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
    assert len(data["head_attention"]) == len(run.steps)
    assert len(data["head_attention"][0]) == run.decoder_layers
    assert len(data["head_attention"][0][0]) == run.heads
    assert len(data["head_attention"][0][0][0]) == len(run.source_tokens)


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
    run = dataclasses.replace(runs["t5"], head_attention=None)
    data = _embedded(render_html(run))
    assert data["head_attention"] is None
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
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
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
    assert dom.stdout.count('class="cell"') == cells
    assert 'id="step-0"' in dom.stdout  # the per-step top-k

    # a link can pick layer 0, head 2: the first cell then shows that head's weight
    dom = _browser(tmp_path, "--dump-dom", url=page.as_uri() + "#layer=0&head=2")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-layer="0"' in dom.stdout and 'data-head="2"' in dom.stdout
    weight = run.head_attention[0][0][2][0]
    assert f': {round(weight, 4):.4f}"' in dom.stdout

    shot = tmp_path / "shot.png"
    result = _browser(tmp_path, f"--screenshot={shot}", "--window-size=1200,900", url=page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 5000
    assert _png_is_not_blank(shot)
