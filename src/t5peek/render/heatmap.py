"""Attention maps as text: one shaded cell per weight, `·░▒▓█` scaled to the strongest weight of the map.

Shared by the cross-attention heatmap of `generate` and the self-attention maps of `generate --self`. Rows may be
shorter than the columns (the decoder's causal triangle: the cells past a row's end stay blank) and weights may be
NaN (a model whose numbers overflowed): such a cell shows `?` and the legend says so. Too many columns for the
width are split into blocks printed one under the other, each with its own header.
"""

from __future__ import annotations

import math

from rich.text import Text

from t5peek.render.format import flow

SHADES = "·░▒▓█"
SHADE_STYLES = ("dim", "magenta", "magenta", "bold magenta", "bold magenta")
NOT_A_NUMBER = "?"


def shade_lines(rows: list, labels: list[str], columns: list[str], width: int = 100,
                columns_name: str = "source tokens", full: tuple[float, str] | None = None) -> list[Text]:
    """`rows` (one list of weights per label, at most one per column) as lines of text, each row followed by its
    strongest column and weight. Shades are scaled to the strongest weight of the map, or to `full` = (value, what
    it is called); below zero shades as zero."""
    if not rows or not columns:
        return [Text("(no steps)")]
    finite = [w for row in rows for w in row if math.isfinite(w)]
    strongest = full[0] if full else max(max(finite) if finite else 0.0, 0.0) or 1.0
    # a label longer than a quarter of the width gets a line of its own above its row
    label_width = min(max(4, width // 4), max(len(label) for label in labels))
    focus = []
    for row in rows:
        best = _argmax(row)
        if best is None:
            focus.append("nan")
            continue
        name = plain(columns[best]) + (f"[{best}]" if columns.count(columns[best]) > 1 else "")
        focus.append(f"{name} {row[best]:.2f}")
    room = max(10, width - label_width - 3 - max(len(f) for f in focus))
    # two characters per cell reads best; one when two would need more than three blocks
    cell = 2 if math.ceil(len(columns) * 2 / room) <= 3 else 1
    blocks = math.ceil(len(columns) * cell / room)
    per_block = math.ceil(len(columns) / blocks)
    lines: list[Text] = []
    for start in range(0, len(columns), per_block):
        block = list(range(start, min(len(columns), start + per_block)))
        if len(columns) > per_block:
            lines.append(Text(f"{columns_name} {block[0]}-{block[-1]} of {len(columns)}", style="dim"))
        lines.extend(vertical_header(columns, block, label_width, cell))
        for label, row, best in zip(labels, rows, focus):
            if len(label) > label_width:
                lines.append(Text(label))
                label = ""
            line = Text(label.rjust(label_width) + " │")
            for index in block:
                if index >= len(row):
                    line.append(" " * cell)
                elif not math.isfinite(row[index]):
                    line.append(NOT_A_NUMBER * cell, style="bold red")
                else:
                    level = min(len(SHADES) - 1, int(max(0.0, row[index]) / strongest * (len(SHADES) - 1) + 0.5))
                    line.append(SHADES[level] * cell, style=SHADE_STYLES[level])
            line.append("│ ")
            line.append(best, style="dim")
            lines.append(line)
    return lines + legend(strongest if finite else None, label_width, width,
                          len(finite) < sum(len(row) for row in rows), full[1] if full else None)


def legend(strongest: float | None, label_width: int, width: int, with_nan: bool = False,
           full: str | None = None) -> list[Text]:
    """What the shades mean (`strongest` None: no weight is a number, so only `?` is explained)."""
    pieces = [Text(" " * label_width)]
    if strongest is not None:
        # shade i from (i - 0.5) / 4 of the strongest up: 12.5%, 37.5%, ... exactly, as the cells round
        bounds = [f"{100 * (i - 0.5) / (len(SHADES) - 1):g}%" for i in range(1, len(SHADES))]
        steps = [f"{SHADES[0]} <{bounds[0]}"] + [f"{SHADES[i]} ≥{bounds[i - 1]}" for i in range(1, len(SHADES))]
        pieces = [Text(" " * (label_width + 2) + steps[0], style="dim")] + [Text("  " + s, style="dim")
                                                                             for s in steps[1:]]
        pieces += _words(f"of {full} ({strongest:.2f})" if full else f"of the strongest weight ({strongest:.2f})")
    if with_nan:
        pieces += _words(f"{NOT_A_NUMBER} not a number (the model's numbers overflowed)")
    return flow(pieces, width, indent=label_width + 2)


def _words(text: str) -> list[Text]:
    return [Text(("  " if i == 0 else " ") + word, style="dim") for i, word in enumerate(text.split(" "))]


def _argmax(row) -> int | None:
    best = None
    for index, value in enumerate(row):
        if math.isfinite(value) and (best is None or value > row[best]):
            best = index
    return best


def plain(token: str) -> str:
    """A token without its word-start marker (SentencePiece ▁, byte-level BPE Ġ), for narrow labels."""
    stripped = token.lstrip("▁Ġ")
    return stripped or token


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def vertical_header(columns: list[str], block: list[int], label_width: int, cell: int, depth: int = 6
                    ) -> list[Text]:
    names = [clip(plain(columns[i]), depth) for i in block]
    height = max(len(name) for name in names)
    lines = []
    for row in range(height):
        chars = "".join((name[row] if row < len(name) else " ").ljust(cell) for name in names)
        lines.append(Text((" " * (label_width + 2) + chars).rstrip(), style="bold"))
    return lines
