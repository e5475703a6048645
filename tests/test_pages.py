"""Every view's HTML page (`--html FILE`): built from the view's --json document, self-contained, within its size
budget, drawn by a real browser (headless Chromium) without a script error, and interactive; numbers formatted
exactly as the terminal formats them."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest
from support.browser import dump_dom, needs_browser, script_errors

pytest.importorskip("torch")

from t5peek.jsonable import document  # noqa: E402
from t5peek.render.format import human_bytes, human_count, probability  # noqa: E402
from t5peek.render.pages import VIEWS, command_for, inline, page_for  # noqa: E402
from t5peek.render.pages.packing import compact, expand  # noqa: E402
from t5peek.render.pages.shell import page  # noqa: E402

PROMPT = "translate English to Spanish: the red house is small"
EXTERNAL = re.compile(r"""(src|href|action|poster|data)\s*=\s*["']?\s*(https?:|//)""", re.I)
# the options of each view's CLI run in the golden test
CLI = {
    "arch": ("arch", "demo"), "params": ("params", "demo"),
    "budget": ("budget", "demo"), "trace": ("trace", "-m", "demo", PROMPT, "--target", "la casa roja", "--compare"),
    "generate": ("generate", "-m", "demo", PROMPT, "--self", "--occlusion"),
    "lens": ("lens", "-m", "demo", PROMPT), "attend": ("attend", "-m", "demo", PROMPT, "--step", "1"),
}


@pytest.fixture(scope="module")
def records():
    import t5peek

    model = t5peek.Model("demo")
    return {"info": model.info(), "arch": model.arch(), "params": model.params(),
            "trace": model.trace(PROMPT), "trace-compare": model.trace(PROMPT, target="la casa roja", compare=True),
            "generate": model.generate(PROMPT, keep_heads=True, self_attention=True, occlusion=True),
            "lens": model.lens(PROMPT), "attend": model.attend(PROMPT, step=1), "budget": model.budget()}


def _command(name: str) -> str:
    return name.split("-")[0]


def _blocks(text: str) -> dict[str, dict]:
    """Each data block of a page, by view, unpacked."""
    views = re.findall(r'<section id="([a-z]+)" class="view"', text)
    found = re.findall(r'<script type="application/json" id="t5peek-data">(.*?)</script>', text, re.S)
    assert len(views) == len(found) == 1
    return {views[0]: expand(json.loads(found[0]))}


# ----------------------------------------------------------------------------- the data


def test_packing_gives_back_the_document_exactly(records):
    for name, record in records.items():
        doc = document(_command(name), record)
        packed = compact(doc)
        assert expand(packed) == doc, name
        assert json.loads(json.dumps(packed)) == packed
    attend = document("attend", records["attend"])
    assert "$float32" in json.dumps(compact(attend))  # the 128 numbers of the contribution travel as bytes


def test_numbers_that_are_not_float32_stay_decimal():
    values = [0.1 * i for i in range(40)]  # float64 numbers: four bytes would change them
    assert compact({"x": values}) == {"x": values}
    ints = list(range(40))
    assert compact({"ids": ints}) == {"ids": ints}
    mixed = [1.0] * 39 + ["nan"]
    assert compact({"x": mixed}) == {"x": mixed}


@pytest.mark.slow
@pytest.mark.parametrize("view", [view for view in VIEWS if view != "info"])  # info's page: in the report only
def test_page_carries_the_json_document_of_the_same_run(view, tmp_path):
    """Golden: `t5peek VIEW ... --html FILE --json` writes a page whose data is the very document on stdout."""
    from helpers import run_t5peek

    page_file = tmp_path / f"{view}.html"
    run = run_t5peek(*CLI[view], "--html", page_file, "--json")
    assert run.exit_code == 0, run.stderr
    assert f"wrote the HTML report to {page_file}" in run.stderr
    blocks = _blocks(page_file.read_text(encoding="utf-8"))
    assert list(blocks) == [view]
    data = blocks[view]
    if view == "generate":
        assert data.pop("attention")["cross"] is not None
    assert data == json.loads(run.stdout)


