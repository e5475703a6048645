"""`generate --occlusion`: per generated token, the source token whose removal lowers its probability most beside
the one the decoder attended to most, a mark where they differ, and how often they agree."""

from __future__ import annotations

import math

from rich.console import Console
from rich.text import Text

from t5peek.generate import DecodeRun, Occlusion
from t5peek.render.format import Column, flow, grid, probability, show_token, source_name, words

DIFFERS = "✗ differs"
NOT_FINITE = "? not finite"


def render_occlusion(run: DecodeRun, console: Console) -> None:
    if run.occlusion is None:
        return
    for line in occlusion_lines(run, run.occlusion, console.width or 100):
        console.print(line, soft_wrap=True)


def occlusion_lines(run: DecodeRun, occlusion: Occlusion, width: int) -> list[Text]:
    kept = [source_name(run.source_tokens, i) for i, occluded in enumerate(occlusion.occluded) if not occluded]
    title = words(f"occlusion · each source token replaced by {show_token(occlusion.pad_token)} in turn, the output "
                  "re-scored teacher-forced (the model's probabilities, no logits processors) · attention: decoder "
                  f"layer {occlusion.layer}, mean of {run.heads} heads", "bold", first="")
    lines = [Text()] + flow(title, width)
    if kept:
        lines += flow(words(f"not occluded: {' '.join(kept)} (special tokens carry no word of the input)", "dim",
                            first=""), width)
    columns = [Column("  step", right=True, key=True), Column("token"), Column("prob", right=True),
               Column("needs most"), Column("drop", right=True), Column("looks at most"), Column()]
    rows = []
    styles = []
    for row in occlusion.rows:
        occluded = "-" if row.occlusion_index is None else source_name(run.source_tokens, row.occlusion_index)
        attended = "-" if row.attention_index is None else \
            f"{source_name(run.source_tokens, row.attention_index)} {row.attention_weight:.2f}"
        compared = math.isfinite(row.probability)
        rows.append([str(row.step), show_token(row.token), probability(row.probability), occluded,
                     signed(row.drop), attended, NOT_FINITE if not compared else "" if row.agree else DIFFERS])
        styles.append(None if row.agree else "yellow")
    lines += grid(columns, rows, width, row_styles=styles)
    unfinished = len(occlusion.rows) - occlusion.total
    summary = (f"agree {occlusion.agree} of {occlusion.total}: the source token attended to most is the one whose "
               "removal lowers the probability most" if occlusion.total else
               "no steps compared: their probabilities are not finite" if unfinished else "no steps to compare")
    if occlusion.total and unfinished:
        summary += f" ({unfinished} more not compared: their probability is not finite)"
    lines += flow(words(summary, "bold", first=""), width)
    lines += flow(words("drop: probability with the full source minus probability with that token replaced; "
                        "attention is where the decoder looked, occlusion what the output needed", "dim",
                        first=""), width)
    for note in occlusion.notes:
        lines += flow([Text("note:", style="bold")] + words(note, "dim"), width)
    return lines


def signed(drop: float | None) -> str:
    """A change of probability in the format of `probability()`, '-' first when the probability rose."""
    if drop is None or math.isnan(drop):
        return "nan" if drop is not None else "-"
    return probability(drop) if drop >= 0 else "-" + probability(-drop)
