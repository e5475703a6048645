"""Render the Comparison of `trace --target TEXT --compare`, after the teacher-forcing trace: teacher forcing against
the cached steps (max |Δ| per position, the loss both ways), the causal mask drawn once, then free-running greedy
with its first departure from the target. Tokens are Text, never markup; every table wraps whole at the width."""

from __future__ import annotations

import math

from rich.console import Console
from rich.text import Text

from t5peek.render.format import Column, grid, probability
from t5peek.render.table import rule, say, shown
from t5peek.trace.compare import CausalMask, Comparison, FreeRunPosition

MAX_ROWS_SHOWN = 48
MAX_MASK_SHOWN = 24  # positions of the mask's corner at most, whatever the width
_MASK_LABEL_TOKEN = 10  # cells of a row label's token in the mask (longer tokens end in "…")
ATTENDS, MASKED = "█", "·"  # ASCII output: '#' and '-'


def render_comparison(comparison: Comparison, console: Console) -> None:
    console.print()
    rule(console, Text("training vs inference: the same target, two ways", style="bold"))
    _forced(comparison, console)
    _mask(comparison, console, console.width)
    _free_running(comparison, console)
    for note in comparison.notes:
        _print(console, f"note: {note}", "yellow")


def _print(console: Console, text: str, style: str = "dim") -> None:
    say(console, Text(text, style=style))


def _grid(console: Console, columns: list[Column], rows: list[list]) -> None:
    """A table whose columns wrap whole, measured in the glyphs the console shows."""
    for line in grid(columns, [[shown(cell, console) for cell in row] for row in rows], console.width, indent=2):
        console.print(line)


def _delta(value: float) -> str:
    return "0" if value == 0 else f"{value:.1e}"


# ---------------------------------------------------------------------------------------------- 1. the logits


def _forced(comparison: Comparison, console: Console) -> None:
    _print(console, "1. teacher forcing (one pass, every position at once) against the cached decoder (one position "
                    "per step with a KV cache), both reading the same tokens: the target shifted right.",
           "bold")
    columns = [Column("pos", right=True, key=True), Column("decoder reads (id)"), Column("label (id)"),
               Column("p(label)", right=True), Column("max |diff|", right=True), Column("argmax")]
    rows = []
    for position in comparison.positions[:MAX_ROWS_SHOWN]:
        same_top = "same" if position.forced_top_id == position.cached_top_id else "differs"
        rows.append([str(position.position), Text(f"{position.input_token} ({position.input_id})"),
                     Text(f"{position.label_token} ({position.label_id})"), probability(position.label_probability),
                     _delta(position.max_abs_diff), same_top if position.compared else "-"])
    _grid(console, columns, rows)
    _more(console, len(comparison.positions))
    relative = comparison.relative_tolerance
    compared = sum(p.compared for p in comparison.positions)
    over = f"{compared} of {len(comparison.positions)}" if compared < len(comparison.positions) else \
        str(compared)
    measured = (f"max |diff| {_delta(comparison.max_abs_diff)} over {over} positions, each the largest difference "
                f"of any logit; tolerance {relative:g} × max(2, largest |logit|) in {comparison.dtype}: ")
    _print(console, (measured if compared else "") + _verdict(comparison) + ".",
           "bold red" if comparison.agrees is False else "dim")
    _print(console, f"loss {comparison.forced_loss:.4f} from the one teacher-forced pass (what training "
                    f"minimises), {comparison.cached_loss:.4f} from the cached steps: the mean of -log p(label). "
                    "Training computes every position in one pass because it already knows every input token.")


def _verdict(comparison: Comparison) -> str:
    if comparison.agrees:
        return "the two agree at every position, and so does the highest-scoring token (argmax)"
    if comparison.agrees is False:
        return "they DIFFER beyond the tolerance: the cached path does not compute what training computes"
    first = next(p.position for p in comparison.positions if not p.compared)
    rest = ("; they agree at every other position" if any(p.compared for p in comparison.positions) else "")
    return f"not compared: from position {first} on the logits of both paths are not finite (see the note){rest}"


def _more(console: Console, count: int) -> None:
    if count > MAX_ROWS_SHOWN:
        console.print(Text(f"  … {count - MAX_ROWS_SHOWN} more positions (--json has them all)", style="dim"))


# ---------------------------------------------------------------------------------------------- 2. the mask


