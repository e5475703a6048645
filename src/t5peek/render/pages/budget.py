"""`budget`'s page: a stacked bar of where the memory of the peak goes, and every row with its formula."""

from t5peek.render.pages.shell import View

MARKUP = """
<p data-role="what"></p>
<div class="stack" data-role="stack"></div>
<p data-role="picked" class="mono"></p>
<div data-role="rows"></div>
<p data-role="fit"></p>
"""

CSS = """
.stack { display: flex; width: 100%; max-width: 60em; height: 28px; border: 1px solid #ccc; margin: .6em 0; }
.stack > div { height: 100%; cursor: pointer; min-width: 1px; }
.stack > div.active { outline: 2px solid #1d1d1f; outline-offset: -2px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: .3em; }
"""

SCRIPT = r"""
T5PEEK.views.budget = function (data, section) {
  "use strict";
  var T = T5PEEK, F = T.format, el = T.el, find = function (role) { return T.find(section, role); };
  var COLOURS = ["#8e44ad", "#2980b9", "#27ae60", "#d35400", "#c0392b", "#16a085", "#7f8c8d", "#f39c12"];
  function amount(r) {  // render/budget.py: the amount column
    if (r.flops !== null && r.flops !== undefined) return F.humanCount(r.flops) + " FLOP";
    return r.bytes !== null && r.bytes !== undefined ? F.humanBytes(r.bytes) : "unknown";
  }
  find("what").textContent = [data.model, data.mode, "batch " + data.batch, "source " + data.source,
    "target " + data.target, data.dtype, data.device].join(" \u00b7 ");
  var peakKey = data.mode === "train" ? "training_peak" : "inference_peak";
  var peak = data.mode === "train" ? data.training_peak_bytes : data.inference_peak_bytes;
  // the parts of the peak: the weights, then each memory row of the mode's group but the totals and per-token rates
  var group = data.rows.filter(function (r) { return r.key === peakKey; }).map(function (r) { return r.group; })[0];
  var parts = data.rows.filter(function (r) {
    return r.bytes !== null && !r.total &&
      ((r.group === group && r.key.indexOf("per_token") < 0) || r.key === "weights");
  });
  var stack = find("stack"), picked = find("picked"), sum = 0;
  parts.forEach(function (r) { sum += r.bytes; });
  function pick(i) {
    Array.prototype.forEach.call(stack.children, function (d, j) { d.classList.toggle("active", i === j); });
    var r = parts[i];
    picked.textContent = r.what + ": " + amount(r) + " (" + F.percent(r.bytes / sum, 1) + " of the bar) \u2014 " +
      r.formula;
    section.dataset.picked = r.key;
  }
  parts.forEach(function (r, i) {
    var part = el("div");
    part.style.width = (100 * r.bytes / (sum || 1)) + "%";
    part.style.background = COLOURS[i % COLOURS.length];
    part.title = r.what + ": " + amount(r);
    part.addEventListener("click", function () { pick(i); });
    stack.appendChild(part);
  });
  var legend = parts.map(function (r, i) {
    var swatch = el("span", null, "swatch"); swatch.style.background = COLOURS[i % COLOURS.length];
    var label = el("span"); label.appendChild(swatch); label.appendChild(el("span", r.what));
    return [label, amount(r), F.percent(r.bytes / (sum || 1), 1)];
  });
  find("rows").appendChild(T.table(["part of the bar", "memory", "share"], legend, [false, true, true]));
  find("rows").appendChild(el("p", "The bar: " + F.humanBytes(sum) + " in all; the " +
    (data.mode === "train" ? "training" : "inference") + " peak, where the parts are not all alive at once: " +
    F.humanBytes(peak) + ".", "dim"));
  find("rows").appendChild(el("h3", "Every row"));
  find("rows").appendChild(T.table(["", "what", "amount", "formula", "modules"], data.rows.map(function (r) {
    return [r.group, r.what, amount(r), r.formula, r.modules];
  }), [false, false, true, false, false]));
  find("fit").textContent = "needs " + F.humanBytes(data.needed_bytes) + ", " + (data.available_bytes === null ?
    "available unknown" : F.humanBytes(data.available_bytes) + " available on " + data.available_on) + ": " +
    (data.fits === null ? "unknown" : data.fits ? "fits" : "does not fit");
  section.dataset.parts = String(parts.length);
  if (parts.length) pick(0);
  T.notes(section, data.notes);
};
"""

VIEW = View("budget", "budget: where the memory goes", MARKUP, SCRIPT, CSS)
