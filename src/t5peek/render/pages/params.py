"""`params`'s page: the exact counts in a table with a bar per row, and the memory of the weights per dtype."""

from t5peek.render.pages.shell import View

MARKUP = """
<p data-role="what"></p>
<div data-role="rows"></div>
<h3>Memory of the weights</h3>
<div data-role="memory"></div>
"""

SCRIPT = r"""
T5PEEK.views.params = function (data, section) {
  "use strict";
  var T = T5PEEK, F = T.format, el = T.el, find = function (role) { return T.find(section, role); };
  find("what").textContent = data.model + " \u00b7 by " + data.by + " \u00b7 counted from " + data.counted_from;
  var blocks = data.rows.some(function (r) { return r.blocks; });
  var rows = data.rows.map(function (r) {
    return [r.label, F.comma(r.params), F.fixed(r.percent, 1), T.bar(F.number(r.percent) / 100, 160)].concat(
      blocks ? [r.blocks ? String(r.blocks) : "", r.per_block ? F.comma(r.per_block) : ""] : [], [r.note || ""]);
  });
  rows.push(["total", F.comma(data.total), "100.0", F.humanCount(data.total)].concat(blocks ? ["", ""] : [], [""]));
  var headers = ["", "parameters", "%", ""].concat(blocks ? ["blocks", "each"] : [], ["note"]);
  find("rows").appendChild(T.table(headers, rows, headers.map(function (h) {
    return h === "parameters" || h === "%" || h === "blocks" || h === "each";
  })));
  var memory = Object.keys(data.memory_bytes).map(function (k) { return [k, F.humanBytes(data.memory_bytes[k])]; });
  if (data.stored_bytes !== null)
    memory.push(["as stored (" + data.stored_dtype + ")", F.humanBytes(data.stored_bytes)]);
  find("memory").appendChild(T.table(["dtype", "memory"], memory, [false, true]));
  (data.tied || []).forEach(function (t) {
    find("memory").appendChild(el("p", "tied: " + t.stored_as + " = " + t.shared_with.join(", ") + " (" +
      F.comma(t.params) + ", counted once)", "dim"));
  });
  section.dataset.rows = String(data.rows.length);
  T.notes(section, data.notes);
};
"""

VIEW = View("params", "params: exact parameter counts", MARKUP, SCRIPT)
