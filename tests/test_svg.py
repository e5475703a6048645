"""`generate --svg` and `lens --svg`: standalone SVG charts, well-formed with any token text, their cells, labels
and numbers those of the record, and drawn by a real browser (headless Chromium)."""

from __future__ import annotations

import dataclasses
import math
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from helpers import assert_clean_error, run_t5peek
from t5peek.render.format import probability, show_token
from t5peek.render.lens import CHOSEN_MARK
from t5peek.render.svg import generate_svg, lens_svg, render_svg
from t5peek.render.svg_draw import HIGH, NOT_A_NUMBER

PROMPT = "translate English to Spanish: the red house is small"
NS = "{http://www.w3.org/2000/svg}"
HOSTILE = ("<script>x</script>", "&amp;", 'say "hi"', "\u202eevil", "\x1b[2J\x07", "\ufffe", "]]>")


@pytest.fixture(scope="module")
def runs():
    from t5peek.api import Model
    from t5peek.generate.run import GenerateRequest
    from t5peek.lens.run import LensRequest

    demo = Model("demo")
    return {"greedy": demo.run(GenerateRequest(PROMPT)),
            "beam": demo.run(GenerateRequest(PROMPT, num_beams=2, max_new_tokens=4)),
            "lens": demo.run(LensRequest(PROMPT))}


def _parse(text: str) -> ET.Element:
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == NS + "svg" and root.get("version") == "1.1"
    width, height = float(root.get("width")), float(root.get("height"))
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}" and width > 0 and height > 0
    assert "url(" not in text.replace("url(#t5peek-ramp)", "")  # nothing outside the document
    assert set(root.get("font-family").split(",")) <= {"monospace", "sans-serif", "serif"}
    return root


def _group(root: ET.Element, name: str) -> ET.Element:
    found = [g for g in root.iter(NS + "g") if g.get("class") == name]
    assert len(found) == 1, name
    return found[0]


def _texts(group: ET.Element, cls: str | None = None) -> list[str]:
    return [t.text or "" for t in group.iter(NS + "text") if cls is None or t.get("class") == cls]


@pytest.mark.parametrize("name", ["greedy", "beam"])
def test_generate_chart_holds_the_map_and_the_steps(runs, name):
    run = runs[name]
    root = _parse(generate_svg(run))
    cells = _group(root, "cells").findall(NS + "rect")
    assert len(cells) == len(run.steps) * len(run.source_tokens)
    assert _texts(_group(root, "row-labels")) == [show_token(step.token) for step in run.steps]
    assert _texts(_group(root, "column-labels")) == [show_token(token) for token in run.source_tokens]
    assert _texts(_group(root, "probabilities")) == [probability(step.chosen.probability) for step in run.steps]
    strongest = max(w for step in run.steps for w in step.cross_attention)
    assert _texts(_group(root, "legend"), "tick") == [f"{strongest * n / 2:.2f}" for n in range(3)]
    # the strongest cell is the darkest shade; each cell's tooltip has its weight as the terminal writes it
    row, column = next((r, c) for r, step in enumerate(run.steps) for c, w in enumerate(step.cross_attention)
                       if w == strongest)
    cell = cells[row * len(run.source_tokens) + column]
    assert cell.get("fill") == "#" + "".join(f"{v:02x}" for v in HIGH)
    assert cell.find(NS + "title").text.endswith(f": {strongest:.2f}")


def test_lens_chart_holds_the_grid(runs):
    run = runs["lens"]
    root = _parse(lens_svg(run))
    depths = len(run.depth_labels)
    assert len(_group(root, "cells").findall(NS + "rect")) == depths * len(run.steps)
    labels = _group(root, "cell-labels")
    assert _texts(labels, "top1") == [show_token(d.top_k[0].token) + (CHOSEN_MARK if d.top_k[0].token_id ==
                                                                       step.token_id else "")
                                      for step in run.steps for d in step.depths]
    assert _texts(labels, "probability") == [probability(d.probability) for step in run.steps for d in step.depths]
    hits = sum(d.top_k[0].token_id == step.token_id for step in run.steps for d in step.depths)
    assert 0 < hits < depths * len(run.steps)
    assert len(_group(root, "chosen").findall(NS + "rect")) == hits
    assert len(_texts(_group(root, "row-labels"))) == depths
    headers = _texts(_group(root, "column-labels"))
    assert headers[1::2] == [show_token(step.token) for step in run.steps]
    assert _texts(_group(root, "legend"), "tick") == ["0%", "50.0%", "100.0%"]


