"""The page every view's HTML is drawn in: one self-contained file, no network (a Content-Security-Policy forbids
every request), its data as JSON in <script type="application/json"> blocks, one per view, drawn by inline
JavaScript. A single view's page and the `report` page are the same shell with one section or several.

The script formats numbers exactly as the terminal does (`t5peek.render.format`): `FORMAT_JS` is a port of
Python's float formatting (correctly rounded, ties to even) on the exact binary value, tested against Python in a
real browser. Any script error is written onto <html data-script-error> and shown on the page."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass

from t5peek.render.pages.packing import compact


@dataclass(frozen=True)
class View:
    """One view's part of a page: its section's markup, style and drawing script (which registers
    `T5PEEK.views[name] = function (doc, section) {...}`)."""

    name: str
    title: str
    markup: str
    script: str
    css: str = ""


@dataclass(frozen=True)
class Section:
    view: View
    data: dict  # the view's --json document (packed by `compact` on the way into the page)
    extra: dict | None = None  # data beside the document (generate: every head's attention, packed)
    error: str | None = None  # the view could not run: why, shown in its place


def page(title: str, heading: str, sections: list[Section], contents: bool = False, subtitle: str = "") -> str:
    """The whole page. `contents`: a table of contents linking each section (the report)."""
    single = len(sections) == 1
    blocks, markup, scripts, styles = [], [], [], []
    for section in sections:
        view = section.view
        body = view.markup if section.error is None else f'<p class="failed">{html.escape(section.error)}</p>'
        markup.append(f'<section id="{view.name}" class="view" data-view="{view.name}">\n'
                      f'<h2 class="view-title">{html.escape(view.title)}</h2>\n{body}\n</section>')
        if section.error is None:
            data = dict(section.data)
            if section.extra:
                data.update(section.extra)
            # a single view's page keeps the block generate's page always had (bench/run.py reads it)
            opening = ('<script type="application/json" id="t5peek-data">' if single else
                       f'<script type="application/json" class="t5peek-data" data-view="{view.name}" '
                       f'id="t5peek-data-{view.name}">')
            blocks.append(f"{opening}{_json(compact(data))}</script>")
        if view.script not in scripts:
            scripts.append(view.script)
            styles.append(view.css)
    nav = ""
    if contents:
        links = "".join(f'<li><a href="#{s.view.name}">{html.escape(s.view.title)}</a></li>' for s in sections)
        nav = f'<nav id="contents"><h2>Contents</h2><ol>{links}</ol></nav>'
    parts = {"TITLE": html.escape(title), "HEADING": html.escape(heading), "SUBTITLE": html.escape(subtitle),
             "CSS": CSS + "".join(styles), "NAV": nav, "SECTIONS": "\n".join(markup), "DATA": "\n".join(blocks),
             "CATCH": CATCH_JS, "JS": FORMAT_JS + CORE_JS + "".join(scripts) + BOOT_JS}
    # one pass, so that a prompt or token containing "{{JS}}" stays text
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda m: parts[m.group(1)], PAGE)


def _json(data: dict) -> str:
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    # inside <script>, "</script>" or "<!--" in a token would end the block: escape the characters that could
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{TITLE}}</title>
<style>{{CSS}}</style>
<script>{{CATCH}}</script>
</head>
<body>
<header>
  <h1>{{HEADING}}</h1>
  <p class="dim">{{SUBTITLE}}</p>
</header>
<p id="script-errors" class="failed" hidden></p>
<noscript><p>This page draws itself with JavaScript; please enable it.</p></noscript>
{{NAV}}
{{SECTIONS}}
{{DATA}}
<script>{{JS}}</script>
</body>
</html>
"""

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em 2em; color: #1d1d1f;
       background: #fff; }
