"""Render an attribution run: the source coloured by attribution, a signed bar per token, the completeness check,
the decoder's earlier tokens apart, and integrated gradients, occlusion and cross-attention ranked side by side.
Colour is style only: signs, numbers and bars say everything without it. Tokens are Text, never markup."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from t5peek.attribution.records import AttributionRun
from t5peek.render.format import Column, flow, grid, print_lines, show_token, source_name, words

BAR_HALF = 10  # cells on each side of the axis
AXIS = "│"
RANKED = 5
POSITIVE, NEGATIVE = "green", "red"


def render_attribute(run: AttributionRun, console: Console) -> None:
    width = console.width or 100
    plus_minus = "±" if (console.encoding or "utf-8").lower().replace("_", "-").startswith("utf") else "+/-"
    _header(run, console, width)
    console.print()
    print_lines(console, flow(words("source tokens, by integrated gradients", style="bold", first=""), width))
    print_lines(console, flow(_coloured(run.source_tokens, run.source_attributions), width, indent=2))
    print_lines(console, _bars(list(run.source_tokens), run.source_attributions, width))
    print_lines(console, flow(words(_check(run.score, run.baseline_score, run.source_attributions,
                                           run.completeness_error, plus_minus), first=""), width))
    console.print()
    read = [show_token(t) for t in run.output_tokens[:run.position + 1]]
    title = f"the decoder's tokens 0 to {run.position}, by integrated gradients (the source as it is)"
    print_lines(console, flow(words(title, style="bold", first=""), width))
    print_lines(console, _bars(read, run.prefix_attributions, width))
    print_lines(console, flow(words(_check(run.score, run.prefix_baseline_score, run.prefix_attributions,
                                           run.prefix_completeness_error, plus_minus, "prefix"),
                                           first=""), width))
    console.print()
    _rankings(run, console, width)
    for note in run.notes:
        print_lines(console, flow(words("note: " + note, first=""), width))


def score_name(run: AttributionRun) -> str:
    token = f"logit('{show_token(run.token)}')"
    return token if run.contrast_token is None else f"{token} - logit('{show_token(run.contrast_token)}')"


def _header(run: AttributionRun, console: Console, width: int) -> None:
    title = [Text(f"{run.model}  ", style="bold"), Text("integrated gradients", style="bold cyan")]
    title += words(f"·  decoder position {run.position}", first="  ")
    print_lines(console, flow(title, width))
    print_lines(console, flow([Text("source:", style="bold")] + [Text(" " + show_token(t)) for t in run.source_tokens],
                              width))
    read = " ".join(show_token(t) for t in run.output_tokens[:run.position + 1])
    why = "" if run.contrast_token is None else f", rather than '{show_token(run.contrast_token)}'"
    print_lines(console, flow(words(f"the decoder reads the greedy output up to position {run.position} ({read}) and "
                                    f"predicts '{show_token(run.token)}' (id {run.token_id}){why}.", first=""), width))
    pad = show_token(run.pad_token)
    print_lines(console, flow(words(f"score = {score_name(run)} = {run.score:.3f}; baseline: every source token's "
                                    f"embedding replaced by {pad}'s (positions kept) = {run.baseline_score:.3f}. "
                                    f"Attributions by the {run.method}, {run.steps} steps; + pushes the score up, - "
                                    "down.", first=""), width))


def _check(score: float, baseline: float, attributions, error: float, plus_minus: str, part: str = "") -> str:
    span = score - baseline
    share = f"{100 * abs(error) / abs(span):.2f}% of the difference" if span else "the difference is 0"
    label = "prefix baseline" if part else "baseline"
    subtracted = f"{baseline:.3f}" if baseline >= 0 else f"({baseline:.3f})"
    return (f"check: sum of attributions = score - {label} {plus_minus} error: {sum(attributions):.3f} = {score:.3f} - "
            f"{subtracted} {plus_minus} {abs(error):.3f} ({share}).")


def _style(value: float, strongest: float) -> str:
    strength = abs(value) / strongest if strongest else 0.0
    if strength < 0.1:
        return "dim"
    colour = POSITIVE if value > 0 else NEGATIVE
    return f"bold {colour}" if strength >= 0.5 else colour


def _coloured(tokens, values) -> list[Text]:
    strongest = max((abs(v) for v in values), default=0.0)
    return [Text(("" if i == 0 else " ") + show_token(token), style=_style(value, strongest))
            for i, (token, value) in enumerate(zip(tokens, values))]


def signed_bar(value: float, strongest: float, half: int = BAR_HALF) -> Text:
    """`value` as cells left (negative) or right (positive) of an axis, scaled to `strongest`."""
    cells = 0 if not strongest else round(abs(value) / strongest * half)
    left = " " * half if value >= 0 else " " * (half - cells) + "█" * cells
    right = "█" * cells if value > 0 else ""
    bar = Text(left, style=NEGATIVE)
    bar.append(AXIS)
    bar.append(right, style=POSITIVE)
    return bar


def _bars(names: list[str], values, width: int) -> list[Text]:
    strongest = max((abs(v) for v in values), default=0.0)
    columns = [Column("#", right=True, key=True), Column("token", key=True), Column("attribution", right=True),
               Column()]
    rows = [[str(i), source_name(names, i), f"{value:+.3f}", signed_bar(value, strongest)]
            for i, value in enumerate(values)]
    return grid(columns, rows, width, indent=2)


def rankings(run: AttributionRun) -> dict[str, list[int]]:
    """The source positions by each measure, strongest first: attribution, occlusion drop, last layer's attention."""
    def order(values):
        return sorted(range(len(values)), key=lambda i: -values[i])

    return {"integrated gradients": order(run.source_attributions), "occlusion drop": order(run.occlusion_drops),
            "cross-attention": order(run.cross_attention[-1]) if run.cross_attention else []}