def test_html_target_is_checked_before_the_model_loads(tmp_path):
    from helpers import run_t5peek

    run = run_t5peek("lens", "-m", "demo", PROMPT, "--html", tmp_path / "missing" / "lens.html")
    assert run.exit_code == 2 and "--html" in run.stderr and "does not exist" in run.stderr
    assert "Loading" not in run.stderr


@pytest.mark.parametrize("name", ["info", "arch", "params", "trace", "trace-compare", "generate", "lens", "attend",
                                  "budget"])
def test_page_is_self_contained_and_small(records, name):
    text = page_for(_command(name), records[name])
    assert not EXTERNAL.search(text)
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert "default-src 'none'" in text
    assert text.count("<script") == 3 and text.count("</script>") == 3
    assert len(text.encode("utf-8")) < 200_000, len(text.encode("utf-8"))  # the demo's pages: tens of KB


def test_hostile_text_stays_text(records):
    import dataclasses

    evil = '</script><img src="https://example.com/x.png"> {{JS}}'
    lens = dataclasses.replace(records["lens"], prompt=evil, output_text=evil, model="<b>m</b>")
    text = page_for("lens", lens)
    assert text.count("</script>") == 3 and not EXTERNAL.search(text) and "<b>m</b>" not in text
    assert _blocks(text)["lens"]["prompt"] == evil


def test_notebook_shows_the_page_inline(records):
    from t5peek.render.notebook import as_html
    from t5peek.render.registry import renderer_for

    for name in ("params", "lens"):
        record = records[name]
        shown = as_html(record, renderer_for(record))
        assert shown.startswith('<iframe class="t5peek-page" sandbox="allow-scripts"')
        assert "<details><summary>as the terminal draws it</summary><pre" in shown
        import html

        inner = html.unescape(re.search(r'srcdoc="([^"]*)"', shown).group(1))
        assert inner == page_for(command_for(record), record)
    assert inline(object()) is None


# ----------------------------------------------------------------------------- numbers as the terminal writes them


def _values() -> list[float]:
    rng = random.Random(0)
    values = [0.0, -0.0, 0.5, 1.5, 2.5, 0.125, 0.375, 1.125, 0.00125, 0.0625, 1e-12, 4.9e-5, 5e-5, 5.1e-5, 0.00099,
              0.001, 0.0009995, 0.99949, 0.9995, 0.99999, 1.0, 99.95, 999.5, 1024.0, 1023.95, 1e21, 123456789.125,
              -0.0049, -1.005, 2.675, 1e-300, 5e-324]
    for _ in range(600):
        values.append(rng.random() * 10 ** rng.randint(-9, 7) * rng.choice((1, -1)))
        values.append(round(rng.random() * 10 ** rng.randint(0, 4)) / 2 ** rng.randint(0, 6))  # ties
    return values


def _python_formats(values: list[float], counts: list[int]) -> dict:
    return {
        "fixed": [[f"{x:.{d}f}" for d in range(5)] for x in values],
        "expo": [f"{x:.1e}" for x in values], "general": [f"{x:.3g}" for x in values],
        "signed": [f"{x:+.2f}" for x in values], "percent": [f"{x:.0%}" for x in values],
        "probability": [probability(abs(x) if x < 1 else 1 / x) for x in values],
        "humanCount": [human_count(n) for n in counts], "humanBytes": [human_bytes(n) for n in counts],
        "comma": [f"{n:,}" for n in counts],
    }


