"""`generate`'s page: the cross-attention map per layer and head, the self-attention maps, occlusion, the top-k
of every step. Labels and the default maps (the run's layer, mean of heads) use the exact numbers of the --json
document; other layers and heads come from the packed bytes (render/html.py: packed_attention), labelled '≈'."""

from t5peek.render.pages.shell import View

MARKUP = """
<p><span class="label">model</span> <span id="meta"></span></p>
<p><span class="label">prompt</span> <span id="prompt"></span></p>
<p><span class="label">output</span> <strong id="output"></strong></p>
<h3>Cross-attention: where each generated token looked in the source</h3>
<div class="controls">
  <label>decoder layer <select id="layer"></select></label>
  <label>head <select id="head"></select></label>
  <span id="scale"></span>
</div>
<p class="dim">Rows are generated tokens (the step that produced them), columns are source tokens. Each row is
the attention of that decoder step over the encoder output; darker is stronger (scaled to the strongest cell
of the map shown). Click a row for that step's candidates.</p>
<div class="scroll"><table id="map" class="map"></table></div>
<div id="self-part">
<h3>Self-attention: the encoder over the source, the decoder over its own input</h3>
<div class="controls">
  <label>encoder layer <select id="encoder-layer"></select></label>
  <label>head <select id="encoder-head"></select></label>
  <span id="encoder-scale"></span>
</div>
<p class="dim">Encoder: rows are source tokens, columns the source tokens each one attends to (every token sees
every other).</p>
<div class="scroll"><table id="encoder-map" class="map"></table></div>
<p class="dim">Decoder, at the cross-attention's layer and head above: row t is the newest decoder input token of
step t, columns the decoder input so far. It sees only the tokens before it: a causal triangle.
<span id="decoder-scale"></span></p>
<div class="scroll"><table id="decoder-map" class="map"></table></div>
<p id="self-note" class="dim"></p>
</div>
<div id="occlusion" hidden>
<h3>Occlusion: what the output needed, beside where the decoder looked</h3>
<p id="occlusion-title" class="dim"></p>
<div id="occlusion-table"></div>
<p id="occlusion-summary"></p>
</div>
<h3>Step by step: the top candidates and the choice</h3>
<div id="steps"></div>
<h3>Settings</h3>
<table id="settings" class="plain"></table>
<p id="processors" class="dim"></p>
"""

CSS = """
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
.step h4 { font-size: 1em; margin: 0 0 .3em; font-weight: 600; }
tr.differs td { color: #9a6700; }
"""

