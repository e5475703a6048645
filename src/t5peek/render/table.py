"""Tables and prose laid out for a width, where a number or a name is never cut: text wraps between words, notes
move under their rows, and columns of numbers wrap whole."""

from __future__ import annotations

import re
from typing import Callable

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Span, Text

from t5peek.output import _glyph as glyph, fallback_text
from t5peek.render.format import Column, _row, _text


def glyphs_of(console: Console) -> Callable:
    """A function giving a string as `console` prints it (a Text is left as it is): on an ASCII terminal `…` is
    `...` and `✓` is `ok`, so a layout measures what will be shown."""
    encoding = (console.encoding or "utf-8").lower()
    if encoding.replace("_", "-").startswith("utf"):
        return lambda text: text
    return lambda text: text if isinstance(text, Text) else fallback_text(text, encoding)


def paragraph(text: str, width: int, style: str | None = None) -> list[Text]:
    """A line of prose as lines of at most `width` cells (see `wrap_text`)."""
    return [Text(line, style=style or "") for line in wrap_text(text, width)]


# ----------------------------------------------------------------------------- lines and tables

_BREAK = re.compile(r"(?<=[./])(?=[^\s./])")  # after a dot or slash of a name: `decoder.` `embed_tokens`
_NUMBER = re.compile(r"[A-Za-z]?=?[+-]?\d[\d,._]*[A-Za-z%]{0,4}")  # 11,307,321,344  21.5  4.86B  S=512  10%


def _is_number(part: str) -> bool:
    return bool(_NUMBER.fullmatch(part.strip("()[]{},;:.'\"")))


_EDGE, _GAP = 1, 2  # every table line starts with one space; two between columns


def wrap_text(text: str, width: int) -> list[str]:
    """`text` as lines of at most `width` cells, broken between words; as it is when it fits. A word wider than
    the line (a long name or path) breaks after its dots and slashes (never between two digits), and a piece that
    is no number is folded when even that is too wide. A number is never broken: it overflows instead."""
    if cell_len(text) <= width:
        return [text]
    indent = " " * (len(text) - len(text.lstrip(" ")))
    lines, line = [], ""
    for word in _glued(text.split()):
        for piece in _word_pieces(word, width - len(indent)):
            if line and cell_len(line) + 1 + cell_len(piece) > width - len(indent):
                lines.append(line)
                line = ""
            line = f"{line} {piece}" if line else piece
    return [indent + line for line in lines + [line]]


_UNITS = {"B", "KiB", "MiB", "GiB", "TiB", "FLOP"}


def _glued(words: list[str]) -> list[str]:
    """An amount and its unit (`19.5 GiB`) as one word."""
    out: list[str] = []
    for word in words:
        if out and out[-1][-1:].isdigit() and word.rstrip(".,;:)") in _UNITS:
            out[-1] += " " + word
        else:
            out.append(word)
    return out


def _word_pieces(word: str, width: int) -> list[str]:
    if cell_len(word) <= width:
        return [word]
    pieces: list[str] = []
    for part in _breakable_parts(word):
        if pieces and cell_len(pieces[-1]) + cell_len(part) <= width:
            pieces[-1] += part
        elif cell_len(part) > width and not _is_number(part) and width > 0:
            pieces += _fold(part, width)
        else:
            pieces.append(part)
    return pieces


def _fold(part: str, width: int) -> list[str]:
    """`part` in pieces of `width` characters, but never between two digits of a number (`Embedding(32128,` is
    `Embedding(` and `32128,`): a number longer than the line stays whole."""
    pieces = []
    while len(part) > width:
        cut = width
        while cut and _inside_number(part, cut):
            cut -= 1
        if not cut:  # a number from the start: it stays whole
            cut = width
            while cut < len(part) and _inside_number(part, cut):
                cut += 1
        pieces.append(part[:cut])
        part = part[cut:]
    return pieces + [part] if part else pieces


def _inside_number(text: str, cut: int) -> bool:
    left, right = text[cut - 1:cut], text[cut:cut + 1]
    return bool(left and right) and (left + right).strip("0123456789.,_") == "" and \
        (left.isdigit() or right.isdigit())


def _breakable_parts(word: str) -> list[str]:
    parts = _BREAK.split(word)
    joined = [parts[0]]
    for part in parts[1:]:  # `21.5`, `block.0.`: no break between two digits
        if joined[-1][-2:-1].isdigit() and part[:1].isdigit():
            joined[-1] += part
        else:
            joined.append(part)
    return joined


def _narrowest(text: str, soft: bool) -> int:
    """The least width `text` wraps to: its widest word (soft), or its widest piece once names break (hard)."""
    words = _glued(text.split()) or [""]
    if soft:
        return max(cell_len(word) for word in words)
    return max(cell_len(part) if _is_number(part) else 1 for word in words for part in _breakable_parts(word))