def _hostile_decode(run):
    source = tuple(HOSTILE[i % len(HOSTILE)] for i in range(len(run.source_tokens)))
    steps = tuple(dataclasses.replace(step, token=HOSTILE[n % len(HOSTILE)]) for n, step in enumerate(run.steps))
    return dataclasses.replace(run, source_tokens=source, steps=steps, model="<b>&evil\u202e",
                               output_text="</svg><script>x</script>")


def _hostile_lens(run):
    steps = []
    for n, step in enumerate(run.steps):
        depths = tuple(dataclasses.replace(d, top_k=(dataclasses.replace(d.top_k[0], token=HOSTILE[(n + d.depth) %
                                                                                                  len(HOSTILE)]),)
                                           + d.top_k[1:]) for d in step.depths)
        steps.append(dataclasses.replace(step, token=HOSTILE[n % len(HOSTILE)], depths=depths))
    return dataclasses.replace(run, steps=tuple(steps), model="<b>&evil\u202e")


@pytest.mark.parametrize("name", ["greedy", "lens"])
def test_token_text_is_escaped(runs, name):
    run = _hostile_lens(runs[name]) if name == "lens" else _hostile_decode(runs[name])
    text = render_svg(run)
    root = _parse(text)
    assert "<script" not in text and "]]>" not in text.replace("]]&gt;", "")
    for raw in ("\u202e", "\x1b", "\x07", "\ufffe"):
        assert raw not in text
    assert "\\u202eevil" in text and "\\x1b[2J\\x07" in text and "\\ufffe" in text
    shown = _texts(_group(root, "cell-labels"), "top1") if name == "lens" else _texts(_group(root, "row-labels"))
    assert set(HOSTILE[:3]) <= {label.removesuffix(CHOSEN_MARK) for label in shown}  # XML gives back the tokens
    assert root.find(NS + "title").text.endswith("<b>&evil\\u202e")


def test_not_a_number_is_red_and_explained(runs):
    run = runs["greedy"]
    first = dataclasses.replace(run.steps[0], cross_attention=(math.nan,) * len(run.source_tokens))
    root = _parse(generate_svg(dataclasses.replace(run, steps=(first,) + run.steps[1:])))
    fills = [cell.get("fill") for cell in _group(root, "cells").findall(NS + "rect")]
    assert fills[:len(run.source_tokens)] == [NOT_A_NUMBER] * len(run.source_tokens)
    assert NOT_A_NUMBER not in fills[len(run.source_tokens):]
    assert "not a number" in _texts(_group(root, "legend"))


# ----------------------------------------------------------------------------- the command line


def test_generate_writes_the_chart(tmp_path):
    target = tmp_path / "out.svg"
    result = run_t5peek("generate", "-m", "demo", PROMPT, "-n", "3", "--svg", target)
    assert result.exit_code == 0, result.stderr
    assert f"wrote the SVG chart to {target}" in result.stderr
    root = _parse(target.read_text(encoding="utf-8"))
    assert len(_texts(_group(root, "row-labels"))) == 3


def test_lens_writes_the_chart_and_keeps_json_on_stdout(tmp_path):
    target = tmp_path / "lens.svg"
    result = run_t5peek("lens", "-m", "demo", PROMPT, "-n", "2", "--svg", target, "--json")
    data = result.json()
    root = _parse(target.read_text(encoding="utf-8"))
    assert _texts(_group(root, "cell-labels"), "probability") == [
        probability(d["probability"]) for step in data["steps"] for d in step["depths"]]


@pytest.fixture
def no_weights(monkeypatch):
    from t5peek import loading

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the usage error")

    monkeypatch.setattr(loading, "load_model", refuse)


@pytest.mark.parametrize("command", ["generate", "lens"])
def test_a_folder_is_refused_before_loading(tmp_path, no_weights, command):
    result = run_t5peek(command, "-m", "demo", PROMPT, "--svg", tmp_path)
    assert_clean_error(result, 2, "--svg", "is a folder")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# ----------------------------------------------------------------------------- in a real browser


def _chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def _pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """An 8-bit RGB or RGBA PNG's rows, unfiltered (no imaging library)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat = 8, b""
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        chunk = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        offset += 12 + length
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytes(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        previous = line
    return width, channels, rows


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("name", ["greedy", "lens"])
def test_browser_draws_the_chart(runs, tmp_path, name):
    chart = tmp_path / "chart.svg"
    chart.write_text(render_svg(runs[name]), encoding="utf-8")
    shot = tmp_path / "shot.png"
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
               "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
               "--window-size=900,560", chart.as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    width, channels, rows = _pixels(shot)
    colours = {row[i:i + 3] for row in rows[::3] for i in range(0, width * channels, channels * 3)}
    assert len(colours) > 20  # not blank: shades, text and the white page
    assert bytes(HIGH) in colours or any(max(abs(a - b) for a, b in zip(c, HIGH)) <= 2 for c in colours)
