"""`trace`'s page: the module tree of each phase with its shapes (a selector switches phases), the decoding steps,
and with --compare the training view (teacher forcing) beside the inference view (cached steps, free-running)."""

from t5peek.render.pages.shell import View

MARKUP = """
<p data-role="what"></p>
<p class="dim" data-role="note"></p>
<div class="controls"><label>phase <select data-role="phase"></select></label></div>
<div class="scroll" data-role="tree"></div>
<div data-role="steps"></div>
<div data-role="compare"></div>
"""

CSS = """
.side-by-side { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
.side-by-side > div { flex: 1 1 22em; }
td.indent { white-space: pre; }
"""

SCRIPT = r"""
T5PEEK.views.trace = function (data, section) {
  "use strict";
  var T = T5PEEK, F = T.format, el = T.el, find = function (role) { return T.find(section, role); };
  function shapes(map) {
    if (!map) return "";
    return Object.keys(map).map(function (k) {
      var v = map[k];
      return k + " " + (Array.isArray(v) ? "[" + v.join(", ") + "]" : JSON.stringify(v));
    }).join(", ");
  }
  find("what").textContent = [data.model, data.model_class, data.view, data.attention_implementation + " attention",
    data.dtype, data.device].join(" \u00b7 ");
  find("note").textContent = data.view_note || "";
  var phase = find("phase");
  data.phases.forEach(function (p, i) {
    var option = el("option", p.name); option.value = String(i); phase.appendChild(option);
  });
  function drawPhase() {
    var p = data.phases[Number(phase.value)], tree = find("tree");
    tree.textContent = "";
    var rows = p.records.map(function (r) {
      return [new Array(r.level + 1).join("  ") + r.module, r["class"], shapes(r.input_shapes),
              shapes(r.output_shapes), F.fixed(r.time_ms, 2)];
    });
    var table = T.table(["module", "class", "in", "out", "ms"], rows, [false, false, false, false, true]);
    Array.prototype.forEach.call(table.querySelectorAll("tr td:first-child"), function (td) {
      td.classList.add("indent", "tok");
    });
    tree.appendChild(table);
    tree.appendChild(el("p", p.records.length + " modules, " + F.fixed(p.time_ms, 2) + " ms", "dim"));
    section.dataset.phase = phase.value;
    section.dataset.records = String(p.records.length);
  }
  phase.addEventListener("change", drawPhase);
  drawPhase();
  if (data.steps && data.steps.length) {
    var box = find("steps");
    box.appendChild(el("h3", "Decoding steps (inference: one token in, the caches grow)"));
    box.appendChild(T.table(["step", "reads", "position", "chose", "prob"], data.steps.map(function (s) {
      return [String(s.step), s.input_token, String(s.position), s.next_token, F.probability(s.next_probability)];
    }), [true, false, true, false, true]));
    if (data.generated_text !== undefined) box.appendChild(el("p", "generated: " + data.generated_text, "dim"));
  }
  var c = data.comparison;
  if (c) {
    var compare = find("compare");
    compare.appendChild(el("h3", "Training vs inference on the same tokens"));
    var sides = el("div", null, "side-by-side"), left = el("div"), right = el("div");
    left.appendChild(el("h3", "Training view: teacher forcing, one pass (loss " + F.fixed(c.forced_loss, 4) + ")"));
    left.appendChild(T.table(["pos", "reads", "label", "prob", "top"], c.positions.map(function (p) {
      return [String(p.position), p.input_token, p.label_token, F.probability(p.label_probability),
              String(p.forced_top_id)];
    }), [true, false, false, true, true]));
    right.appendChild(el("h3", "Inference view: cached steps (loss " + F.fixed(c.cached_loss, 4) +
      "), then free-running greedy"));
    right.appendChild(T.table(["pos", "cached top", "differs by", "free-running chose", "prob"],
      c.positions.map(function (p, i) {
        var free = c.free_running[i];
        return [String(p.position), String(p.cached_top_id),
                F.number(p.max_abs_diff) === 0 ? "0" : F.expo(p.max_abs_diff, 1),
                free ? free.chosen_token + " (" + free.chosen_id + ")" : "",
                free ? F.probability(free.probability) : ""];
      }), [true, true, true, false, true]));
    sides.appendChild(left); sides.appendChild(right); compare.appendChild(sides);
    compare.appendChild(el("p", (c.agrees ? "The two views agree" : "The two views differ") + ": largest logit " +
      "difference " + F.expo(c.max_abs_diff, 1) + ". Free-running: " + c.free_running_text +
      (c.first_departure === null ? "" : " (first departs from the target at position " + c.first_departure + ")")));
    T.notes(compare, c.notes);
    section.dataset.compared = String(c.positions.length);
  }
  T.notes(section, data.notes);
};
"""

VIEW = View("trace", "trace: every module's shapes", MARKUP, SCRIPT, CSS)
