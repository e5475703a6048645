"""Render decoding runs: the plan, each step as it comes, and a summary with the cross-attention heatmap.

Everything reads without colour (NO_COLOR, pipes): probabilities are bars of block characters and the heatmap
uses the shades `·░▒▓█`; colour only adds emphasis.
"""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table
from rich.text import Text

from t5peek.generate import BeamStep, DecodePlan, DecodeRun, Step

SHADES = "·░▒▓█"
_SHADE_STYLES = ("dim", "magenta", "magenta", "bold magenta", "bold magenta")
_STRATEGY = {"greedy": "greedy search", "sample": "sampling", "beam": "beam search",
             "beam sample": "beam search with sampling"}
_RULE = {"greedy": "greedy: highest score", "sampled": "sampled", "beam": "beam search",
         "beam sample": "beam search (sampled)"}


# ----------------------------------------------------------------------------- small pieces


def fmt(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if value == -math.inf:
        return "-inf"
    if value == math.inf:
        return "inf"
    return f"{value:.{digits}f}"


def percent(prob: float) -> str:
    if prob is None or math.isnan(prob):
        return "nan"
    return f"{prob * 100:.1f}%" if prob >= 0.001 or prob == 0 else f"{prob * 100:.0e}%"


def bar(prob: float, width: int = 10) -> str:
    if prob is None or math.isnan(prob) or prob <= 0:
        return ""
    eighths = max(1, round(prob * width * 8))
    full, rest = divmod(eighths, 8)
    return "█" * full + ("▏▎▍▌▋▊▉"[rest - 1] if rest else "")


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def show_token(token: str) -> str:
    """Tokens as the tokenizer spells them, with control characters made visible."""
    return token.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def source_name(tokens, index: int) -> str:
    """A source token, with its position when the same token occurs more than once."""
    token = show_token(tokens[index])
    return f"{token}[{index}]" if tokens.count(tokens[index]) > 1 else token


def tail(tokens, ids, width: int) -> tuple[str, str]:
    """The end of a decoder input that fits in `width`: (tokens, ids), '…' where it was cut."""
    shown_tokens, shown_ids = [], []
    used = 0
    for token, token_id in zip(reversed(tokens), reversed(ids)):
        piece = show_token(token)
        if used + len(piece) + 1 > width and shown_tokens:
            shown_tokens.insert(0, "…")
            shown_ids.insert(0, "…")
            break
        shown_tokens.insert(0, piece)
        shown_ids.insert(0, str(token_id))
        used += len(piece) + 1
    return " ".join(shown_tokens), " ".join(shown_ids)


# ----------------------------------------------------------------------------- the plan


def render_plan(plan: DecodePlan, console: Console, model: str = "") -> None:
    title = Text()
    title.append(f"{model}  " if model else "", style="bold")
    title.append(_STRATEGY.get(plan.strategy, plan.strategy), style="bold cyan")
    title.append(f"  ·  cross-attention of decoder layer {plan.layer} (of 0-{plan.decoder_layers - 1}), "
                 f"mean of {plan.heads} heads")
    console.print(title)
    source = Text(f"source ({len(plan.source_ids)} tokens): ", style="bold")
    source.append(" ".join(show_token(t) for t in plan.source_tokens))
    console.print(source)
    table = Table(box=None, show_header=False, padding=(0, 2), pad_edge=False)
    table.add_column("setting", style="bold")
    table.add_column("value")
    table.add_column("from", style="dim", overflow="fold")
    for name, setting in plan.settings.items():
        label = "top_k (sampling filter)" if name == "top_k" else name
        table.add_row("  " + label, _value(setting.value), setting.source)
    console.print(table)
    if plan.processors:
        console.print(Text("  logits processors: " + ", ".join(plan.processors), style="dim"))
    console.print()


def _value(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


# ----------------------------------------------------------------------------- one step


def render_step(step: Step, console: Console, plan: DecodePlan, all_layers: bool = False) -> None:
    width = console.width or 100
    head = Text()
    head.append(f"step {step.step}", style="bold")
    tokens, ids = tail(step.input_tokens, step.input_ids, max(20, (width - 40) // 2))
    head.append(f"  decoder input ({len(step.input_ids)}): ")
    head.append(tokens, style="cyan")
    head.append(f"   ids {ids}", style="dim")
    console.print(head)
    console.print(_candidates_table(step, plan))
    console.print(_looked_at(step, plan, all_layers))
    console.print()


def _candidates_table(step: Step, plan: DecodePlan) -> Table:
    beam = plan.strategy.is_beam
    table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False)
    table.add_column("    #", justify="right")
    table.add_column("id", justify="right")
    table.add_column("token", max_width=24, overflow="ellipsis", no_wrap=True)
    table.add_column("logit", justify="right")
    # the score column says what the processors did; without any it would repeat the logit
    show_score = beam or any(c.score != c.logit for c in step.top_k + (step.chosen,))
    if show_score:
        table.add_column("log-prob" if beam else "score", justify="right")
    table.add_column("prob", justify="right")
    table.add_column("", no_wrap=True)
    table.add_column("", no_wrap=True)
    rows = list(enumerate(step.top_k, 1))
    if step.chosen_rank is None:
        rows.append((None, step.chosen))
    for rank, candidate in rows:
        chosen = candidate.token_id == step.token_id
        mark = f"◀ {_RULE.get(step.rule, step.rule)}" if chosen else ""
        if chosen and rank is None:
            mark += f" (outside the top {len(step.top_k)})"
        cells = [f"{'▶ ' if chosen else '  '}{rank if rank is not None else '…'}", str(candidate.token_id),
                 show_token(candidate.token), fmt(candidate.logit)]
        cells += [fmt(candidate.score)] if show_score else []
        cells += [percent(candidate.probability), bar(candidate.probability), mark]
        table.add_row(*cells, style="bold" if chosen else None)
    return table


def _looked_at(step: Step, plan: DecodePlan, all_layers: bool) -> Text:
    text = Text("      looked at ", style="dim")
    text.append(f"(layer {plan.layer}): ", style="dim")
    order = sorted(range(len(step.cross_attention)), key=lambda i: -step.cross_attention[i])[:3]
    text.append(" · ".join(f"{source_name(plan.source_tokens, i)} {step.cross_attention[i]:.2f}" for i in order),
                style="magenta")
    if all_layers:
        text.append("\n      strongest per layer: ", style="dim")
        text.append(" · ".join(f"L{f.layer} {source_name(plan.source_tokens, f.source_index)} {f.weight:.2f}"
                               for f in step.layers))
    return text


# ----------------------------------------------------------------------------- one beam-search step


def render_beam_step(step: BeamStep, console: Console) -> None:
    width = console.width or 100
    console.print(Text(f"step {step.step}", style="bold") + Text(f"  {len(step.beams)} running beam(s)"))
    table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False)
    table.add_column("  beam", justify="right")
    table.add_column("log-prob", justify="right")
    table.add_column("decoder input", style="cyan", no_wrap=True)
    table.add_column("best next tokens (log-prob)", no_wrap=True, overflow="ellipsis")
    input_width = max(16, width // 3)
    for row in step.beams:
        tokens, _ = tail(row.input_tokens, row.input_ids, input_width)
        best = " · ".join(f"{show_token(c.token)} {fmt(c.score)}" for c in row.top_k[:3])
        table.add_row(str(row.beam), fmt(row.score), tokens, best)
    console.print(table)
    kept = Text("    kept: ", style="dim")
    kept.append("   ".join(f"{c.beam} ← beam {c.parent} + {show_token(c.token)} ({fmt(c.score)})"
                           for c in step.next_beams))
    console.print(kept)
    for hypothesis in step.finished:
        line = Text("    finished: ", style="dim")
        line.append(repr(hypothesis.text), style="green")
        line.append(f"  from beam {hypothesis.parent}, score {fmt(hypothesis.score, 3)} (log-prob / length^penalty)",
                    style="dim")
        console.print(line)
    console.print()


# ----------------------------------------------------------------------------- the end


def render_summary(run: DecodeRun, console: Console) -> None:
    console.print()
    out = Text("output  ", style="bold")
    out.append(run.output_text or "(empty)", style="bold green")
    console.print(out)
    ids = Text("ids     ", style="bold")
    ids.append(" ".join(str(i) for i in run.output_ids))
    ids.append(f"   stopped: {run.stop_reason}", style="dim")
    if run.sequence_score is not None:
        ids.append(f"; beam score {fmt(run.sequence_score, 4)}", style="dim")
    console.print(ids)
    if run.strategy.is_beam and run.steps:
        console.print(Text("how the output was built (the beam each token extended):", style="bold"))
        path = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False)
        for name, justify in (("  step", "right"), ("from beam", "right"), ("token", "left"),
                              ("log-prob", "right"), ("prob", "right"), ("looked at", "left")):
            path.add_column(name, justify=justify, no_wrap=True)
        for step in run.steps:
            focus = step.layers[run.layer]
            path.add_row(str(step.step), str(step.beam), show_token(step.token), fmt(step.chosen.score),
                         percent(step.chosen.probability), f"{source_name(run.source_tokens, focus.source_index)} "
                                                    f"{focus.weight:.2f}")
        console.print(path)
    for note in run.notes:
        console.print(Text(f"note: {note}", style="yellow"))
    console.print()
    console.print(Text(f"cross-attention · decoder layer {run.layer} · mean of {run.heads} heads · "
                       "rows: generated, columns: source", style="bold"))
    for line in heatmap_lines(run, console.width or 100):
        console.print(line, soft_wrap=False, overflow="crop", no_wrap=True)


def heatmap_lines(run: DecodeRun, width: int = 100) -> list[Text]:
    """The generated tokens × source tokens map as lines of text, split into blocks of columns when too wide."""
    rows = [step.cross_attention for step in run.steps]
    labels = [show_token(step.token) for step in run.steps]
    columns = [show_token(t) for t in run.source_tokens]
    if not rows or not columns:
        return [Text("(no steps)")]
    strongest = max(max(row) for row in rows) or 1.0
    label_width = min(14, max(len(label) for label in labels))
    focus_width = 16
    room = max(10, width - label_width - 3 - focus_width)
    # two characters per cell reads best; one when two would need more than three blocks
    cell = 2 if math.ceil(len(columns) * 2 / room) <= 3 else 1
    blocks = math.ceil(len(columns) * cell / room)
    per_block = math.ceil(len(columns) / blocks)
    lines: list[Text] = []
    for start in range(0, len(columns), per_block):
        block = list(range(start, min(len(columns), start + per_block)))
        if len(columns) > per_block:
            lines.append(Text(f"source tokens {block[0]}-{block[-1]} of {len(columns)}", style="dim"))
        lines.extend(_vertical_header(columns, block, label_width, cell))
        for label, row in zip(labels, rows):
            line = Text(clip(label, label_width).rjust(label_width) + " │")
            for index in block:
                level = min(len(SHADES) - 1, int(row[index] / strongest * (len(SHADES) - 1) + 0.5))
                line.append(SHADES[level] * cell, style=_SHADE_STYLES[level])
            best = max(range(len(row)), key=row.__getitem__)
            line.append("│ ")
            name = _plain(columns[best]) + (f"[{best}]" if columns.count(columns[best]) > 1 else "")
            line.append(clip(f"{name} {row[best]:.2f}", focus_width), style="dim")
            lines.append(line)
    steps = [f"{SHADES[i]} ≥{(i - 0.5) / (len(SHADES) - 1):.0%}" if i else f"{SHADES[0]} <12%"
             for i in range(len(SHADES))]
    lines.append(Text(f"{'':>{label_width}}  " + "  ".join(steps) + f"  of the strongest weight ({strongest:.2f})",
                      style="dim"))
    return lines


def _plain(token: str) -> str:
    """A token without its word-start marker (SentencePiece ▁, byte-level BPE Ġ), for narrow labels."""
    stripped = token.lstrip("▁Ġ")
    return stripped or token


def _vertical_header(columns: list[str], block: list[int], label_width: int, cell: int, depth: int = 6
                     ) -> list[Text]:
    names = [clip(_plain(columns[i]), depth) for i in block]
    height = max(len(name) for name in names)
    lines = []
    for row in range(height):
        chars = "".join((name[row] if row < len(name) else " ").ljust(cell) for name in names)
        lines.append(Text(" " * (label_width + 2) + chars, style="bold"))
    return lines


def render_run(run: DecodeRun, console: Console, model: str = "", all_layers: bool = False) -> None:
    """The whole run at once (what the command streams piece by piece)."""
    render_plan(run, console, model)
    if run.beam_steps:
        for beam_step in run.beam_steps:
            render_beam_step(beam_step, console)
    else:
        for step in run.steps:
            render_step(step, console, run, all_layers)
    render_summary(run, console)