h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin: 1.6em 0 .5em; }
h2.view-title { font-size: 1.25em; border-bottom: 2px solid #e5e5ea; padding-bottom: .2em; margin-top: 2em; }
h3 { font-size: 1em; margin: 1em 0 .4em; }
.dim { color: #6e6e73; } .label { color: #6e6e73; margin-right: .4em; }
.failed { color: #b00020; }
code, .tok, td.num, select, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
.controls { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: center; margin: .4em 0; }
.scroll { overflow-x: auto; }
table.plain { border-collapse: collapse; }
table.plain td, table.plain th { padding: 1px 10px 1px 0; text-align: left; vertical-align: top; }
table.plain td.num, table.plain th.num { text-align: right; }
tr.chosen td { font-weight: 700; }
tr.clickable, .clickable { cursor: pointer; }
tr.active td, td.active { background: #ffe9a8; }
.bar { display: inline-block; height: 10px; background: #8e44ad; vertical-align: middle; }
.bar.negative { background: #c0392b; }
.legend { display: inline-flex; align-items: center; gap: .4em; font-size: 12px; }
.legend .ramp { display: inline-block; width: 120px; height: 10px; border: 1px solid #ccc;
                background: linear-gradient(to right, rgba(142, 68, 173, 0), rgba(142, 68, 173, 1)); }
nav#contents ol { columns: 2; max-width: 30em; }
"""

# Python's float formatting on the exact binary value of a double, rounding half to even as CPython does:
# fixed(x, d) is f"{x:.{d}f}", expo(x, d) f"{x:.{d}e}", general(x, p) f"{x:.{p}g}"; then the helpers of
# t5peek.render.format (probability, human_count, human_bytes) and the other formats the renderers use.
FORMAT_JS = r"""
var T5PEEK = {views: {}, format: {}};
(function (F) {
  "use strict";
  var view = new DataView(new ArrayBuffer(8));
  // x = D / 10^s exactly, D a BigInt (x finite, >= 0)
  function exact(x) {
    view.setFloat64(0, x);
    var hi = view.getUint32(0), lo = view.getUint32(4);
    var exponent = (hi >>> 20) & 0x7ff;
    var mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
    if (exponent === 0) exponent = 1; else mantissa |= 1n << 52n;
    var e = exponent - 1075;
    if (e >= 0) return {D: mantissa << BigInt(e), s: 0};
    return {D: mantissa * 5n ** BigInt(-e), s: -e};
  }
  // round D / 10^s to d decimals, half to even: the integer N with N / 10^d nearest
  function scaled(value, d) {
    if (d >= value.s) return value.D * 10n ** BigInt(d - value.s);
    var p = 10n ** BigInt(value.s - d), q = value.D / p, r = value.D % p;
    if (2n * r > p || (2n * r === p && q % 2n === 1n)) q += 1n;
    return q;
  }
  function special(x) {
    if (typeof x === "string") x = F.number(x);
    if (x !== x) return "nan";
    if (x === Infinity) return "inf";
    if (x === -Infinity) return "-inf";
    return null;
  }
  function negative(x) { return x < 0 || Object.is(x, -0); }
  F.number = function (x) {  // t5peek's JSON writes non-finite numbers as "nan", "inf", "-inf"
    if (typeof x === "number") return x;
    return x === "inf" ? Infinity : x === "-inf" ? -Infinity : NaN;
  };
  F.fixed = function (x, d) {
    var s = special(x); if (s) return s;
    var digits = scaled(exact(Math.abs(x)), d).toString();
    if (d > 0) {
      while (digits.length <= d) digits = "0" + digits;
      digits = digits.slice(0, digits.length - d) + "." + digits.slice(digits.length - d);
    }
    return (negative(x) ? "-" : "") + digits;
  };
  // the exponent E and the p significant digits of x rounded (x > 0)
  function significant(x, p) {
    var value = exact(x), whole = value.D.toString(), E = whole.length - 1 - value.s;
    var N = scaled(value, p - 1 - E);
    if (N.toString().length > p) { E += 1; N = scaled(value, p - 1 - E); }
    return {E: E, digits: N.toString()};
  }
  function exponentText(E) { return (E < 0 ? "-" : "+") + (Math.abs(E) < 10 ? "0" : "") + Math.abs(E); }
  F.expo = function (x, d) {
    var s = special(x); if (s) return s;
    var sign = negative(x) ? "-" : "";
    if (x === 0) return sign + F.fixed(0, d) + "e+00";
    var r = significant(Math.abs(x), d + 1);
    return sign + r.digits[0] + (d > 0 ? "." + r.digits.slice(1) : "") + "e" + exponentText(r.E);
  };
  function strip(text) { return text.indexOf(".") < 0 ? text : text.replace(/0+$/, "").replace(/\.$/, ""); }
  F.general = function (x, p) {
    var s = special(x); if (s) return s;
    p = p || 1;
    var sign = negative(x) ? "-" : "";
    if (x === 0) return sign + "0";
    var r = significant(Math.abs(x), p);
    if (r.E >= -4 && r.E < p) return sign + strip(F.fixed(Math.abs(x), p - 1 - r.E));
    var mantissa = strip(r.digits[0] + "." + r.digits.slice(1));
    return sign + mantissa + "e" + exponentText(r.E);
  };
  F.signed = function (x, d) {  // f"{x:+.{d}f}"
    var text = F.fixed(x, d);
    return text[0] === "-" ? text : "+" + text;
  };
  F.percent = function (x, d) {  // f"{x:.{d}%}"
    var s = special(x); if (s) return s + "%";
    return F.fixed(F.number(x) * 100, d) + "%";
  };
  F.probability = function (p) {  // render/format.py: probability
    if (p === null || p === undefined) return "nan";
    p = F.number(p);
    if (p !== p) return "nan";
    if (p <= 0) return "0%";
    var percent = p * 100;
    if (percent >= 0.1) return F.fixed(percent, 1) + "%";
    return percent >= 0.005 ? F.fixed(percent, 2) + "%" : "<0.01%";
  };
  F.comma = function (n) {  // f"{n:,}" of an integer
    if (n === null || n === undefined) return "?";
    var text = String(Math.abs(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return (n < 0 ? "-" : "") + text;
  };
  F.humanCount = function (n) {  // render/format.py: human_count
    if (n === null || n === undefined) return "?";
    var units = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "K"]];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(n) >= units[i][0]) {
        var v = n / units[i][0];
        return (v < 100 ? F.general(v, 3) : F.fixed(v, 0)) + units[i][1];
      }
    }
    return String(n);
  };
  F.humanBytes = function (n) {  // render/format.py: human_bytes
    if (n === null || n === undefined) return "?";
    var value = Number(n), units = ["B", "KiB", "MiB", "GiB", "TiB"];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(value) < 1024 || units[i] === "TiB")
        return units[i] === "B" ? F.fixed(value, 0) + " B" : F.fixed(value, 1) + " " + units[i];
      value /= 1024;
    }
    return F.fixed(value, 1) + " TiB";
  };
})(T5PEEK.format);
"""

# Written first, before anything can fail: every uncaught error or rejected promise lands on <html> and on the page.
CATCH_JS = r"""
(function () {
  function record(message) {
    var root = document.documentElement;
    root.setAttribute("data-script-error", (root.getAttribute("data-script-error") || "") + message + "; ");
    var box = document.getElementById("script-errors");
    if (box) { box.hidden = false; box.textContent += "Script error: " + message + " "; }
  }
  window.T5PEEK_ERROR = record;
  window.addEventListener("error", function (event) { record(String(event.message)); });
  window.addEventListener("unhandledrejection", function (event) {
    record(String(event.reason && event.reason.message || event.reason));
  });
})();
"""

CORE_JS = r"""
(function (T) {
  "use strict";
  var F = T.format;
  T.el = function (tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  };
  T.find = function (section, role) { return section.querySelector('[data-role="' + role + '"]'); };
  T.expand = function (value) {  // render/pages/packing.py: expand
    if (Array.isArray(value)) return value.map(T.expand);
    if (value === null || typeof value !== "object") return value;
    if (value["$float32"] !== undefined && value.data !== undefined && Object.keys(value).length === 2) {
      var text = atob(value.data), bytes = new DataView(new ArrayBuffer(text.length));
      for (var i = 0; i < text.length; i++) bytes.setUint8(i, text.charCodeAt(i));
      var flat = [];
      for (var j = 0; j < text.length / 4; j++) flat.push(bytes.getFloat32(4 * j, true));
      var shape = value["$float32"];
      function nest(dim, offset) {
        if (dim === shape.length - 1) return flat.slice(offset, offset + shape[dim]);
        var size = shape.slice(dim + 1).reduce(function (a, b) { return a * b; }, 1), out = [];
        for (var k = 0; k < shape[dim]; k++) out.push(nest(dim + 1, offset + k * size));
        return out;
      }
      return shape.length ? nest(0, 0) : [];
    }
    var out = {};
    Object.keys(value).forEach(function (key) { out[key] = T.expand(value[key]); });
    return out;
  };
  // a colour ramp from 0 to the darkest cell's value, as the cells are shaded
  T.legend = function (box, darkest, digits) {
    box.textContent = "";
    box.className = "legend";
    box.appendChild(T.el("span", "0"));
    box.appendChild(T.el("span", null, "ramp"));
    box.appendChild(T.el("span", F.fixed(darkest, digits === undefined ? 3 : digits)));
  };
  T.shade = function (value, darkest) {
    var alpha = darkest > 0 ? Math.max(0, Math.min(1, value / darkest)) : 0;
    return "rgba(142, 68, 173, " + alpha.toFixed(3) + ")";
  };
  T.bar = function (fraction, width, negative) {
    var bar = T.el("span", null, negative ? "bar negative" : "bar");
    bar.style.width = Math.round(width * Math.max(0, Math.min(1, fraction))) + "px";
    return bar;
  };
  T.table = function (headers, rows, numeric) {  // rows: arrays of strings or nodes
    var table = T.el("table", null, "plain"), head = T.el("tr");
    headers.forEach(function (h, i) { head.appendChild(T.el("th", h, numeric && numeric[i] ? "num" : "")); });
    table.appendChild(head);
    rows.forEach(function (row) {
      var tr = T.el("tr");
      row.forEach(function (cell, i) {
        var td = T.el("td", null, numeric && numeric[i] ? "num" : "");
        if (cell !== null && typeof cell === "object") td.appendChild(cell); else td.textContent = cell;
        tr.appendChild(td);
      });
      table.appendChild(tr);
    });
    return table;
  };
  T.notes = function (section, notes) {
    (notes || []).forEach(function (note) { section.appendChild(T.el("p", note, "dim")); });
  };
})(T5PEEK);
"""

BOOT_JS = r"""
(function (T) {
  "use strict";
  var blocks = document.querySelectorAll('script[type="application/json"][id^="t5peek-data"]');
  Array.prototype.forEach.call(blocks, function (block) {
    var name = block.getAttribute("data-view") || document.querySelector("section.view").id;
    var section = document.getElementById(name);
    try {
      var doc = T.expand(JSON.parse(block.textContent)), draw = T.views[name];
      if (!draw) throw new Error("no drawing for the view " + name);
      Promise.resolve(draw(doc, section)).then(function () {
        section.setAttribute("data-rendered", "true");
      }, function (error) { T5PEEK_ERROR(name + ": " + (error && error.message || error)); });
    } catch (error) {
      T5PEEK_ERROR(name + ": " + (error && error.message || error));
    }
  });
})(T5PEEK);
"""
