"""The pieces of t5peek's SVG charts (render/svg.py): a standalone SVG 1.1 document built from rects and text, a
sequential colour ramp, and its legend.

Every string that reaches the document goes through `xml_text`: the characters a terminal would not show are
written as escapes (`render.format.visible`, so a U+202E cannot reverse the labels after it), then XML-escaped.
Text is measured in terminal cells (rich's `cell_len`) and set in the generic `monospace` family, so a label's
width is known without font metrics and no font file is named or fetched.
"""

from __future__ import annotations

import math
import re
from xml.sax.saxutils import escape

from rich.cells import cell_len

from t5peek.render.format import visible

MONOSPACE = "monospace"
SANS = "sans-serif"
ADVANCE = 0.62  # a monospace character's width in em, a little over DejaVu Sans Mono's and Liberation Mono's 0.6
LOW, HIGH = (0xf7, 0xfb, 0xff), (0x08, 0x30, 0x6b)  # the ramp's ends: near white to dark blue
NOT_A_NUMBER = "#e41a1c"  # a weight or probability that is not a number: red, outside the ramp
INK, FAINT = "#222222", "#666666"
RAMP_ID = "t5peek-ramp"
LEGEND_STEPS = 2  # ticks between the ends of the legend's ramp

# what XML 1.0 cannot hold at all, even as a character reference, once `visible` has escaped the controls
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str, limit: int | None = None) -> str:
    """`text` made visible (escapes for controls and bidirectional marks), cut to `limit` cells with '…', and
    XML-escaped for element content and attribute values alike."""
    shown = _NOT_XML.sub(lambda found: f"\\u{ord(found[0]):04x}", visible(text))
    return escape(clip(shown, limit) if limit else shown, {'"': "&quot;"})


def clip(text: str, limit: int) -> str:
    if cell_len(text) <= limit:
        return text
    out, used = [], 0
    for char in text:
        used += cell_len(char)
        if used > limit - 1:
            break
        out.append(char)
    return "".join(out) + "…"


def width_of(text: str, size: float, limit: int | None = None) -> float:
    """The width of `text` in the monospace family at `size` px, as `xml_text(text, limit)` shows it."""
    shown = _NOT_XML.sub("\\\\uffff", visible(text))
    return cell_len(clip(shown, limit) if limit else shown) * ADVANCE * size


def shade(fraction: float) -> str:
    """The ramp's colour at `fraction` (0 to 1, clamped) of the way from LOW to HIGH; NaN: NOT_A_NUMBER."""
    if math.isnan(fraction):
        return NOT_A_NUMBER
    t = min(1.0, max(0.0, fraction))
    return "#" + "".join(f"{round(low + (high - low) * t):02x}" for low, high in zip(LOW, HIGH))


def ink_on(fraction: float) -> str:
    """Text colour that reads on `shade(fraction)`."""
    return "#ffffff" if not math.isnan(fraction) and fraction > 0.5 else INK


def _number(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


class Drawing:
    """SVG elements in drawing order; `document` wraps them with the size they need."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.right = 0.0  # the rightmost extent drawn so far, for the document's width

    def open(self, name: str, **attributes) -> None:
        self.parts.append(f"<g class=\"{name}\"{_attributes(attributes)}>")

    def close(self) -> None:
        self.parts.append("</g>")

    def rect(self, x: float, y: float, width: float, height: float, fill: str, title: str | None = None,
             **attributes) -> None:
        shape = (f"<rect x=\"{_number(x)}\" y=\"{_number(y)}\" width=\"{_number(width)}\" "
                 f"height=\"{_number(height)}\" fill=\"{fill}\"{_attributes(attributes)}")
        self.parts.append(f"{shape}><title>{xml_text(title)}</title></rect>" if title else shape + "/>")
        self.right = max(self.right, x + width)

    def text(self, x: float, y: float, text: str, size: float = 12, anchor: str = "start",
             limit: int | None = None, rotate: bool = False, **attributes) -> None:
        """One line of text at baseline `y`; `rotate`: turned to read upwards from (x, y)."""
        turn = f" transform=\"rotate(-90 {_number(x)} {_number(y)})\"" if rotate else ""
        anchor_attribute = "" if anchor == "start" else f" text-anchor=\"{anchor}\""
        self.parts.append(f"<text x=\"{_number(x)}\" y=\"{_number(y)}\" font-size=\"{_number(size)}\""
                          f"{anchor_attribute}{turn}{_attributes(attributes)}>{xml_text(text, limit)}</text>")
        if not rotate and anchor == "start":
            self.right = max(self.right, x + width_of(text, size, limit))

    def document(self, height: float, title: str, margin: float = 16) -> str:
        width = math.ceil(self.right + margin)
        height = math.ceil(height + margin)
        stops = "".join(f"<stop offset=\"{i / 4:g}\" stop-color=\"{shade(i / 4)}\"/>" for i in range(5))
        return ("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
                f"<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{width}\" height=\"{height}\" "
                f"viewBox=\"0 0 {width} {height}\" font-family=\"{MONOSPACE}\" fill=\"{INK}\" "
                "xml:space=\"preserve\">\n"
                f"<title>{xml_text(title)}</title>\n"
                f"<defs><linearGradient id=\"{RAMP_ID}\" x1=\"0\" y1=\"0\" x2=\"1\" y2=\"0\">{stops}"
                "</linearGradient></defs>\n"
                f"<rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>\n"
                + "\n".join(self.parts) + "\n</svg>\n")


def _attributes(attributes: dict) -> str:
    return "".join(f" {name.rstrip('_').replace('_', '-')}=\"{xml_text(str(value))}\""
                   for name, value in attributes.items() if value is not None)


def legend(drawing: Drawing, x: float, y: float, ticks: list[str], caption: str, with_nan: bool = False,
           extra: tuple[str, dict] | None = None) -> float:
    """The ramp from `ticks[0]` to `ticks[-1]` (evenly spaced labels), its caption, a swatch for 'not a number'
    when `with_nan`, and `extra` = (its words, the swatch's rect attributes); returns the y below it."""
    bar_width, bar_height = 180.0, 12.0
    drawing.open("legend", font_size=11)
    drawing.text(x, y + 10, caption, size=11, font_family=SANS)
    top = y + 18
    drawing.rect(x, top, bar_width, bar_height, f"url(#{RAMP_ID})", stroke=FAINT, stroke_width=0.5)
    for n, tick in enumerate(ticks):
        at = x + bar_width * n / (len(ticks) - 1)
        drawing.rect(at - 0.5, top + bar_height, 1, 4, FAINT)
        anchor = "start" if n == 0 else "end" if n == len(ticks) - 1 else "middle"
        drawing.text(at, top + bar_height + 15, tick, size=10, anchor=anchor, class_="tick")
    swatch_x = x + bar_width + 24
    for words, attributes in ([("not a number", {"fill": NOT_A_NUMBER})] if with_nan else []) + \
            ([extra] if extra else []):
        rest = {name: value for name, value in attributes.items() if name != "fill"}
        drawing.rect(swatch_x, top, bar_height, bar_height, attributes.get("fill", "#ffffff"), **rest)
        drawing.text(swatch_x + bar_height + 6, top + 10, words, size=11, font_family=SANS)
        swatch_x += bar_height + 6 + width_of(words, 11) + 18
    drawing.close()
    return top + bar_height + 20