def table(columns: list[Column], rows: list, width: int, title: str = "", row_styles: list | None = None,
          title_style: str = "italic") -> list[Text]:
    """A table under a rule, as lines of at most `width` cells: numbers whole, the text of `wrap` columns broken
    between words. Where the columns need more room, in turn: the widest text columns narrow to their longest
    word; the `aside` columns (the last first) leave the row for lines of their own under it; the other columns
    wrap whole into blocks, each led by the key columns. `rows` may hold None: a blank line between sections;
    `row_styles` goes with `rows`."""
    styles = row_styles or [None] * len(rows)
    body = [(None if row is None else [_text(cell) for cell in row], style) for row, style in zip(rows, styles)]
    lines = [Text(line, style=title_style) for line in wrap_text(title, width)] if title else []
    asides: list[int] = []
    movable = [i for i in reversed(range(len(columns))) if columns[i].aside is not None]
    while True:
        inline = [i for i in range(len(columns)) if i not in asides]
        widths = _fit(columns, body, inline, width, soft=True)
        if not movable or widths is not None and not _too_tall(body, movable[0], widths[inline.index(movable[0])]):
            break
        asides.append(movable.pop(0))
    blocks = [(inline, widths)] if widths is not None else _blocks(columns, body, inline, width)
    for n, (block, widths) in enumerate(blocks):
        lines.append(Text())
        lines += _block_lines(columns, body, block, widths, sorted(asides) if n == 0 else [], width)
    return lines + [Text()]


def _too_tall(body, column: int, width: int, tallest: int = 4) -> bool:
    """Whether a cell of the column takes more than `tallest` lines at `width`: under its row, it reads better."""
    return any(len(wrap_text(row[column].plain, width)) > tallest for row, _ in body if row)


def _fit(columns: list[Column], body, block: list[int], width: int, soft: bool) -> list[int] | None:
    """Widths for the columns of `block` within `width`, None when even their narrowest do not fit. Where rich's
    own way of narrowing a table keeps every word whole, the widths are rich's (the layout tables had before)."""
    cells = [[columns[i].header] + [row[i].plain for row, _ in body if row] for i in block]
    natural = [max(cell_len(cell) for cell in column) for column in cells]
    least = [max(_narrowest(cell, soft) for cell in column) if columns[i].wrap else natural[n]
             for n, (i, column) in enumerate(zip(block, cells))]
    wrap = [columns[i].wrap for i in block]
    room = width - _EDGE - _GAP * (len(block) - 1)
    if sum(least) > room:
        return None
    pads = [1] * (len(block) - 1) + [0]  # rich counts a column's right padding in its width, and a right edge
    narrowed = _narrow([w + pad for w, pad in zip(natural, pads)], wrap, [pad + 1 for pad in pads],
                       width - 2 * _EDGE - (len(block) - 1))
    widths = [max(low, min(w, slot - pad)) for w, low, slot, pad in zip(natural, least, narrowed, pads)]
    return widths if sum(widths) <= room else [min(w, slot) for w, slot in
                                               zip(natural, _narrow(natural, wrap, least, room))]


def _narrow(widths: list[int], wrap: list[bool], floors: list[int], room: int) -> list[int]:
    """rich's `Table._collapse_widths`, with floors: the widest wrapping columns narrow together, each step down
    to the next width, until the columns fit in `room` or none can narrow further."""
    widths = list(widths)
    while (excess := sum(widths) - room) > 0:
        live = [n for n in range(len(widths)) if wrap[n] and widths[n] > floors[n]]
        if not live:
            break
        top = max(widths[n] for n in live)
        widest = [n for n in live if widths[n] == top]
        step = top - max([widths[n] for n in range(len(widths)) if wrap[n] and widths[n] < top] +
                         [floors[n] for n in widest])
        for k, n in enumerate(widest):
            share = min(step, round(excess / (len(widest) - k)))
            widths[n] -= share
            excess -= share
    return widths


def _blocks(columns: list[Column], body, inline: list[int], width: int) -> list[tuple[list[int], list[int]]]:
    keys = [i for i in inline if columns[i].key]
    blocks: list[tuple[list[int], list[int]]] = []
    for i in (i for i in inline if i not in keys):
        if blocks and (widths := _fit(columns, body, blocks[-1][0] + [i], width, soft=True)) is not None:
            blocks[-1] = (blocks[-1][0] + [i], widths)
            continue
        block = keys + [i]
        widths = _fit(columns, body, block, width, soft=True) or _fit(columns, body, block, width, soft=False)
        blocks.append((block, widths or _fit(columns, body, block, 10**6, soft=True)))
    return blocks or [(keys, _fit(columns, body, keys, width, soft=False) or _fit(columns, body, keys, 10**6,
                                                                                    soft=True))]


def _block_lines(columns: list[Column], body, block: list[int], widths: list[int], asides: list[int],
                 width: int) -> list[Text]:
    picked = [columns[i] for i in block]
    lines = _wrapped_row([Text(column.header) for column in picked], picked, widths, "bold")
    lines.append(Text(" " * _EDGE + "─" * (sum(widths) + _GAP * (len(widths) - 1))))
    for row, style in body:
        if row is None:
            lines.append(Text())
            continue
        lines += _wrapped_row([row[i] for i in block], picked, widths, style)
        for i in asides:
            if row[i].plain.strip():
                lines += [Text(" " * (_EDGE + _GAP) + line, style=row[i].style or columns[i].style or "")
                          for line in wrap_text(columns[i].aside + row[i].plain, width - _EDGE - _GAP)]
    return lines