def _mask(comparison: Comparison, console: Console, width: int) -> None:
    mask = comparison.mask
    console.print()
    _print(console, f"2. the causal mask of the decoder's self-attention ({mask.size} × {mask.size}): row = the "
                    f"position asking, column = the position it may look at; {ATTENDS} attends, {MASKED} masked.",
           "bold")
    digits = len(str(mask.size - 1))
    labels = [f"{p.position:>{digits}} {_short(p.input_token)}" for p in comparison.positions]
    cell = digits + 1
    label_width = max(len(label) for label in labels[:MAX_MASK_SHOWN]) + 2
    shown = max(1, min(mask.size, MAX_MASK_SHOWN, (width - 2 - label_width) // cell))
    header = Text(" " * (2 + label_width) + "".join(f"{j:>{cell - 1}} " for j in range(shown)).rstrip())
    console.print(header, style="dim")
    for i in range(shown):
        row = Text("  " + labels[i].ljust(label_width))
        row.append(" ".join(" " * (cell - 2) + (ATTENDS if j <= i else MASKED) for j in range(shown)))
        console.print(row)
    if shown < mask.size:
        _print(console, f"the top-left corner, {shown} of {mask.size} positions: every row continues the same way.")
    _print(console, _mask_measured(mask))


def _short(token: str) -> str:
    return token if len(token) <= _MASK_LABEL_TOKEN else token[:_MASK_LABEL_TOKEN - 1] + "…"


def _mask_measured(mask: CausalMask) -> str:
    if mask.above_diagonal_max is None:
        return "this model returns no decoder attention weights, so the mask was not measured."
    if math.isnan(mask.above_diagonal_max):
        return ("the attention weights of the teacher-forced pass are not finite, so the mask could not be measured "
                "on them.")
    held = "the mask held" if mask.above_diagonal_max == 0 else "the mask LEAKED"
    return (f"measured on the teacher-forced pass: the largest weight any position gave a later one, over "
            f"{mask.layers} decoder layers × {mask.heads} heads, is {_delta(mask.above_diagonal_max)}: {held}. "
            "Position i reads the labels before i only, so it cannot copy the label it must predict.")


# ---------------------------------------------------------------------------------------------- 3. free running


def _free_running(comparison: Comparison, console: Console) -> None:
    console.print()
    free = comparison.free_running
    _print(console, f"3. free-running greedy: the decoder reads its own previous choice, as generate() does, for "
                    f"{len(comparison.positions)} steps (the target's length).", "bold")
    departure = comparison.first_departure
    columns = [Column("pos", right=True, key=True), Column("reads (id)"), Column("label (id)"),
               Column("choice (id)"), Column("p", right=True), Column("")]
    rows = [[str(p.position), Text(f"{p.input_token} ({p.input_id})"), Text(f"{p.label_token} ({p.label_id})"),
             Text(f"{p.chosen_token} ({p.chosen_id})"), probability(p.probability),
             _mark(p, departure, comparison.arbitrary_from)]
            for p in free[:MAX_ROWS_SHOWN]]
    _grid(console, columns, rows)
    _more(console, len(free))
    if comparison.processors:
        _print(console, "scores after generate()'s logits processors: " + ", ".join(comparison.processors) + ".")
    _print(console, _departure_text(comparison), "bold" if _departed(comparison) else "dim")
    if comparison.free_running_text:
        _print(console, f"free-running output: {comparison.free_running_text!r}")


def _departed(comparison: Comparison) -> bool:
    """A first departure the model chose: before the step from which its choices are arbitrary."""
    arbitrary = comparison.arbitrary_from
    return comparison.first_departure is not None and (arbitrary is None or comparison.first_departure < arbitrary)


def _mark(position: FreeRunPosition, departure: int | None, arbitrary: int | None) -> str:
    if arbitrary is not None and position.position >= arbitrary:
        return "? arbitrary"
    if departure is not None and position.position == departure:
        return "✗ first departure"
    if departure is not None and position.position > departure:
        return ("✓" if position.matches else "✗") + " (own prefix)"
    return "✓" if position.matches else "✗"


def _departure_text(comparison: Comparison) -> str:
    departure = comparison.first_departure
    if comparison.arbitrary_from is not None and not _departed(comparison):
        return (f"from step {comparison.arbitrary_from} on the free-running scores are not finite, so the choices "
                "there are arbitrary (see the note): no departure from the target can be read"
                + (" before it." if comparison.arbitrary_from else "."))
    if departure is None:
        return ("the model's own choices follow the target at every position: free-running and teacher forcing "
                "read the same tokens, so they compute the same thing.")
    if departure >= len(comparison.free_running):
        return (f"generation ended at the end-of-sequence token before position {departure}: the target goes on "
                "where the model stopped.")
    position = comparison.free_running[departure]
    return (f"first departure at position {departure}: the model chose {position.chosen_token!r} where the target "
            f"has {position.label_token!r}. Up to there both runs read the same tokens; from there on the decoder "
            "reads its own choice, a prefix training never showed it (training always feeds the right previous "
            "token): exposure bias.")
