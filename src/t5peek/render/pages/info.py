"""`info`'s page: the one-screen summary of a model as a table."""

from t5peek.render.pages.shell import View

MARKUP = """<div data-role="table"></div>"""

SCRIPT = r"""
T5PEEK.views.info = function (data, section) {
  "use strict";
  var T = T5PEEK, F = T.format;
  function show(v) {
    return v === null || v === undefined ? "-" : typeof v === "object" ? JSON.stringify(v) : String(v);
  }
  var counts = {encoder_layers: 1, decoder_layers: 1, d_model: 1, heads: 1, d_ff: 1, vocab_size: 1,
                max_positions: 1, decoder_max_positions: 1, relative_buckets: 1, relative_max_distance: 1};
  var skip = {schema_version: 1, t5peek_version: 1, command: 1};
  var rows = Object.keys(data).filter(function (k) { return !skip[k]; }).map(function (k) {
    var v = data[k];
    if (k === "total" && typeof v === "number") v = F.comma(v) + " (" + F.humanCount(v) + ")";
    else if (k === "stored_bytes" && typeof v === "number") v = F.humanBytes(v);
    else if (counts[k] && typeof v === "number") v = F.comma(v);
    else if (k === "task_prefixes" && v) v = Object.keys(v).map(function (t) { return t + ": " + v[t]; }).join("; ");
    return [k.replace(/_/g, " "), show(v)];
  });
  T.find(section, "table").appendChild(T.table(["", ""], rows));
  section.dataset.rows = String(rows.length);
};
"""

VIEW = View("info", "info: the model at a glance", MARKUP, SCRIPT)
