"""Render BudgetReport: one table of rows grouped Weights / Inference or Fine-tuning / FLOPs / Fit, then the fit in
one line."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from t5peek.budget.records import BudgetReport, BudgetRow
from t5peek.render.format import human_bytes, human_count
from t5peek.render.placement import render_placement


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
    table = Table(title=_title(report), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    table.add_column("what", overflow="fold", min_width=15)  # "cross-attention" stays whole
    table.add_column("formula", overflow="fold", style="dim", min_width=12)
    table.add_column("bytes/FLOP", justify="right", no_wrap=True)
    table.add_column("from", overflow="fold", style="dim", min_width=10)
    group = None
    for row in report.rows:
        if row.group != group:
            if group is not None:
                table.add_section()
            group = row.group
            table.add_row(Text(group.value, style="bold"), "", "", "")
        table.add_row(Text(row.what, style="bold" if row.total else ""), row.formula, _amount(row), row.modules)
    console.print(table)
    if report.parameters != report.active_parameters:
        console.print(f"parameters: {report.parameters:,} in all, {report.active_parameters:,} active per token")
    console.print(_fit_line(report))
    render_placement(report.placement, console)
    for note in report.notes:
        console.print(Text(f"note: {note}", style="yellow"))


def _fit_line(report: BudgetReport) -> Text:
    needed = human_bytes(report.needed_bytes)
    if report.available_bytes is None:
        return Text(f"fit: needs {needed}; free memory on {report.available_on} cannot be told.")
    free = human_bytes(report.available_bytes)
    if report.fits:
        return Text(f"fit: ✓ needs {needed} of {free} available on {report.available_on}.", style="green")
    return Text(f"fit: ✗ needs {needed}, only {free} available on {report.available_on}.", style="red")
