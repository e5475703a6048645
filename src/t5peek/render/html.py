"""The HTML report of a decoding run: one self-contained page, no network requests.

The page carries its data as JSON inside a <script type="application/json"> block and draws itself with a
little inline JavaScript: the cross-attention map (generated tokens x source tokens) for a chosen decoder
layer and head, or the mean of the heads, and the top-k candidates of every step. A Content-Security-Policy
forbids every fetch, so the page cannot reach the network even by accident. When drawn, the script writes
`data-rendered-cells` on <body> (the browser test reads it).
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import tempfile
from pathlib import Path

from t5peek.generate import DecodeRun
from t5peek.jsonable import to_jsonable


def report_data(run: DecodeRun) -> dict:
    """What the page needs: the run as `generate --json` writes it, with the per-head attention, rounded to six
    decimals to keep the page small."""
    return to_jsonable(run.json_fields(head_attention=True), digits=6)


def render_html(run: DecodeRun) -> str:
    data = json.dumps(report_data(run), ensure_ascii=False, allow_nan=False)
    # inside <script>, "</script>" or "<!--" in a token would end the block: escape the characters that could
    data = data.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    title = html.escape(f"t5peek generate · {run.model}" if run.model else "t5peek generate")
    parts = {"TITLE": title, "DATA": data, "CSS": _CSS, "JS": _JS}
    # one pass, so that a prompt or token containing "{{JS}}" stays text
    return re.sub(r"\{\{(TITLE|DATA|CSS|JS)\}\}", lambda m: parts[m.group(1)], _PAGE)


def write_html(run: DecodeRun, path: Path) -> Path:
    """Write the page whole or not at all: a full disk leaves the old file (or none), never half a page."""
    path = Path(path).expanduser()
    page = render_html(run).encode("utf-8")
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(page)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{TITLE}}</title>
<style>{{CSS}}</style>
</head>
<body>
<header>
  <h1>t5peek generate</h1>
  <p id="meta"></p>
  <p><span class="label">prompt</span> <span id="prompt"></span></p>
  <p><span class="label">output</span> <strong id="output"></strong></p>
</header>
<noscript><p>This report draws itself with JavaScript; please enable it.</p></noscript>
<section>
  <h2>Cross-attention: where each generated token looked in the source</h2>
  <div class="controls">
    <label>decoder layer <select id="layer"></select></label>
    <label>head <select id="head"></select></label>
    <span id="scale" class="dim"></span>
  </div>
  <p class="dim">Rows are generated tokens (the step that produced them), columns are source tokens. Each row is
  the attention of that decoder step over the encoder output; darker is stronger (scaled to the strongest cell
  of the map shown). Click a row for that step's candidates.</p>
  <div class="scroll"><table id="map"></table></div>
</section>
<section>
  <h2>Step by step: the top candidates and the choice</h2>
  <div id="steps"></div>
</section>
<section>
  <h2>Settings</h2>
  <table id="settings" class="plain"></table>
  <p id="processors" class="dim"></p>
</section>
<script type="application/json" id="t5peek-data">{{DATA}}</script>
<script>{{JS}}</script>
</body>
</html>
"""

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em 2em; color: #1d1d1f;
       background: #fff; }