SCRIPT = r"""
T5PEEK.views.generate = function (data, section) {
  "use strict";
  var T = T5PEEK, F = T.format, el = T.el;
  var $ = function (id) { return document.getElementById(id); };
  var layerSelect = $("layer"), headSelect = $("head");
  var encoderLayerSelect = $("encoder-layer"), encoderHeadSelect = $("encoder-head");
  var packed = data.attention || {};
  var NAN = packed.not_a_number, SCALE = packed.scale;
  var cross = null, encoder = null, encoderHeads = 0, decoder = null, decoderOffsets = [];
  var hasHeads = false;
  var S = data.source_tokens.length, L = data.decoder_layers, H = data.heads;
  var exactEncoder = data.encoder_self_attention || null;
  var exactDecoder = data.steps.length > 0 &&
    data.steps.every(function (s) { return Array.isArray(s.self_attention); });

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
  function row(bytes, base, width, head, heads, stride) {
    var out = new Array(width).fill(0);
    var first = head === "mean" ? 0 : Number(head), last = head === "mean" ? heads : first + 1;
    for (var k = first; k < last; k++)
      for (var s = 0; s < width; s++) out[s] += weight(bytes, base + k * stride + s) / (last - first);
    return out;
  }
  // the exact numbers of the --json document where it has them (the run's layer, mean of heads), else the bytes
  function crossRow(step, layer, head) {
    if (!hasHeads || (layer === data.layer && head === "mean"))
      return {exact: true, weights: data.steps[step].cross_attention.map(F.number)};
    return {exact: false, weights: row(cross, ((step * L + layer) * H) * S, S, head, H, S)};
  }
  function encoderRow(query, layer, head) {
    if (exactEncoder && layer === exactEncoder.layer && head === "mean")
      return {exact: true, weights: exactEncoder.weights[query].map(F.number)};
    var base = (layer * encoderHeads * S) * S + query * S;
    return {exact: false, weights: row(encoder, base, S, head, encoderHeads, S * S)};
  }
  function decoderRow(step, layer, head) {
    if (exactDecoder && layer === data.layer && head === "mean")
      return {exact: true, weights: data.steps[step].self_attention.map(F.number)};
    var keys = step + 1;
    return {exact: false, weights: row(decoder, decoderOffsets[step] + layer * H * keys, keys, head, H, keys)};
  }

  // a map: rows of weights (a row may be shorter than the columns: the cells past its end stay empty)
  function drawGrid(table, rowLabels, columns, rows, what, onRow) {
    var strongest = 0, exact = rows.every(function (r) { return r.exact; });
    var about = exact ? "" : "\u2248";
    rows.forEach(function (r) { r.weights.forEach(function (w) { if (w > strongest) strongest = w; }); });
    table.textContent = "";
    var thead = el("thead"), headRow = el("tr");
    headRow.appendChild(el("th", ""));
    columns.forEach(function (t, i) {
      var th = el("th", t, "tok"); th.title = what + " " + i + ": " + t; headRow.appendChild(th);
    });
    headRow.appendChild(el("th", ""));
    thead.appendChild(headRow); table.appendChild(thead);
    var tbody = el("tbody"), cells = 0;
    rows.forEach(function (entry, i) {
      var r = entry.weights, tr = el("tr"); tr.dataset.row = String(i);
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
            td.style.background = T.shade(w, strongest);
            td.title = rowLabels[i] + " \u2192 " + columns[s] + ": " + about + F.fixed(w, 4);
            if (best < 0 || w > r[best]) best = s;
          }
          cells++;
        }
        tr.appendChild(td);
      });
      tr.appendChild(el("td", best < 0 ? "nan" : columns[best] + " " + about + F.fixed(r[best], 2), "focus dim"));
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    return {cells: cells, strongest: strongest, exact: exact};
  }
  function scale(box, drawn) {
    T.legend(box, drawn.strongest, 2);
    box.title = drawn.exact ? "the exact weights of the run" : "from the page's one-byte copy of every head's weights";
  }

  $("meta").textContent = [data.model, data.strategy + " decoding",
    data.steps.length + " steps", "stopped: " + data.stop_reason].filter(Boolean).join(" \u00b7 ");
  $("output").textContent = data.output_text || "(empty)";
  $("prompt").textContent = data.prompt;

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

  var table = $("map");
  function drawMap() {
    var layer = Number(layerSelect.value), head = headSelect.value;
    var rows = data.steps.map(function (_, i) { return crossRow(i, layer, head); });
    var drawn = drawGrid(table, data.steps.map(function (s) { return s.token; }), data.source_tokens, rows,
      "source token", function (tr, label, i) {
        tr.dataset.step = String(i);
        label.title = "step " + i + " produced " + data.steps[i].token;
        label.addEventListener("click", function () { select(i); });
      });
    scale($("scale"), drawn);
    document.body.dataset.renderedCells = String(drawn.cells);
    document.body.dataset.layer = layerSelect.value;
    document.body.dataset.head = headSelect.value;
    drawDecoder();
  }

  function drawEncoder() {
    if (!encoder && !exactEncoder) return;
    var layer = Number(encoderLayerSelect.value), head = encoderHeadSelect.value;
    var rows = data.source_tokens.map(function (_, q) { return encoderRow(q, layer, head); });
    var drawn = drawGrid($("encoder-map"), data.source_tokens, data.source_tokens, rows, "source token");
    scale($("encoder-scale"), drawn);
    document.body.dataset.encoderCells = String(drawn.cells);
  }

  function drawDecoder() {
    var layer = Number(layerSelect.value), head = headSelect.value;
    if (!decoder && !(exactDecoder && layer === data.layer && head === "mean")) return;
    var inputs = data.steps.map(function (s) { return s.input_tokens[s.input_tokens.length - 1]; });
    var rows = data.steps.map(function (_, t) { return decoderRow(t, layer, head); });
    var drawn = drawGrid($("decoder-map"), inputs, inputs, rows, "decoder input token");
    scale($("decoder-scale"), drawn);
    document.body.dataset.decoderCells = String(drawn.cells);
  }

  function select(i) {
    Array.prototype.forEach.call(section.querySelectorAll(".active"), function (n) { n.classList.remove("active"); });
    var row = table.querySelector('tr[data-step="' + i + '"]'); if (row) row.classList.add("active");
    var box = $("step-" + i);
    if (box) { box.classList.add("active"); box.scrollIntoView({block: "nearest"}); }
    document.body.dataset.selectedStep = String(i);
  }

  function sourceName(i) {  // render/format.py: source_name
    var t = data.source_tokens;
    return t[i] + (t.indexOf(t[i]) !== t.lastIndexOf(t[i]) ? "[" + i + "]" : "");
  }
  function drop(value) {  // render/occlusion.py: signed
    if (value === null || value === undefined) return "-";
    value = F.number(value);
    if (value !== value) return "nan";
    return value >= 0 ? F.probability(value) : "-" + F.probability(-value);
  }
  if (data.occlusion) {
    var o = data.occlusion;
    $("occlusion").hidden = false;
    $("occlusion-title").textContent = "Each source token replaced by " + o.pad_token + " in turn, the output " +
      "re-scored teacher-forced (the model's probabilities, no logits processors); attention: decoder layer " +
      o.layer + ", mean of " + H + " heads. drop: probability with the full source minus probability with that " +
      "token replaced.";
    var rows = o.rows.map(function (r) {
      var finite = isFinite(F.number(r.probability));
      return [String(r.step), r.token, F.probability(r.probability),
              r.occlusion_index === null ? "-" : sourceName(r.occlusion_index), drop(r.drop),
              r.attention_index === null ? "-" : sourceName(r.attention_index) + " " + F.fixed(r.attention_weight, 2),
              !finite ? "? not finite" : r.agree ? "" : "\u2717 differs"];
    });
    var occlusionTable = T.table(["step", "token", "prob", "needs most", "drop", "looks at most", ""], rows,
                                 [true, false, true, false, true, false, false]);
    Array.prototype.forEach.call(occlusionTable.querySelectorAll("tr"), function (tr, i) {
      if (i > 0 && !o.rows[i - 1].agree) tr.className = "differs";
    });
    $("occlusion-table").appendChild(occlusionTable);
    $("occlusion-summary").textContent = o.total ? "agree " + o.agree + " of " + o.total + ": the source token " +
      "attended to most is the one whose removal lowers the probability most" : "no steps to compare";
    document.body.dataset.occlusionRows = String(o.rows.length);
  }

  var beam = data.strategy.indexOf("beam") === 0;
  var stepsBox = $("steps");
  data.steps.forEach(function (step, i) {
    var box = el("div", null, "step"); box.id = "step-" + i;
    box.appendChild(el("h4", "step " + i + ": " + step.token + "  (id " + step.token_id + ", " + step.rule +
      (step.beam !== null ? ", extending beam " + step.beam : "") + ")"));
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
      tr.appendChild(el("td", F.fixed(c.logit, 2), "num"));
      tr.appendChild(el("td", F.fixed(c.score, 2), "num"));
      tr.appendChild(el("td", F.probability(c.probability), "num"));
      var barCell = el("td");
      barCell.appendChild(T.bar(F.number(c.probability) || 0, 120));
      if (c.token_id === step.token_id) barCell.appendChild(el("span", " \u25c0 chosen"));
      tr.appendChild(barCell);
      t.appendChild(tr);
    });
    box.appendChild(t);
    stepsBox.appendChild(box);
  });

  var settings = $("settings");
  Object.keys(data.settings).forEach(function (name) {
    var tr = el("tr"), s = data.settings[name];
    tr.appendChild(el("td", name, "tok"));
    tr.appendChild(el("td", JSON.stringify(s.value), "tok"));
    tr.appendChild(el("td", s.source, "dim"));
    settings.appendChild(tr);
  });
  $("processors").textContent = data.processors.length ?
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
      var layers = packed.encoder.shape[0], shown = exactEncoder ? exactEncoder.layer : layers - 1;
      fillSelects(layers, encoderHeads, shown, layers - 1, encoderLayerSelect, encoderHeadSelect, true);
    } else if (exactEncoder) {
      fillSelects(exactEncoder.encoder_layers, exactEncoder.heads, exactEncoder.layer, exactEncoder.encoder_layers - 1,
                  encoderLayerSelect, encoderHeadSelect, false);
    } else {
      encoderLayerSelect.disabled = encoderHeadSelect.disabled = true;
    }
    if (!(encoder || exactEncoder) || !(decoder || exactDecoder)) {
      $("self-note").textContent = (packed.cross && !packed.encoder) ?
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

  return Promise.all([inflate(packed.cross), inflate(packed.encoder), inflate(packed.decoder)]).then(function (parts) {
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
    $("self-note").textContent = error.message + "; the map shows the mean of the heads.";
    cross = encoder = decoder = null; hasHeads = false;
    start();
  });
};
"""

VIEW = View("generate", "generate: decoding step by step", MARKUP, SCRIPT, CSS)
