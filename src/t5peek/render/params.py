"""Render ParamReport: the breakdown table, then memory per dtype."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from t5peek.params import ParamReport
from t5peek.render.format import human_bytes, human_count
from t5peek.render.placement import render_placement


def _longest_word(texts, cap: int = 32) -> int:
    """A column at least as wide as its longest name (`decoder.embed_tokens,`), so names wrap whole."""
    return min(cap, max((len(word) for text in texts if text for word in text.split()), default=1))


def render_params(report: ParamReport, console: Console) -> None:
    # no vertical rules: at 80 columns the room goes to the names, which wrap whole
    table = Table(title=f"{report.model}: parameters by {report.by}", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    table.add_column(report.by, overflow="fold", min_width=_longest_word(row.label for row in report.rows))
    table.add_column("params", justify="right")
    table.add_column("%", justify="right")
    if report.by == "component":
        table.add_column("blocks", justify="right")
        table.add_column("per block", justify="right")
    table.add_column("note", overflow="fold", style="dim", min_width=_longest_word(row.note for row in report.rows))
    for row in report.rows:
        cells = [row.label, f"{row.params:,}", f"{row.percent:.1f}"]
        if report.by == "component":
            cells += [str(row.blocks) if row.blocks else "", f"{row.per_block:,}" if row.per_block else ""]
        table.add_row(*cells, row.note)
    total_cells = ["total", f"{report.total:,}", "100.0"] + (["", ""] if report.by == "component" else []) + [
        human_count(report.total)]
    table.add_section()
    table.add_row(*total_cells, style="bold")
    console.print(table)

    memory = Table(title="memory for the weights", title_justify="left", box=None, padding=(0, 2))
    memory.add_column("dtype")
    memory.add_column("size", justify="right")
    for dtype, size in report.memory_bytes.items():
        memory.add_row(dtype, human_bytes(size))
    if report.stored_bytes is not None:
        memory.add_row(f"as stored ({report.stored_dtype})", human_bytes(report.stored_bytes))
    console.print(memory)
    if report.tied:
        for group in report.tied:
            console.print(Text(f"tied: {group.stored_as} is also {', '.join(group.shared_with)} "
                               f"({group.params:,} parameters, counted once)", style="blue"))
    if report.trainable is not None:
        console.print(f"trainable: {report.trainable:,}   frozen: {report.frozen:,}")

    render_placement(report.placement, console)
    console.print(Text(f"counted from: {report.counted_from}", style="dim"))
    for note in report.notes:
        console.print(Text(f"note: {note}", style="yellow"))
