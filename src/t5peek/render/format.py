"""Small formatting helpers shared by the renderers: counts, sizes, probabilities, and lines that fit a width."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console
from rich.segment import Segment
from rich.text import Text


def human_count(n: int | None) -> str:
    """1234567 → '1.23M'."""
    if n is None:
        return "?"
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}" if n / size < 100 else f"{n / size:.0f}{unit}"
    return str(n)


def human_bytes(n: int | float | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


# What is shown as an escape where text from a model file must stay recognisable (tokens, names, errors, JSON):
# every character Unicode counts as a control or an invisible format character (Cc, Cf, Zl, Zp), lone surrogates,
# and the Hangul fillers that show as blank space.
INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u180e"
                       "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\u3164\ud800-\udfff\ufeff\uffa0"
                       "\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
                       "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]")
_SHORT_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
# What the terminal never gets: those of them that rich measures as zero cells wide (so dropping them keeps every
# column where it was laid out), but newline and the joiners that shape letters and emoji (U+200C, U+200D). So
# C0 and C1 controls, DEL, the bidirectional controls, the line separators and the invisible marks.
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u1160\u180e\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064"
                      "\u2066-\u206f\u3164\ud800-\udfff\ufeff\uffa0\ufff9-\ufffb\U00013430-\U0001343f"
                      "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]")


def visible(text: str, keep: str = "") -> str:
    """`text` with each INVISIBLE character but those in `keep` written as an escape (`\\n`, `\\x1b`, `\\u202e`)."""
    return INVISIBLE.sub(lambda found: found[0] if found[0] in keep else _escape(found[0]), text)


def _escape(char: str) -> str:
    code = ord(char)
    return _SHORT_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000
                                        else f"\\U{code:08x}")


class SafeConsole(Console):
    """A console for text that comes from model files (token strings, config values, names): strings are never
    read as rich markup (`markup=False` unless a call asks for it), and control characters in the text (escape
    sequences, bell, carriage return, bidirectional overrides) are dropped before anything reaches the terminal.
    rich measures them as zero cells wide, so dropping them keeps every column where it was laid out. The escape
    codes rich writes for its own styles are not text and pass untouched."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("markup", False)
        super().__init__(*args, **kwargs)

    def _render_buffer(self, buffer) -> str:
        return super()._render_buffer(
            segment if segment.control or not _CONTROL.search(segment.text)
            else Segment(_CONTROL.sub("", segment.text), segment.style, segment.control)
            for segment in buffer)


def probability(p: float | None) -> str:
    """A probability as a percentage, the same everywhere: '100.0%', '42.3%', '0.07%', '<0.01%', '0%'."""
    if p is None or math.isnan(p):
        return "nan"
    if p <= 0:
        return "0%"
    percent = p * 100
    if percent >= 0.1:
        return f"{percent:.1f}%"
    return f"{percent:.2f}%" if percent >= 0.005 else "<0.01%"


# ----------------------------------------------------------------------------- fitting a width
#
# Numbers and identifiers are never shortened: what does not fit moves to the next line whole (a piece of a
# flowing line, a block of table columns). Lines carry no trailing spaces.


def flow(pieces, width: int, indent: int = 4) -> list[Text]:
    """`pieces` (each kept whole, with its leading separator) as lines of at most `width` cells where they fit;
    a continuation line starts with `indent` spaces and drops the piece's separator."""
    lines: list[Text] = []
    line = Text()
    for piece in pieces:
        piece = piece if isinstance(piece, Text) else Text(piece)
        if line.plain.strip() and line.cell_len + piece.cell_len > width:
            lines.append(line)
            line = Text(" " * indent)
            stripped = len(piece.plain) - len(piece.plain.lstrip(" "))
            piece = piece.divide([stripped])[-1] if stripped else piece
        line.append_text(piece)
    lines.append(line)
    return [_rstrip(line) for line in lines]


