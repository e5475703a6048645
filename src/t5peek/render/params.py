"""Render ParamReport: the breakdown table, then memory per dtype. Counts and names are never cut: at any width
the text wraps between words, the notes move under their rows, and the count columns wrap whole."""

from __future__ import annotations

from rich.console import Console

from t5peek.params import ParamReport
from t5peek.render.format import Column, grid, human_bytes, human_count, print_lines
from t5peek.render.placement import render_placement
from t5peek.render.table import glyphs_of, paragraph, table


def render_params(report: ParamReport, console: Console) -> None:
    width, shown = console.width, glyphs_of(console)
    print_lines(console, _breakdown(report, width, shown) + _memory(report, width))
    lines = []
    for group in report.tied:
        lines += paragraph(shown(f"tied: {group.stored_as} is also {', '.join(group.shared_with)} "
                                 f"({group.params:,} parameters, counted once)"), width, "blue")
    if report.trainable is not None:
        lines += paragraph(f"trainable: {report.trainable:,}   frozen: {report.frozen:,}", width)
    print_lines(console, lines)
    render_placement(report.placement, console)
    lines = paragraph(shown(f"counted from: {report.counted_from}"), width, "dim")
    for note in report.notes:
        lines += paragraph(shown(f"note: {note}"), width, "yellow")
    print_lines(console, lines)


def _breakdown(report: ParamReport, width: int, shown):
    components = report.by == "component"
    columns = [Column(report.by, key=True, wrap=True), Column("params", right=True), Column("%", right=True)]
    if components:
        columns += [Column("blocks", right=True), Column("per block", right=True)]
    columns.append(Column("note", style="dim", wrap=True, aside=""))
    rows: list = []
    for row in report.rows:
        cells = [row.label, f"{row.params:,}", f"{row.percent:.1f}"]
        if components:
            cells += [str(row.blocks) if row.blocks else "", f"{row.per_block:,}" if row.per_block else ""]
        rows.append([shown(cell) for cell in cells + [row.note]])
    total = ["total", f"{report.total:,}", "100.0"] + (["", ""] if components else []) + [human_count(report.total)]
    styles = [None] * len(rows) + [None, "bold"]
    return table(columns, rows + [None, total], width, title=shown(f"{report.model}: parameters by {report.by}"),
                 row_styles=styles)


def _memory(report: ParamReport, width: int):
    rows = [[dtype, human_bytes(size)] for dtype, size in report.memory_bytes.items()]
    if report.stored_bytes is not None:
        rows.append([f"as stored ({report.stored_dtype})", human_bytes(report.stored_bytes)])
    return (paragraph("memory for the weights", width, "italic") +
            grid([Column("dtype", key=True), Column("size", right=True)], rows, width, gap=4, indent=2))