FORMAT_TEST = r"""
<script>
(function () {
  var F = T5PEEK.format, values = JSON.parse(document.getElementById("values").textContent);
  var xs = values.x, ns = values.n;
  var out = {
    fixed: xs.map(function (x) { return [0, 1, 2, 3, 4].map(function (d) { return F.fixed(x, d); }); }),
    expo: xs.map(function (x) { return F.expo(x, 1); }), general: xs.map(function (x) { return F.general(x, 3); }),
    signed: xs.map(function (x) { return F.signed(x, 2); }), percent: xs.map(function (x) { return F.percent(x, 0); }),
    probability: xs.map(function (x) { return F.probability(x < 1 ? Math.abs(x) : 1 / x); }),
    humanCount: ns.map(F.humanCount), humanBytes: ns.map(F.humanBytes), comma: ns.map(F.comma)
  };
  var box = document.createElement("pre"); box.id = "formatted"; box.textContent = JSON.stringify(out);
  document.body.appendChild(box);
})();
</script>
"""


@pytest.mark.browser
@needs_browser
def test_page_formats_numbers_exactly_as_python(tmp_path):
    """The page's port of Python's float formatting (fixed, exponent, general; ties to even on the exact binary
    value) and of render/format.py's probability, human_count, human_bytes, against Python itself."""
    import html

    values = _values()
    counts = [0, 1, 999, 1000, 1125, 1250, 99_950, 99_949, 999_500, 1_470_976, 77_000_000, 2 ** 40, 5_883_904,
              1023, 1024, 1048575, 1048576 * 1023 + 524288, 123_456_789_012] + [random.Random(1).randrange(10 ** k)
                                                                                  for k in range(1, 15)]
    # the values' exact spelling: Python's repr reads back as the same double in JavaScript
    data = json.dumps({"x": [v if v != 0 or math.copysign(1, v) > 0 else "-0" for v in values], "n": counts})
    data = data.replace('"-0"', "-0.0")
    text = page("formats", "formats", []).replace(
        "</body>", f'<script type="application/json" id="values">{data}</script>{FORMAT_TEST}</body>')
    page_file = tmp_path / "formats.html"
    page_file.write_text(text, encoding="utf-8")
    dom = dump_dom(tmp_path, page_file)
    assert script_errors(dom) is None
    shown = json.loads(html.unescape(re.search(r'<pre id="formatted">(.*?)</pre>', dom, re.S).group(1)))
    expected = _python_formats(values, counts)
    for name, want in expected.items():
        assert len(shown[name]) == len(want), name
        mismatches = [(value, got, wanted) for value, got, wanted in
                      zip(values if name not in ("humanCount", "humanBytes", "comma") else counts, shown[name], want)
                      if got != wanted]
        assert not mismatches, (name, mismatches[:5])


# ----------------------------------------------------------------------------- in a real browser

# after the page has drawn itself: interact as a person would, then write what changed onto <html>
INTERACT = r"""
<script>
(function () {
  function rendered() { return document.querySelectorAll("section.view:not([data-rendered])").length === 0; }
  function change(select, value) { select.value = value; select.dispatchEvent(new Event("change")); }
  function done(results) { document.documentElement.setAttribute("data-test", JSON.stringify(results)); }
  function act() {
    var r = {}, s;
    if ((s = document.getElementById("lens"))) {
      change(s.querySelector('[data-role="mode"]'), "rank");
      r.lensMode = s.dataset.mode;
      r.lensFirstCell = s.querySelector("tbody td").textContent;
      s.querySelectorAll("thead th")[2].click();
      r.lensStep = s.dataset.step;
      r.lensDetail = s.querySelector('[data-role="detail"] h3').textContent;
    }
    if ((s = document.getElementById("attend"))) {
      s.querySelectorAll("table tr")[1].click();
      r.attendKey = s.dataset.key;
      r.attendPart = s.querySelector('[data-role="mix"] p:nth-child(2)').textContent;
    }
    if ((s = document.getElementById("trace"))) {
      var phase = s.querySelector('[data-role="phase"]');
      if (phase.options.length > 1) change(phase, "1");
      r.tracePhase = s.dataset.phase; r.traceRecords = s.dataset.records; r.traceCompared = s.dataset.compared || null;
    }
    if ((s = document.getElementById("budget"))) {
      s.querySelectorAll('[data-role="stack"] > div')[1].click();
      r.budgetPicked = s.dataset.picked;
    }
    if ((s = document.getElementById("arch"))) {
      s.querySelector('[data-role="close"]').click(); r.archClosed = s.dataset.open;
      s.querySelector('[data-role="open"]').click(); r.archOpen = s.dataset.open;
    }
    if ((s = document.getElementById("generate"))) {
      change(document.getElementById("head"), "2");
      r.generateHead = document.body.dataset.head;
      r.generateFocus = document.querySelector("#map td.focus").textContent;
      document.querySelector('#map tr[data-step="1"] th').click();
      r.generateStep = document.body.dataset.selectedStep;
    }
    r.rendered = Array.prototype.map.call(document.querySelectorAll("section.view[data-rendered]"),
                                          function (n) { return n.id; });
    done(r);
  }
  (function wait(n) { if (rendered() || n > 200) act(); else setTimeout(function () { wait(n + 1); }, 20); })(0);
})();
</script>
"""