def _wrapped_row(cells: list[Text], columns: list[Column], widths: list[int], style) -> list[Text]:
    parts = [[Text(line, style=cell.style) for line in wrap_text(cell.plain, w)] if column.wrap else [cell]
             for cell, column, w in zip(cells, columns, widths)]
    return [_row([part[n] if n < len(part) else Text() for part in parts], columns, widths, _GAP, _EDGE, style)
            for n in range(max(len(part) for part in parts))]


# ----------------------------------------------------------------------------- rich layouts kept whole


def shown(text, console: Console) -> Text:
    """`text` (str or Text) in the glyphs `console` prints, its styles kept: on an ASCII terminal a layout measured
    on it is what is shown (`→` is `->`, two cells), and the ASCII fallback leaves it as it is."""
    text = _text(text)
    encoding = (console.encoding or "utf-8").lower()
    if encoding.replace("_", "-").startswith("utf"):
        return text
    cuts = sorted({edge for span in text.spans for edge in (span.start, span.end)} - {0, len(text)})
    out = Text(style=text.style, end=text.end)
    for part in text.divide(cuts):
        piece = "".join(glyph(char, encoding) for char in part.plain)
        out.append_text(Text(piece, spans=[Span(0, len(piece), span.style) for span in part.spans]))
    return out


def fit_text(text, width: int) -> list[Text]:
    """`text` (its own lines too) as lines of at most `width` cells, broken as rich breaks them (between words, the
    spaces at a break dropped), but a word wider than the line is never cut short: it breaks after its dots and
    slashes (a number never breaks; see `wrap_text`). Where rich would not fold a word, the lines are rich's."""
    lines: list[Text] = []
    for line in _text(text).split("\n", allow_blank=True):
        if line.cell_len <= width:
            lines.append(line)
            continue
        breaks, column = [], 0
        for start, _, word in _rich_words(line.plain):
            for offset, piece in _pieces(word, width):
                if column and column + cell_len(piece.rstrip()) > width:
                    breaks.append(start + offset)
                    column = 0
                column += cell_len(piece)
        for part in line.divide(breaks):
            part.rstrip()
            lines.append(part)
    return lines


def _rich_words(text: str):
    from rich._wrap import words  # the words rich wraps between: a word and the spaces after it

    return words(text)


def _pieces(word: str, width: int) -> list[tuple[int, str]]:
    core = word.rstrip()
    if cell_len(core) <= width:
        return [(0, word)]
    lead = len(core) - len(core.lstrip())
    parts = _word_pieces(core[lead:], width - lead)
    parts[0] = core[:lead] + parts[0]
    parts[-1] += word[len(core):]
    offsets = [0]
    for part in parts[:-1]:
        offsets.append(offsets[-1] + len(part))
    return list(zip(offsets, parts))


def fit_shown(text, console: Console, width: int) -> list[Text]:
    """`fit_text` for the console: where a line would grow past `width` in the glyphs the console shows (`→` is
    `->` on an ASCII terminal), the text is broken in those glyphs instead."""
    glyphs = glyphs_of(console)
    lines = fit_text(text, width)
    if all(cell_len(glyphs(line.plain)) <= width for line in lines):
        return lines
    return fit_text(shown(text, console), width)


def widest_part(text) -> int:
    """The widest piece `fit_text` keeps whole: a word, or the part of a long name between two of its dots."""
    return max([cell_len(part) for word in _text(text).plain.split() for part in _breakable_parts(word)] or [0])


def say(console: Console, text, style: str | None = None, indent: int = 0) -> None:
    """Prose printed at the console's width in the glyphs it shows: broken between words, no word cut."""
    text = _text(text).copy()
    if style:
        text.stylize(style)
    for line in fit_shown(text, console, console.width - indent):
        console.print(Text(" " * indent) + line if indent else line, soft_wrap=True)


def whole(console: Console, table: Table) -> bool:
    """Whether rich draws `table` at the console's width without cutting a cell short (no `…` of its own) and with
    no line wider than the console once in the glyphs it shows."""
    glyphs = glyphs_of(console)
    cells = [column.header for column in table.columns] + [table.title or ""] + \
        [cell for column in table.columns for cell in column.cells]
    given = sum(str(cell).count("…") for cell in cells if isinstance(cell, (str, Text)))
    drawn = ["".join(segment.text for segment in line if not segment.control)
             for line in console.render_lines(table, console.options, pad=False)]
    return (sum(line.count("…") for line in drawn) <= given and
            all(cell_len(glyphs(line.rstrip(" "))) <= console.width for line in drawn))


def rule(console: Console, title: Text) -> None:
    """A rule led by `title`; a title too long for the line wraps above it."""
    lines = fit_shown(title, console, console.width - 4)
    for line in lines[:-1]:
        console.print(line, soft_wrap=True)
    console.rule(lines[-1], align="left", style="dim")
