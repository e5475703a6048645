"""`arch`'s page: the module tree with parameter counts and weight shapes, each node folding open and shut."""

from t5peek.render.pages.shell import View

MARKUP = """
<p data-role="what"></p>
<div class="controls"><button type="button" data-role="open">open all</button>
<button type="button" data-role="close">close all</button></div>
<div data-role="tree" class="arch-tree"></div>
"""

CSS = """
.arch-tree details { margin-left: 1.2em; }
.arch-tree summary { cursor: pointer; white-space: nowrap; }
.arch-tree .leaf { margin-left: 2.4em; white-space: nowrap; }
.arch-tree .count { color: #6e6e73; margin-left: .6em; }
.arch-tree .shape { color: #2980b9; margin-left: .6em; font-size: 12px; }
"""

SCRIPT = r"""
T5PEEK.views.arch = function (data, section) {
  "use strict";
  var T = T5PEEK, F = T.format, el = T.el, find = function (role) { return T.find(section, role); };
  find("what").textContent = data.model + " \u00b7 " + data.model_class + " \u00b7 total: " + F.comma(data.total) +
    " parameters (" + F.humanCount(data.total) + "), tied weights counted once";
  var nodes = 0;
  function line(node) {
    var box = el("span");
    var name = node.repeat > 1 ? node.name + ": " + node.repeat + " \u00d7 " + node["class"]
                               : node.name + " (" + node["class"] + ")";
    box.appendChild(el("span", name, "tok"));
    if (node.params) box.appendChild(el("span", F.humanCount(node.params) + (node.repeat > 1 ? " each" : ""), "count"));
    Object.keys(node.shapes || {}).forEach(function (k) {
      box.appendChild(el("span", k + " [" + node.shapes[k].join(", ") + "]", "shape"));
    });
    if (node.tied_params) box.appendChild(el("span", "incl. " + F.humanCount(node.tied_params) + " tied", "count"));
    if (node.differs) box.appendChild(el("span", node.differs, "count"));
    return box;
  }
  function draw(node, depth) {
    nodes++;
    if (!node.children.length) { var leaf = el("div", null, "leaf"); leaf.appendChild(line(node)); return leaf; }
    var details = el("details"), summary = el("summary");
    details.open = depth < 2;
    summary.appendChild(line(node));
    details.appendChild(summary);
    node.children.forEach(function (child) { details.appendChild(draw(child, depth + 1)); });
    if (node.hidden_children) details.appendChild(el("div", "\u2026 " + node.hidden_children + " more", "leaf dim"));
    return details;
  }
  var tree = find("tree");
  tree.appendChild(draw(data.root, 0));
  function openAll(open) {
    Array.prototype.forEach.call(tree.querySelectorAll("details"), function (d) { d.open = open; });
    section.dataset.open = String(tree.querySelectorAll("details[open]").length);
  }
  find("open").addEventListener("click", function () { openAll(true); });
  find("close").addEventListener("click", function () { openAll(false); });
  section.dataset.nodes = String(nodes);
  section.dataset.open = String(tree.querySelectorAll("details[open]").length);
  T.notes(section, data.notes);
};
"""

VIEW = View("arch", "arch: the module tree", MARKUP, SCRIPT, CSS)
