"""The rows of a trace phase as a table: the indented module names, their classes, inputs → outputs and the time.
Where the columns fit the width with every name, shape and time whole, rich draws them side by side; on a narrower
terminal each row puts its shapes on lines of their own under the name, so that nothing is ever cut short."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

from rich.console import Console
from rich.table import Table
from rich.text import Text

from t5peek.render.format import print_lines
from t5peek.render.table import fit_text, say, shown, whole

_MIN_SHAPES_WIDTH = 36  # below this, the class goes in the module column
_HEADER_SPLIT = "module · class"
_MIN_SIDE_BY_SIDE = 24  # a narrower shapes column goes under the rows
_MS = 8  # cells of the time column
_UNDER = 4  # how far a row's shapes are indented under its name (narrow terminals)


@dataclass
class Row:
    """One row of a phase table: a record, a record kept only to place the changes below it, or a run of blocks."""

    level: int
    name: str  # the leaf name (`SelfAttention`, `block.3`), indented by `level`
    style: str
    cls: Text
    inputs: list[Text]  # the input items, or the row's note when `outputs` is None
    outputs: list[Text] | None = None
    extra: Text | None = None  # stats and routing lines
    ms: str = ""


@dataclass
class Note:
    """A line of prose between the rows (an explanation, a cache note), indented by `indent` cells."""

    text: Text
    indent: int


def print_rows(rows: list, console: Console) -> None:
    """Rows in tables whose columns fit the widest name and class, so that no name is ever cut; the shapes get the
    rest and wrap between items. Narrow consoles put the class under the name, and narrower ones the shapes under
    the row. Notes split the table."""
    tables = _tables(rows, console.width)
    if tables is None or not all(whole(console, table) for table in tables):
        print_lines(console, _stacked(rows, console))
        return
    for is_row, group in groupby(rows, key=lambda row: isinstance(row, Row)):
        if is_row:
            console.print(tables.pop(0))
        else:
            for note in group:
                say(console, note.text, indent=note.indent)


def _tables(rows: list, width: int) -> list[Table] | None:
    """The rows side by side, None where that leaves the shapes too narrow a column to read."""
    table_rows = [row for row in rows if isinstance(row, Row)]
    name_width = max(len(row.name) + 2 * row.level for row in table_rows)
    class_width = max(len(row.cls) for row in table_rows)
    split = name_width + class_width + _MS + 6 + _MIN_SHAPES_WIDTH > width
    if split:
        name_width = max([name_width, len(_HEADER_SPLIT)]
                         + [2 * row.level + 2 + len(row.cls) for row in table_rows if row.cls])
        shapes_width = width - name_width - _MS - 4
    else:
        shapes_width = width - name_width - class_width - _MS - 6
    if shapes_width < _MIN_SIDE_BY_SIDE:
        return None
    tables = []
    for is_row, group in groupby(rows, key=lambda row: isinstance(row, Row)):
        if not is_row:
            continue
        table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False, header_style="bold",
                      show_header=not tables)
        table.add_column(_HEADER_SPLIT if split else "module", no_wrap=True, width=name_width)
        if not split:
            table.add_column("class", no_wrap=True, style="dim", width=class_width)
        table.add_column("inputs → outputs", width=shapes_width)
        table.add_column("ms", justify="right", no_wrap=True, width=_MS)
        for row in group:
            cells = [_name_cell(row, name_width if split else 0)] + ([] if split else [row.cls])
            table.add_row(*cells, shapes_cell(row, shapes_width), row.ms)
        tables.append(table)
    return tables


def _stacked(rows: list, console: Console) -> list[Text]:
    """Each row as its name (and class, where it fits after it) with the time at the right, then its shapes on lines
    of their own, indented under the name: the layout of a narrow terminal, in the glyphs it shows."""
    width = console.width
    names = [[shown(line, console) for line in _name_cell(row, width - _MS - 2).split("\n")] for row in rows
             if isinstance(row, Row)]
    name_width = min(width - _MS - 2, max(line.cell_len for lines in names for line in lines))
    lines = [_with_time(shown(_HEADER_SPLIT, console), "ms", name_width, "bold")]
    names.reverse()
    for row in rows:
        if not isinstance(row, Row):
            text = shown(row.text, console)
            lines += [Text(" " * row.indent) + line for line in fit_text(text, width - row.indent)]
            continue
        name = names.pop()
        timed = next((n for n, line in enumerate(name) if line.cell_len <= name_width), len(name))
        if timed == len(name):  # a name too long for a time after it: the time on a line of its own
            name.append(Text())
        lines += [_with_time(line, row.ms if n == timed else "", name_width) for n, line in enumerate(name)]
        indent = min(2 * row.level + _UNDER, width // 3)
        shapes = shown(shapes_cell(row, width - indent, arrow=len(shown("→", console))), console)
        lines += [Text(" " * indent) + line for line in fit_text(shapes, width - indent)]
    return lines


def _with_time(name: Text, ms: str, name_width: int, style: str | None = None) -> Text:
    line = name.copy()
    if ms:
        line.append(" " * (name_width - name.cell_len + 2) + ms.rjust(_MS))
    if style:
        line.stylize(style)
    line.rstrip()
    return line


def _name_cell(row: Row, width: int) -> Text:
    """The indented name; given a width (narrow consoles), the class after it, or under it where it does not fit."""
    text = Text(" " * 2 * row.level)
    text.append(row.name, style=row.style)
    if width and row.cls:
        text.append("  " if len(text) + 2 + len(row.cls) <= width else "\n" + " " * (2 * row.level + 2))
        cls = row.cls.copy()
        cls.stylize("dim")
        text.append_text(cls)
    return text


def shapes_cell(row: Row, width: int, arrow: int = 1) -> Text:
    """Inputs → outputs on one line when they fit; else the outputs on their own line. Lines break between items.
    `arrow`: the cells `→` takes on the terminal."""
    text = _flow(row.inputs, width)
    if row.outputs is not None:
        outputs = _flow(row.outputs, width, start=arrow + 1)
        together = "\n" not in text.plain + outputs.plain and len(text) + arrow + 2 + len(outputs) <= width
        text.append(" → " if together else "\n→ ", style="dim")
        text.append_text(outputs)
    if row.extra is not None:
        text.append_text(row.extra)
    return text


def _flow(items: list[Text], width: int, start: int = 0) -> Text:
    """Items joined by commas (a cache's parts by semicolons), a new line before one that would not fit: an item is
    never broken in two (one longer than a whole line wraps between its words)."""
    pieces = [("; " if j else ", ", part) for item in items for j, part in enumerate(item.split("; "))]
    text = Text()
    column = start
    for i, (joiner, piece) in enumerate(pieces):
        if i and column + len(joiner) + len(piece) > width - 1:  # -1: room for the comma that ends the line
            text.append(joiner.rstrip() + "\n")
            column = 0
        elif i:
            text.append(joiner)
            column += len(joiner)
        text.append_text(piece)
        column += len(piece)
    return text
