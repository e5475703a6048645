"""`lens`'s page: a depth x step grid of the chosen token's rank and probability at every depth; click a step for
its depths, each with its top-k, the chosen token's rank and probability, and the sublayer's push on its logit."""

from t5peek.render.pages.shell import View

MARKUP = """
<p><span class="label">prompt</span> <span data-role="prompt"></span></p>
<p><span class="label">output</span> <strong data-role="output"></strong></p>
<p class="dim" data-role="method"></p>
<div class="controls">
  <label>cells show <select data-role="mode">
    <option value="probability">the chosen token's probability</option>
    <option value="rank">the chosen token's rank</option>
    <option value="top">the top-1 token</option>
  </select></label>
  <span data-role="legend"></span>
</div>
<p class="dim">Rows are depths (the stream after the embedding and after each sublayer), columns are steps, each
headed by the token it chose; shade: the chosen token's probability at that depth. A framed cell is the depth from
which the chosen token stays on top. Click a step for its depths.</p>
<div class="scroll"><table class="lens-grid" data-role="grid"></table></div>
<div data-role="detail"></div>
"""

CSS = """
table.lens-grid { border-collapse: collapse; font-size: 12px; }
table.lens-grid th { font-weight: normal; padding: 2px 6px; white-space: nowrap; }
table.lens-grid thead th { cursor: pointer; }
table.lens-grid thead th.active { background: #ffe9a8; }
table.lens-grid td { min-width: 3.5em; height: 20px; text-align: center; border: 1px solid #fff; padding: 0 3px; }
table.lens-grid td.settled { outline: 2px solid #1d1d1f; outline-offset: -2px; }
"""

SCRIPT = r"""
T5PEEK.views.lens = function (data, section) {
  "use strict";
  var T = T5PEEK, F = T.format, el = T.el, find = function (role) { return T.find(section, role); };
  var mode = find("mode"), grid = find("grid"), detail = find("detail");
  find("prompt").textContent = data.prompt;
  find("output").textContent = (data.target !== null ? "(teacher forcing) " : "") + data.output_text;
  find("method").textContent = data.lens_method + " " + data.method + " Head: " + data.head + ".";
  var depths = data.depth_labels, steps = data.steps;
  T.legend(find("legend"), 1, 1);

  function cellText(d, how) {
    if (how === "rank") return String(d.rank);
    if (how === "top") return d.top_k.length ? d.top_k[0].token : "";
    return F.probability(d.probability);
  }
  function drawGrid() {
    var how = mode.value;
    grid.textContent = "";
    var head = el("tr");
    head.appendChild(el("th", "depth"));
    steps.forEach(function (s, i) {
      var th = el("th", s.step + " " + s.token, "tok");
      th.dataset.step = String(i);
      th.title = "step " + s.step + ": read " + s.input_token + ", chose " + s.token;
      th.addEventListener("click", function () { select(i); });
      head.appendChild(th);
    });
    var thead = el("thead"); thead.appendChild(head); grid.appendChild(thead);
    var tbody = el("tbody"), cells = 0;
    depths.forEach(function (label, d) {
      var tr = el("tr");
      tr.appendChild(el("th", label));
      steps.forEach(function (s) {
        var depth = s.depths[d], td = el("td", cellText(depth, how), "tok");
        var p = F.number(depth.probability);
        td.style.background = T.shade(p === p ? p : 0, 1);
        if (p > 0.6) td.style.color = "#fff";
        if (s.settled_depth === d) td.classList.add("settled");
        td.title = label + ", step " + s.step + ": " + s.token + " rank " + depth.rank + ", " +
          F.probability(depth.probability);
        tr.appendChild(td);
        cells++;
      });
      tbody.appendChild(tr);
    });
    grid.appendChild(tbody);
    section.dataset.cells = String(cells);
    section.dataset.mode = how;
  }

  function select(i) {
    var s = steps[i];
    Array.prototype.forEach.call(grid.querySelectorAll("thead th"), function (th) {
      th.classList.toggle("active", th.dataset.step === String(i));
    });
    detail.textContent = "";
    detail.appendChild(el("h3", "step " + s.step + ": " + s.token + " (id " + s.token_id + "), logit " +
      F.fixed(s.logit, 2) + ", probability " + F.probability(s.probability)));
    detail.appendChild(el("p", "decoder input " + s.input_token + (s.settled_depth === null ? "; never settles" :
      "; on top from " + depths[s.settled_depth]), "dim"));
    var strongest = 0;
    s.depths.forEach(function (d) { strongest = Math.max(strongest, Math.abs(F.number(d.contribution)) || 0); });
    var rows = s.depths.map(function (d) {
      var push = F.number(d.contribution), box = el("span");
      box.appendChild(T.bar(strongest ? Math.abs(push) / strongest : 0, 120, push < 0));
      return [depths[d.depth], String(d.rank), F.probability(d.probability), F.signed(d.contribution, 2), box,
              d.top_k.map(function (c) { return c.token + " " + F.probability(c.probability); }).join("  ")];
    });
    detail.appendChild(T.table(["depth", "rank", "prob", "push", "", "top-" + data.top_k], rows,
                               [false, true, true, true, false, false]));
    if (s.source_push !== null && s.source_push !== undefined)
      detail.appendChild(el("p", "from the source (cross-attention) " + F.signed(s.source_push, 2) +
        ", from the decoder's own prefix (self-attention) " + F.signed(s.prefix_push, 2), "dim"));
    section.dataset.step = String(i);
  }

  mode.addEventListener("change", drawGrid);
  drawGrid();
  if (steps.length) select(0);
  T.notes(section, data.notes);
};
"""

VIEW = View("lens", "lens: the next token emerging through the decoder", MARKUP, SCRIPT, CSS)
