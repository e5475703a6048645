"""Render a knockout run: the original tokens' logits with and without the heads, the free output with the heads
knocked out beside the original, and (--sweep) a layer × head table. Tokens are Text, never markup."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from t5peek.interventions.records import KnockoutRun
from t5peek.render.format import Column, flow, grid, print_lines, show_token, words

KIND_NAMES = {"encoder": "encoder self-attention", "self": "decoder self-attention",
              "cross": "decoder cross-attention"}
CHANGED_MARK = "*"


def render_knockout(run: KnockoutRun, console: Console) -> None:
    width = console.width or 100
    heads = ", ".join(head.label for head in run.heads) or "none (sweep only)"
    title = [Text(f"{run.model}  ", style="bold"), Text("head knockout", style="bold cyan")]
    title += words(f"·  {heads}  ·  {'zeroed' if run.mode == 'zero' else 'mean-ablated'}", first="  ")
    print_lines(console, flow(title, width))
    print_lines(console, flow([Text("source:", style="bold")] + [Text(" " + show_token(t)) for t in run.source_tokens],
                              width))
    if run.heads:
        _steps(run, console, width)
    if run.sweep:
        console.print()
        _sweep(run, console, width)
    for note in run.notes:
        print_lines(console, flow(words("note: " + note, first=""), width))


def _steps(run: KnockoutRun, console: Console, width: int) -> None:
    print_lines(console, flow(words(f"original: {run.original_text!r}", first=""), width))
    print_lines(console, flow(words(f"knocked out: {run.ablated_text!r}", first=""), width))
    if run.first_change is None:
        verdict = "with the heads knocked out, the model still says the same, token for token."
    else:
        verdict = (f"with the heads knocked out, the output departs at position {run.first_change}: "
                   f"{_token_at(run.original_tokens, run.first_change)} becomes "
                   f"{_token_at(run.ablated_tokens, run.first_change)}.")
    print_lines(console, flow(words(verdict, first=""), width))
    console.print()
    print_lines(console, flow(words("teacher-forced on the original output: each original token's logit with the "
                                    "heads and without them, and what the model would pick without them", style="bold",
                                    first=""), width))
    columns = [Column("pos", right=True, key=True), Column("token"), Column("logit", right=True),
               Column("knocked out", right=True), Column("change", right=True), Column("top without")]
    rows = [[str(s.position), show_token(s.token), f"{s.logit:.2f}", f"{s.ablated_logit:.2f}",
             f"{s.ablated_logit - s.logit:+.2f}",
             show_token(s.ablated_top) + ("" if s.ablated_top_id == s.token_id else f"  {CHANGED_MARK} differs")]
            for s in run.steps]
    print_lines(console, grid(columns, rows, width, indent=2))


def _token_at(tokens: tuple[str, ...], position: int) -> str:
    """The token predicted at decoder `position` (tokens[0] is the start token)."""
    return "the end of the output" if position + 1 >= len(tokens) else f"'{show_token(tokens[position + 1])}'"


def _sweep(run: KnockoutRun, console: Console, width: int) -> None:
    kind = run.sweep_kind or ""
    print_lines(console, flow(words(f"--sweep {kind}: every {KIND_NAMES.get(kind, kind)} head knocked out alone; the "
                                    "mean change of the original tokens' logits (teacher-forced), "
                                    f"{CHANGED_MARK} where the free output changes", style="bold", first=""), width))
    layers = sorted({cell.layer for cell in run.sweep})
    heads = sorted({cell.head for cell in run.sweep})
    cells = {(cell.layer, cell.head): cell for cell in run.sweep}
    columns = [Column("layer", right=True, key=True)] + [Column(f"head {h}", right=True) for h in heads]
    rows = []
    for layer in layers:
        row = [str(layer)]
        for head in heads:
            cell = cells.get((layer, head))
            row.append("" if cell is None else f"{cell.mean_logit_change:+.2f}" +
                       (CHANGED_MARK if cell.output_changes else " "))
        rows.append(row)
    print_lines(console, grid(columns, rows, width, indent=2))
    worst = min(run.sweep, key=lambda cell: cell.mean_logit_change)
    changed = sum(cell.output_changes for cell in run.sweep)
    print_lines(console, flow(words(f"the head that matters most here is {kind}:{worst.layer}.{worst.head} "
                                    f"({worst.mean_logit_change:+.2f} on average); {changed} of {len(run.sweep)} heads "
                                    "change the output alone.", first=""), width))