def _rankings(run: AttributionRun, console: Console, width: int) -> None:
    ranked = rankings(run)
    layer = len(run.cross_attention) - 1
    print_lines(console, flow(words("three rankings of the source tokens", style="bold", first=""), width))
    values = {"integrated gradients": [f"{v:+.3f}" for v in run.source_attributions],
              "occlusion drop": [f"{v:+.3f}" for v in run.occlusion_drops],
              "cross-attention": [f"{v:.3f}" for v in run.cross_attention[-1]] if run.cross_attention else []}
    columns = [Column("rank", right=True, key=True), Column("integrated gradients"), Column("occlusion drop"),
               Column(f"attention (layer {layer})")]
    rows = []
    for rank in range(min(RANKED, len(run.source_tokens))):
        row = [str(rank + 1)]
        for name, order in ranked.items():
            row.append(f"{source_name(run.source_tokens, order[rank])} {values[name][order[rank]]}" if order else "-")
        rows.append(row)
    print_lines(console, grid(columns, rows, width, indent=2))
    print_lines(console, flow(words(verdict(run), first=""), width))
    print_lines(console, flow(words(f"occlusion drop: the score minus the score with that token alone replaced by "
                                    f"{show_token(run.pad_token)}; attention: decoder layer {layer}'s cross-attention "
                                    f"at position {run.position}, mean of its heads.", "dim", first=""), width))


def verdict(run: AttributionRun) -> str:
    """One sentence: whether the three measures put the same source token first, and if not, how they differ."""
    firsts = {name: order[0] for name, order in rankings(run).items() if order}
    named = {name: f"'{source_name(run.source_tokens, index)}'" for name, index in firsts.items()}
    token = f"'{show_token(run.token)}'"
    gradients, occlusion = firsts["integrated gradients"], firsts["occlusion drop"]
    attention = firsts.get("cross-attention", gradients)
    if gradients == occlusion == attention:
        return f"All three put {named['integrated gradients']} first."
    if attention not in (gradients, occlusion):
        credited = named["integrated gradients"] + ("" if gradients == occlusion else
                                                    f" (occlusion: {named['occlusion drop']})")
        return (f"They disagree: the decoder looks hardest at {named['cross-attention']}, but integrated gradients "
                f"credit {credited} with {token} - where a model looks is not why it says what it says (attention "
                "is not explanation).")
    return (f"They disagree: integrated gradients put {named['integrated gradients']} first, occlusion "
            f"{named['occlusion drop']}, attention {named.get('cross-attention', '-')} - removing one token alone is "
            "not the path from the all-pad baseline that integrated gradients follows.")