h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin: 1.6em 0 .5em; }
.dim { color: #6e6e73; } .label { color: #6e6e73; margin-right: .4em; }
code, .tok, td.num, select { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
.controls { display: flex; gap: 1.5em; align-items: center; margin: .4em 0; }
.scroll { overflow-x: auto; }
#map { border-collapse: collapse; }
#map th { font-weight: normal; font-size: 12px; padding: 2px 3px; }
#map thead th { writing-mode: vertical-rl; transform: rotate(180deg); text-align: left; vertical-align: bottom;
                max-height: 9em; white-space: nowrap; overflow: hidden; }
#map tbody th { text-align: right; white-space: nowrap; padding-right: .6em; cursor: pointer; }
#map td.cell { width: 22px; height: 22px; min-width: 22px; border: 1px solid #fff; padding: 0; }
#map tr.active th { background: #ffe9a8; }
#map td.focus { font-size: 12px; padding-left: .6em; white-space: nowrap; }
.step { border-top: 1px solid #e5e5ea; padding: .5em 0; }
.step.active { background: #fff8e1; }
.step h3 { font-size: 1em; margin: 0 0 .3em; font-weight: 600; }
table.plain { border-collapse: collapse; }
table.plain td, table.plain th { padding: 1px 10px 1px 0; text-align: left; }
table.plain td.num { text-align: right; }
tr.chosen td { font-weight: 700; }
.bar { display: inline-block; height: 10px; background: #8e44ad; vertical-align: middle; }
"""

_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("t5peek-data").textContent);
  var layerSelect = document.getElementById("layer");
  var headSelect = document.getElementById("head");
  var hasHeads = Array.isArray(data.head_attention) && data.head_attention.length === data.steps.length;

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }
  function fixed(x, d) { return typeof x === "number" ? x.toFixed(d) : String(x); }
  function pct(p) {  // the terminal's format (render/format.py: probability)
    if (typeof p !== "number") return String(p);
    if (p <= 0) return "0%";
    var percent = 100 * p;
    if (percent >= 0.1) return percent.toFixed(1) + "%";
    return percent >= 0.005 ? percent.toFixed(2) + "%" : "<0.01%";
  }

  document.getElementById("meta").textContent = [data.model, data.strategy + " decoding",
    data.steps.length + " steps", "stopped: " + data.stop_reason].filter(Boolean).join(" \u00b7 ");
  document.getElementById("output").textContent = data.output_text || "(empty)";
  document.getElementById("prompt").textContent = data.prompt;

  for (var l = 0; l < data.decoder_layers; l++) {
    if (!hasHeads && l !== data.layer) continue;
    var option = el("option", "layer " + l + (l === data.decoder_layers - 1 ? " (last)" : ""));
    option.value = String(l);
    if (l === data.layer) option.selected = true;
    layerSelect.appendChild(option);
  }
  var mean = el("option", "mean of heads"); mean.value = "mean"; headSelect.appendChild(mean);
  if (hasHeads) {
    for (var h = 0; h < data.heads; h++) {
      var opt = el("option", "head " + h); opt.value = String(h); headSelect.appendChild(opt);
    }
  }

  function weights(step, layer, head) {
    if (!hasHeads) return data.steps[step].cross_attention;
    var perHead = data.head_attention[step][layer];
    if (head !== "mean") return perHead[Number(head)];
    var out = new Array(data.source_tokens.length).fill(0);
    for (var k = 0; k < perHead.length; k++)
      for (var s = 0; s < out.length; s++) out[s] += perHead[k][s] / perHead.length;
    return out;
  }

  var table = document.getElementById("map");
  function drawMap() {
    var layer = Number(layerSelect.value), head = headSelect.value;
    var rows = data.steps.map(function (_, i) { return weights(i, layer, head); });
    var strongest = 0;
    rows.forEach(function (r) { r.forEach(function (w) { if (w > strongest) strongest = w; }); });
    strongest = strongest || 1;
    table.textContent = "";
    var thead = el("thead"), headRow = el("tr");
    headRow.appendChild(el("th", ""));
    data.source_tokens.forEach(function (t, i) {
      var th = el("th", t, "tok"); th.title = "source token " + i + ": " + t; headRow.appendChild(th);
    });
    headRow.appendChild(el("th", ""));
    thead.appendChild(headRow); table.appendChild(thead);
    var tbody = el("tbody"), cells = 0;
    rows.forEach(function (row, i) {
      var tr = el("tr"); tr.dataset.step = String(i);
      var label = el("th", data.steps[i].token, "tok");
      label.title = "step " + i + " produced " + data.steps[i].token;
      label.addEventListener("click", function () { select(i); });
      tr.appendChild(label);
      var best = 0;
      row.forEach(function (w, s) {
        var td = el("td", null, "cell");
        var a = Math.max(0, Math.min(1, w / strongest));
        td.style.background = "rgba(142, 68, 173, " + a.toFixed(3) + ")";
        td.title = data.steps[i].token + " \u2192 " + data.source_tokens[s] + ": " + fixed(w, 4);
        tr.appendChild(td); cells++;
        if (w > row[best]) best = s;
      });
      tr.appendChild(el("td", data.source_tokens[best] + " " + fixed(row[best], 2), "focus dim"));
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    document.getElementById("scale").textContent = "darkest = " + fixed(strongest, 3);
    document.body.dataset.renderedCells = String(cells);
    document.body.dataset.layer = layerSelect.value;
    document.body.dataset.head = headSelect.value;
  }

  function select(i) {
    Array.prototype.forEach.call(document.querySelectorAll(".active"), function (n) { n.classList.remove("active"); });
    var row = table.querySelector('tr[data-step="' + i + '"]'); if (row) row.classList.add("active");
    var box = document.getElementById("step-" + i);
    if (box) { box.classList.add("active"); box.scrollIntoView({block: "nearest"}); }
  }

  var beam = data.strategy.indexOf("beam") === 0;
  var stepsBox = document.getElementById("steps");
  data.steps.forEach(function (step, i) {
    var box = el("div", null, "step"); box.id = "step-" + i;
    var h3 = el("h3", "step " + i + ": " + step.token + "  (id " + step.token_id + ", " + step.rule +
      (step.beam !== null ? ", extending beam " + step.beam : "") + ")");
    box.appendChild(h3);
    box.appendChild(el("div", "decoder input: " + step.input_tokens.join(" "), "dim tok"));
    var t = el("table", null, "plain"), hr = el("tr");
    ["#", "id", "token", "logit", beam ? "log-prob" : "score", "prob", ""].forEach(function (c) { hr.appendChild(el("th", c)); });
    t.appendChild(hr);
    var list = step.top_k.map(function (c, r) { return [r + 1, c]; });
    if (step.chosen_rank === null) list.push(["\u2026", step.chosen]);
    list.forEach(function (pair) {
      var c = pair[1], tr = el("tr", null, c.token_id === step.token_id ? "chosen" : "");
      tr.appendChild(el("td", String(pair[0]), "num"));
      tr.appendChild(el("td", String(c.token_id), "num"));
      tr.appendChild(el("td", c.token, "tok"));
      tr.appendChild(el("td", fixed(c.logit, 2), "num"));
      tr.appendChild(el("td", fixed(c.score, 2), "num"));
      tr.appendChild(el("td", pct(c.probability), "num"));
      var barCell = el("td"), bar = el("span", null, "bar");
      bar.style.width = Math.round(120 * (typeof c.probability === "number" ? c.probability : 0)) + "px"; barCell.appendChild(bar);
      if (c.token_id === step.token_id) barCell.appendChild(el("span", " \u25c0 chosen"));
      tr.appendChild(barCell);
      t.appendChild(tr);
    });
    box.appendChild(t);
    stepsBox.appendChild(box);
  });

  var settings = document.getElementById("settings");
  Object.keys(data.settings).forEach(function (name) {
    var tr = el("tr"), s = data.settings[name];
    tr.appendChild(el("td", name, "tok"));
    tr.appendChild(el("td", JSON.stringify(s.value), "tok"));
    tr.appendChild(el("td", s.source, "dim"));
    settings.appendChild(tr);
  });
  document.getElementById("processors").textContent = data.processors.length ?
    "logits processors: " + data.processors.join(", ") : "no logits processors";

  // a link may preselect the view: report.html#layer=0&head=2
  location.hash.replace(/^#/, "").split("&").forEach(function (pair) {
    var kv = pair.split("=");
    var target = kv[0] === "layer" ? layerSelect : kv[0] === "head" ? headSelect : null;
    if (target && Array.prototype.some.call(target.options, function (o) { return o.value === kv[1]; }))
      target.value = kv[1];
  });
  function onChange() {
    try { history.replaceState(null, "", "#layer=" + layerSelect.value + "&head=" + headSelect.value); }
    catch (e) { /* some browsers refuse it for file:// pages; the view still changes */ }
    drawMap();
  }
  layerSelect.addEventListener("change", onChange);
  headSelect.addEventListener("change", onChange);
  headSelect.disabled = !hasHeads;
  layerSelect.disabled = !hasHeads;
  drawMap();
})();
"""
