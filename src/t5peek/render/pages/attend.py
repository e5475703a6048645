"""`attend`'s page: one head's numbers as a worked example, q·k, then softmax, then the mix of the values."""

from t5peek.render.pages.shell import View

MARKUP = """
<p data-role="what"></p>
<p><span class="label">prompt</span> <span data-role="prompt"></span></p>
<h3>1. Scores: the query against every key</h3>
<p class="dim" data-role="query"></p>
<h3>2. Softmax: scores into weights that sum to 1</h3>
<p class="dim">Click a key for its part of the mix.</p>
<div class="scroll" data-role="keys"></div>
<h3>3. Mix: the weighted sum of the value vectors</h3>
<div data-role="mix"></div>
<p data-role="check" class="dim"></p>
"""

SCRIPT = r"""
T5PEEK.views.attend = function (data, section) {
  "use strict";
  var T = T5PEEK, F = T.format, el = T.el, find = function (role) { return T.find(section, role); };
  function number(x, d) { return F.fixed(x, d === undefined ? 3 : d); }  // render/attend.py: number
  function vector(values, count) {
    var shown = values.slice(0, count).map(function (v) { return number(v); }).join(" ");
    return "[" + shown + (values.length > count ? " \u2026 (" + values.length + " values)" : "") + "]";
  }
  find("what").textContent = data.model + " \u00b7 " + data.kind + " \u00b7 " + data.module + " \u00b7 layer " +
    data.layer + " of 0-" + (data.layers - 1) + ", head " + data.head + " of 0-" + (data.heads - 1) +
    " \u00b7 query: position " + data.query_position + " (" + data.query_token + ")";
  find("prompt").textContent = data.prompt;
  find("query").textContent = "query q = " + vector(data.query, 8) + "; each key k: score = q\u00b7k" +
    (data.scaling !== 1 ? " \u00d7 " + number(data.scaling, 4) : "") +
    (data.buckets !== null ? " + the relative position bias" : "") + " (+ the mask).";
  var relative = data.buckets !== null, scaled = data.scaling !== 1;
  var masked = data.keys.some(function (k) { return k.masked; });
  var headers = ["j", "token"].concat(relative ? ["rel", "bucket"] : [], ["q\u00b7k"], scaled ? ["\u00d7" +
    number(data.scaling, 4)] : [], relative ? ["bias"] : [], masked ? ["mask"] : [], ["score", "weight", ""]);
  var numeric = headers.map(function (h) { return h !== "token" && h !== ""; });
  var strongest = 0;
  data.keys.forEach(function (k) { strongest = Math.max(strongest, F.number(k.weight) || 0); });
  var rows = data.keys.map(function (k) {
    return [String(k.position), k.token].concat(
      relative ? [k.relative_position ? (k.relative_position > 0 ? "+" : "") + k.relative_position : "0",
                  String(k.bucket)] : [],
      [number(k.dot)], scaled ? [number(k.scaled)] : [], relative ? [number(k.bias)] : [],
      masked ? [k.masked ? "masked" : "0"] : [],
      [k.masked ? "-inf" : number(k.score), F.probability(k.weight),
       T.bar(strongest ? F.number(k.weight) / strongest : 0, 120)]);
  });
  var table = T.table(headers, rows, numeric);
  find("keys").appendChild(table);
  var mix = find("mix");
  mix.appendChild(el("p", "head output = \u03a3 weight \u00d7 value = " + vector(data.head_output, 8), "mono"));
  var part = el("p", null, "mono"); mix.appendChild(part);
  function select(j) {
    var k = data.keys[j], w = F.number(k.weight);
    Array.prototype.forEach.call(table.querySelectorAll("tr"), function (tr, i) {
      tr.classList.toggle("active", i === j + 1);
    });
    part.textContent = "key " + k.position + " (" + k.token + "): weight " + F.probability(k.weight) +
      " \u00d7 value " + vector(k.value, 8) + " = " + vector(k.value.map(function (v) { return w * v; }), 8);
    section.dataset.key = String(j);
  }
  Array.prototype.forEach.call(table.querySelectorAll("tr"), function (tr, i) {
    if (i === 0) return;
    tr.classList.add("clickable");
    tr.addEventListener("click", function () { select(i - 1); });
  });
  var best = 0;
  data.keys.forEach(function (k, j) { if (F.number(k.weight) > F.number(data.keys[best].weight)) best = j; });
  select(best);
  mix.appendChild(el("p", "through the output projection: a push of norm " + number(data.contribution_norm) +
    " on the stream (the layer's whole output: norm " + number(data.output_norm) + ")", "dim"));
  find("check").textContent = "recomputed from the module's weights and checked against it: weights within " +
    F.expo(data.check.weights_max_abs_diff, 1) + ", head output within " +
    F.expo(data.check.head_output_max_abs_diff, 1);
  T.notes(section, data.notes);
};
"""

VIEW = View("attend", "attend: one head, in numbers", MARKUP, SCRIPT)