@dataclass(frozen=True)
class Column:
    """A table column: its header and how its cells line up."""

    header: str = ""
    right: bool = False  # right-aligned (numbers)
    key: bool = False  # repeated in front of every block when the columns wrap
    style: str | None = None
    wrap: bool = False  # render.table only: text that may take several lines, broken between words
    aside: str | None = None  # render.table only: prose that may leave a narrow row for lines under it, led by this


def grid_width(columns: list[Column], rows: list[list], gap: int = 2, indent: int = 0) -> int:
    """The cells the table needs on one line."""
    widths = _widths(columns, rows)
    return indent + sum(widths) + gap * (len(widths) - 1)


def grid(columns: list[Column], rows: list[list], width: int, gap: int = 2, indent: int = 0,
         row_styles: list | None = None) -> list[Text]:
    """A table of whole cells (str or Text) as lines. When the columns need more than `width`, they wrap whole
    into blocks printed one under the other, each led by the key columns."""
    widths = _widths(columns, rows)
    keys = [i for i, column in enumerate(columns) if column.key]
    blocks: list[list[int]] = []
    for i in (i for i in range(len(columns)) if i not in keys):
        block = blocks[-1] if blocks else None
        if block is None or (len(block) > len(keys) and
                             indent + sum(widths[j] + gap for j in block) + widths[i] > width):
            blocks.append(keys + [i])
        else:
            block.append(i)
    lines: list[Text] = []
    for block in blocks or [keys]:
        lines.append(_row([Text(columns[i].header) for i in block], [columns[i] for i in block],
                          [widths[i] for i in block], gap, indent, "bold"))
        for n, row in enumerate(rows):
            style = row_styles[n] if row_styles else None
            lines.append(_row([row[i] for i in block], [columns[i] for i in block], [widths[i] for i in block],
                              gap, indent, style))
    return lines


def _widths(columns: list[Column], rows: list[list]) -> list[int]:
    return [max([cell_len(column.header)] + [_text(row[i]).cell_len for row in rows])
            for i, column in enumerate(columns)]


def _text(cell) -> Text:
    return cell if isinstance(cell, Text) else Text(str(cell))


def _row(cells, columns: list[Column], widths: list[int], gap: int, indent: int, style) -> Text:
    line = Text(" " * indent, style=style or "")
    for n, (cell, column, width) in enumerate(zip(cells, columns, widths)):
        cell = _text(cell).copy()
        if column.style and not cell.style:
            cell.style = column.style
        pad = " " * (width - cell.cell_len)
        line.append_text(Text(pad) + cell if column.right else cell + Text(pad))
        if n < len(cells) - 1:
            line.append(" " * gap)
    return _rstrip(line)


def _rstrip(line: Text) -> Text:
    line.rstrip()
    return line


def print_lines(console: Console, lines: list[Text]) -> None:
    for line in lines:
        console.print(line, soft_wrap=True)  # laid out already: no wrapping, no cropping


def bar(prob: float, width: int = 10) -> str:
    if prob is None or math.isnan(prob) or prob <= 0 or width <= 0:
        return ""
    eighths = max(1, round(prob * width * 8))
    full, rest = divmod(eighths, 8)
    return "█" * full + ("▏▎▍▌▋▊▉"[rest - 1] if rest else "")


def show_token(token: str) -> str:
    """Tokens as the tokenizer spells them, with control and invisible characters made visible."""
    return visible(token)


def source_name(tokens, index: int) -> str:
    """A source token, with its position when the same token occurs more than once."""
    token = show_token(tokens[index])
    return f"{token}[{index}]" if tokens.count(tokens[index]) > 1 else token


def words(text: str, style: str | None = None, first: str = " ") -> list[Text]:
    """`text` as pieces for `flow`, one per word (the first led by `first`)."""
    return [Text((first if i == 0 else " ") + word, style=style or "") for i, word in enumerate(text.split(" "))]