def _interacted(tmp_path: Path, text: str, name: str) -> tuple[str, dict]:
    import html

    page_file = tmp_path / f"{name}.html"
    page_file.write_text(text.replace("</body>", INTERACT + "</body>"), encoding="utf-8")
    dom = dump_dom(tmp_path, page_file)
    assert script_errors(dom) is None, script_errors(dom)
    found = re.search(r'<html[^>]*\sdata-test="([^"]*)"', dom)
    assert found, "the page never finished drawing"
    return dom, json.loads(html.unescape(found.group(1)))


@pytest.mark.slow
@pytest.mark.browser
@needs_browser
@pytest.mark.parametrize("name", ["info", "arch", "params", "trace", "trace-compare", "lens", "attend", "budget"])
def test_browser_draws_each_page_and_its_controls_work(records, tmp_path, name):
    record = records[name]
    command = _command(name)
    dom, seen = _interacted(tmp_path, page_for(command, record), name)
    assert seen["rendered"] == [command]
    assert f'<section id="{command}" class="view" data-view="{command}"' in dom
    if name == "lens":
        depths, steps = len(record.depth_labels), len(record.steps)
        assert f'data-cells="{depths * steps}"' in dom
        assert seen["lensMode"] == "rank" and seen["lensFirstCell"] == str(record.steps[0].depths[0].rank)
        chosen = record.steps[1]
        assert seen["lensStep"] == "1"
        assert seen["lensDetail"] == (f"step 1: {chosen.token} (id {chosen.token_id}), logit {chosen.logit:.2f}, "
                                      f"probability {probability(chosen.probability)}")
    elif name == "attend":
        key = record.keys[0]
        assert seen["attendKey"] == "0" and seen["attendPart"].startswith(
            f"key 0 ({key.token}): weight {probability(key.weight)}")
    elif name == "trace":
        assert seen["tracePhase"] == "1" and seen["traceRecords"] == str(len(record.phases[1].records))
    elif name == "trace-compare":
        assert seen["traceCompared"] == str(len(record.comparison.positions))
        assert "Training view: teacher forcing" in dom and "Inference view: cached steps" in dom
    elif name == "budget":
        assert seen["budgetPicked"] not in (None, "")
        assert human_bytes(record.inference_peak_bytes) in dom
    elif name == "arch":
        assert seen["archClosed"] == "0" and int(seen["archOpen"]) > 3
        assert f"{record.total:,} parameters ({human_count(record.total)})" in dom
    elif name == "params":
        assert f"{record.total:,}" in dom and 'data-rows="' in dom
    elif name == "info":
        assert f"{record.total:,} ({human_count(record.total)})" in dom
