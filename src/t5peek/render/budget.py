"""Render BudgetReport: one table of rows grouped Weights / Inference or Fine-tuning / FLOPs / Fit, then the fit in
one line. Numbers are never cut: at any width the text wraps between words and the `from` and `formula` columns
move under their rows before the amounts wrap."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from t5peek.budget.records import BudgetReport, BudgetRow
from t5peek.render.format import Column, human_bytes, human_count, print_lines
from t5peek.render.placement import render_placement
from t5peek.render.table import glyphs_of, paragraph, table

_COLUMNS = [Column("what", key=True, wrap=True), Column("formula", style="dim", wrap=True, aside=""),
            Column("bytes/FLOP", right=True), Column("from", style="dim", wrap=True, aside="from ")]


def _amount(row: BudgetRow) -> str:
    if row.flops is not None:
        return f"{human_count(row.flops)} FLOP"
    return human_bytes(row.bytes) if row.bytes is not None else "unknown"


def _title(report: BudgetReport) -> str:
    shape = f"batch {report.batch}, source {report.source}, target {report.target}"
    if report.mode.value == "generate":
        shape += f", {report.num_beams} beam{'s' if report.num_beams > 1 else ''}"
    else:
        shape += f", {report.optimizer}" + (", checkpointing" if report.gradient_checkpointing else "")
    return f"{report.model}: {report.mode.value} budget in {report.dtype} ({shape})"


def render_budget(report: BudgetReport, console: Console) -> None:
    width, shown = console.width, glyphs_of(console)
    rows: list = []
    group = None
    for row in report.rows:
        if row.group != group:
            if group is not None:
                rows.append(None)
            group = row.group
            rows.append([Text(group.value, style="bold"), "", "", ""])
        rows.append([Text(shown(row.what), style="bold" if row.total else ""), shown(row.formula), _amount(row),
                     shown(row.modules)])
    lines = table(_COLUMNS, rows, width, title=shown(_title(report)))
    if report.parameters != report.active_parameters:
        lines += paragraph(f"parameters: {report.parameters:,} in all, {report.active_parameters:,} active per "
                           "token", width)
    fit, style = _fit_line(report)
    print_lines(console, lines + paragraph(shown(fit), width, style))
    render_placement(report.placement, console)
    print_lines(console, [line for note in report.notes for line in paragraph(shown(f"note: {note}"), width,
                                                                              "yellow")])


def _fit_line(report: BudgetReport) -> tuple[str, str | None]:
    needed = human_bytes(report.needed_bytes)
    if report.available_bytes is None:
        return f"fit: needs {needed}; free memory on {report.available_on} cannot be told.", None
    free = human_bytes(report.available_bytes)
    if report.fits:
        return f"fit: ✓ needs {needed} of {free} available on {report.available_on}.", "green"
    return f"fit: ✗ needs {needed}, only {free} available on {report.available_on}.", "red"
