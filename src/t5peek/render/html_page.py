"""The page of the HTML report (render/html.py fills it): its markup, style and script, kept apart from the
Python that packs the data."""

PAGE = """<!DOCTYPE html>
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
  <div class="scroll"><table id="map" class="map"></table></div>
</section>
<section>
  <h2>Self-attention: the encoder over the source, the decoder over its own input</h2>
  <div class="controls">
    <label>encoder layer <select id="encoder-layer"></select></label>
    <label>head <select id="encoder-head"></select></label>
    <span id="encoder-scale" class="dim"></span>
  </div>
  <p class="dim">Encoder: rows are source tokens, columns the source tokens each one attends to (every token sees
  every other).</p>
  <div class="scroll"><table id="encoder-map" class="map"></table></div>
  <p class="dim">Decoder, at the cross-attention's layer and head above: row t is the newest decoder input token of
  step t, columns the decoder input so far. It sees only the tokens before it: a causal triangle.</p>
  <div class="scroll"><table id="decoder-map" class="map"></table></div>
  <p id="self-note" class="dim"></p>
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

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em 2em; color: #1d1d1f;
       background: #fff; }
h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin: 1.6em 0 .5em; }
.dim { color: #6e6e73; } .label { color: #6e6e73; margin-right: .4em; }
code, .tok, td.num, select { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
.controls { display: flex; gap: 1.5em; align-items: center; margin: .4em 0; }
.scroll { overflow-x: auto; }
table.map { border-collapse: collapse; }
table.map th { font-weight: normal; font-size: 12px; padding: 2px 3px; }
table.map thead th { writing-mode: vertical-rl; transform: rotate(180deg); text-align: left;
                     vertical-align: bottom; max-height: 9em; white-space: nowrap; overflow: hidden; }
table.map tbody th { text-align: right; white-space: nowrap; padding-right: .6em; }
#map tbody th { cursor: pointer; }
table.map td.cell { width: 22px; height: 22px; min-width: 22px; border: 1px solid #fff; padding: 0;
                    font-size: 11px; text-align: center; color: #c0392b; }
#map tr.active th { background: #ffe9a8; }
table.map td.focus { font-size: 12px; padding-left: .6em; white-space: nowrap; }
.step { border-top: 1px solid #e5e5ea; padding: .5em 0; }
.step.active { background: #fff8e1; }
.step h3 { font-size: 1em; margin: 0 0 .3em; font-weight: 600; }
table.plain { border-collapse: collapse; }
table.plain td, table.plain th { padding: 1px 10px 1px 0; text-align: left; }
table.plain td.num { text-align: right; }
tr.chosen td { font-weight: 700; }
.bar { display: inline-block; height: 10px; background: #8e44ad; vertical-align: middle; }
"""

JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("t5peek-data").textContent);
  var layerSelect = document.getElementById("layer");
  var headSelect = document.getElementById("head");
  var encoderLayerSelect = document.getElementById("encoder-layer");
  var encoderHeadSelect = document.getElementById("encoder-head");
  var packed = data.attention || {};
  var NAN = packed.not_a_number, SCALE = packed.scale;
  var cross = null, encoder = null, encoderHeads = 0, decoder = null, decoderOffsets = [];
  var hasHeads = false;
  var S = data.source_tokens.length, L = data.decoder_layers, H = data.heads;

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
  function number(x) { return typeof x === "number" ? x : NaN; }  // JSON writes NaN as "nan"

  // every layer's and head's weights: one byte each (weight x SCALE, NAN: not a number), deflated, base64
  function inflate(part) {
    if (!part) return Promise.resolve(null);
    if (typeof DecompressionStream === "undefined")
      return Promise.reject(new Error("this browser cannot inflate the per-head maps"));
    var text = atob(part.data), bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (buffer) { return new Uint8Array(buffer); });
  }
  function weight(bytes, index) { var q = bytes[index]; return q === NAN ? NaN : q / SCALE; }
  // a row of `width` weights starting at `base`, for one head or the mean of `heads` heads `stride` apart
  function row(bytes, base, width, head, heads, stride) {
    var out = new Array(width).fill(0);
    var first = head === "mean" ? 0 : Number(head), last = head === "mean" ? heads : first + 1;
    for (var k = first; k < last; k++)
      for (var s = 0; s < width; s++) out[s] += weight(bytes, base + k * stride + s) / (last - first);
    return out;
  }
  function crossRow(step, layer, head) {
    if (!hasHeads) return data.steps[step].cross_attention.map(number);
    return row(cross, ((step * L + layer) * H) * S, S, head, H, S);
  }
  function encoderRow(query, layer, head) {
    return row(encoder, (layer * encoderHeads * S) * S + query * S, S, head, encoderHeads, S * S);
  }
  function decoderRow(step, layer, head) {
    var keys = step + 1;
    return row(decoder, decoderOffsets[step] + layer * H * keys, keys, head, H, keys);
  }

  // a map: rows of weights (a row may be shorter than the columns: the cells past its end stay empty)
  function drawGrid(table, rowLabels, columns, rows, what, onRow) {
    var strongest = 0;
    rows.forEach(function (r) { r.forEach(function (w) { if (w > strongest) strongest = w; }); });
    strongest = strongest || 1;
    table.textContent = "";
    var thead = el("thead"), headRow = el("tr");
    headRow.appendChild(el("th", ""));
    columns.forEach(function (t, i) {
      var th = el("th", t, "tok"); th.title = what + " " + i + ": " + t; headRow.appendChild(th);
    });
    headRow.appendChild(el("th", ""));
    thead.appendChild(headRow); table.appendChild(thead);
    var tbody = el("tbody"), cells = 0;
    rows.forEach(function (r, i) {
      var tr = el("tr"); tr.dataset.row = String(i);
      var label = el("th", rowLabels[i], "tok");
      if (onRow) onRow(tr, label, i);
      tr.appendChild(label);
      var best = -1;
      columns.forEach(function (_, s) {
        var td = el("td", null, s < r.length ? "cell" : "cell empty");
        if (s < r.length) {
          var w = r[s];
          if (isNaN(w)) { td.textContent = "?"; td.title = rowLabels[i] + " \u2192 " + columns[s] + ": not a number"; }
          else {
            td.style.background = "rgba(142, 68, 173, " + Math.max(0, Math.min(1, w / strongest)).toFixed(3) + ")";
            td.title = rowLabels[i] + " \u2192 " + columns[s] + ": " + fixed(w, 4);
            if (best < 0 || w > r[best]) best = s;
          }
          cells++;
        }
        tr.appendChild(td);
      });
      tr.appendChild(el("td", best < 0 ? "nan" : columns[best] + " " + fixed(r[best], 2), "focus dim"));
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    return {cells: cells, strongest: strongest};
  }

  document.getElementById("meta").textContent = [data.model, data.strategy + " decoding",
    data.steps.length + " steps", "stopped: " + data.stop_reason].filter(Boolean).join(" \u00b7 ");
  document.getElementById("output").textContent = data.output_text || "(empty)";
  document.getElementById("prompt").textContent = data.prompt;

  function fillSelects(layers, heads, shown, last, layerBox, headBox, all) {
    layerBox.textContent = ""; headBox.textContent = "";
    for (var l = 0; l < layers; l++) {
      if (!all && l !== shown) continue;
      var option = el("option", "layer " + l + (l === last ? " (last)" : ""));
      option.value = String(l);
      if (l === shown) option.selected = true;
      layerBox.appendChild(option);
    }
    var mean = el("option", "mean of heads"); mean.value = "mean"; headBox.appendChild(mean);
    for (var h = 0; all && h < heads; h++) {
      var opt = el("option", "head " + h); opt.value = String(h); headBox.appendChild(opt);
    }
    headBox.disabled = layerBox.disabled = !all;
  }

  var table = document.getElementById("map");
  function drawMap() {
    var layer = Number(layerSelect.value), head = headSelect.value;
    var rows = data.steps.map(function (_, i) { return crossRow(i, layer, head); });
    var drawn = drawGrid(table, data.steps.map(function (s) { return s.token; }), data.source_tokens, rows,
      "source token", function (tr, label, i) {
        tr.dataset.step = String(i);
        label.title = "step " + i + " produced " + data.steps[i].token;
        label.addEventListener("click", function () { select(i); });
      });
    document.getElementById("scale").textContent = "darkest = " + fixed(drawn.strongest, 3);
    document.body.dataset.renderedCells = String(drawn.cells);
    document.body.dataset.layer = layerSelect.value;
    document.body.dataset.head = headSelect.value;
    drawDecoder();
  }

  function drawEncoder() {
    if (!encoder) return;
    var layer = Number(encoderLayerSelect.value), head = encoderHeadSelect.value;
    var rows = data.source_tokens.map(function (_, q) { return encoderRow(q, layer, head); });
    var drawn = drawGrid(document.getElementById("encoder-map"), data.source_tokens, data.source_tokens, rows,
      "source token");
    document.getElementById("encoder-scale").textContent = "darkest = " + fixed(drawn.strongest, 3);
    document.body.dataset.encoderCells = String(drawn.cells);
  }

  function drawDecoder() {
    if (!decoder) return;
    var inputs = data.steps.map(function (s) { return s.input_tokens[s.input_tokens.length - 1]; });
    var layer = Number(layerSelect.value), head = headSelect.value;
    var rows = data.steps.map(function (_, t) { return decoderRow(t, layer, head); });
    var drawn = drawGrid(document.getElementById("decoder-map"), inputs, inputs, rows, "decoder input token");
    document.body.dataset.decoderCells = String(drawn.cells);
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
    ["#", "id", "token", "logit", beam ? "log-prob" : "score", "prob", ""].forEach(function (c) {
      hr.appendChild(el("th", c));
    });
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
      bar.style.width = Math.round(120 * (typeof c.probability === "number" ? c.probability : 0)) + "px";
      barCell.appendChild(bar);
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

  function onChange() {
    try {
      history.replaceState(null, "", "#layer=" + layerSelect.value + "&head=" + headSelect.value +
        (encoder ? "&encoder-layer=" + encoderLayerSelect.value + "&encoder-head=" + encoderHeadSelect.value : ""));
    } catch (e) { /* some browsers refuse it for file:// pages; the view still changes */ }
    drawMap();
  }
  layerSelect.addEventListener("change", onChange);
  headSelect.addEventListener("change", onChange);
  encoderLayerSelect.addEventListener("change", function () { onChange(); drawEncoder(); });
  encoderHeadSelect.addEventListener("change", function () { onChange(); drawEncoder(); });

  function start() {
    fillSelects(L, H, data.layer, L - 1, layerSelect, headSelect, hasHeads);
    if (encoder) {
      var layers = packed.encoder.shape[0];
      fillSelects(layers, encoderHeads, layers - 1, layers - 1, encoderLayerSelect, encoderHeadSelect, true);
    } else {
      encoderLayerSelect.disabled = encoderHeadSelect.disabled = true;
    }
    if (!encoder || !decoder) {
      document.getElementById("self-note").textContent = (packed.cross && !packed.encoder) ?
        "This model's encoder attends locally (windows or blocks): its self-attention is not a source \u00d7 " +
        "source map." : "The run kept no self-attention.";
    }
    // a link may preselect the view: report.html#layer=0&head=2&encoder-layer=1&encoder-head=mean
    var boxes = {"layer": layerSelect, "head": headSelect, "encoder-layer": encoderLayerSelect,
                 "encoder-head": encoderHeadSelect};
    location.hash.replace(/^#/, "").split("&").forEach(function (pair) {
      var kv = pair.split("="), target = boxes[kv[0]];
      if (target && Array.prototype.some.call(target.options, function (o) { return o.value === kv[1]; }))
        target.value = kv[1];
    });
    drawMap();
    drawEncoder();
  }

  Promise.all([inflate(packed.cross), inflate(packed.encoder), inflate(packed.decoder)]).then(function (parts) {
    cross = parts[0]; hasHeads = cross !== null;
    if (parts[1]) { encoder = parts[1]; encoderHeads = packed.encoder.shape[1]; }
    if (parts[2]) {
      decoder = parts[2];
      for (var t = 0, offset = 0; t < data.steps.length; t++) {
        decoderOffsets.push(offset);
        offset += L * H * (t + 1);
      }
    }
    start();
  }, function (error) {
    document.getElementById("self-note").textContent = error.message + "; the map shows the mean of the heads.";
    start();
  });
})();
"""
