"""Render decoding runs: the plan, each step as it comes, and a summary with the cross-attention heatmap.

Everything reads without colour (NO_COLOR, pipes): probabilities are bars of block characters and the heatmap
uses the shades `·░▒▓█`; colour only adds emphasis. At any width every number and token is printed whole: the
bars and labels give way first, then what still does not fit moves to the next line (table columns as a block).
"""

from __future__ import annotations

import math
from dataclasses import replace

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from t5peek.generate import BeamStep, DecodePlan, DecodeRun, Step
from t5peek.render.format import Column, bar, flow, grid, grid_width, probability, show_token, source_name, words
from t5peek.render.heatmap import shade_lines
from t5peek.render.occlusion import render_occlusion
from t5peek.render.self_attention import render_self_attention
from t5peek.render.table import glyphs_of, shown, table

_STRATEGY = {"greedy": "greedy search", "sample": "sampling", "beam": "beam search",
             "beam sample": "beam search with sampling"}
_RULE = {"greedy": "greedy: highest score", "sampled": "sampled", "beam": "beam search",
         "beam sample": "beam search (sampled)", "forced": "forced by --force"}
_INPUT_SHOWN = 32  # cells of a decoder input shown, from its end: the same at every width
_BEAM_INPUT_SHOWN = 24
_PENALTY_NOTE = " (log-prob / length^penalty)"


# ----------------------------------------------------------------------------- small pieces


def fmt(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if value == -math.inf:
        return "-inf"
    if value == math.inf:
        return "inf"
    return f"{value:.{digits}f}"


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


def _print(console: Console, lines: list[Text]) -> None:
    for line in lines:
        console.print(line, soft_wrap=True)  # laid out already: no wrapping, no cropping


def _width(console: Console) -> int:
    return console.width or 100


# ----------------------------------------------------------------------------- the plan


def render_plan(plan: DecodePlan, console: Console, model: str = "") -> None:
    width = _width(console)
    title = [Text(f"{model}  " if model else "", style="bold"),
             Text(_STRATEGY.get(plan.strategy, plan.strategy), style="bold cyan")]
    title += words(f"·  cross-attention of decoder layer {plan.layer} (of 0-{plan.decoder_layers - 1}), mean of "
                   f"{plan.heads} heads", first="  ")
    _print(console, flow(title, width))
    source = [Text(f"source ({len(plan.source_ids)} tokens):", style="bold")]
    source += [Text(" " + show_token(t)) for t in plan.source_tokens]
    _print(console, flow(source, width))
    rows = [("top_k (sampling filter)" if name == "top_k" else name, _value(setting.value), setting.source)
            for name, setting in plan.settings.items()]
    name_width = max((len(name) for name, _, _ in rows), default=0)
    # a value longer than 12 takes the room it needs on its own row rather than widening the column for all
    value_width = max((len(value) for _, value, _ in rows if len(value) <= 12), default=0)
    column = 2 + name_width + 2 + value_width + 2
    for name, value, source_text in rows:
        start = [Text(f"  {name:<{name_width}}  ", style="bold") + Text(f"{value:<{value_width}}")]
        if start[0].cell_len > width:  # a long value (task_specific_params) flows after the name, word by word
            start = [Text(f"  {name}", style="bold")] + words(value, first="  ")
        longest = max(len(word) for word in source_text.split(" "))
        _print(console, flow(start + words(source_text, "dim", first="  "), width,
                             indent=column if width - column >= max(longest, 40) else 6))
    if plan.processors:
        _print(console, flow(words("  logits processors:", "dim", first="") +
                             words(", ".join(plan.processors), "dim"), width))
    console.print()


def _value(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):  # what --task-params would set
        return ", ".join(f"{key}={_value(v)}" for key, v in value.items())
    return str(value)


# ----------------------------------------------------------------------------- one step


def render_step(step: Step, console: Console, plan: DecodePlan, all_layers: bool = False) -> None:
    width = _width(console)
    tokens, ids = tail(step.input_tokens, step.input_ids, _INPUT_SHOWN)
    head = [Text(f"step {step.step}", style="bold"), Text(f"  decoder input ({len(step.input_ids)}):")]
    head += [Text(" " + token, style="cyan") for token in tokens.split(" ")]
    head += words(f"ids {ids}", "dim", first="   ")
    _print(console, flow(head, width))
    _print(console, _candidates(step, plan, width))
    _print(console, _looked_at(step, plan, all_layers, width))
    console.print()


# the mark of the chosen row and the width of the bars (0: no bar column), tried in turn until the table fits
_DECORATIONS = (("rule", 10), ("name", 10), ("name", 5), ("name", 0), ("arrow", 0), (None, 0))


def _candidates(step: Step, plan: DecodePlan, width: int) -> list[Text]:
    beam = plan.strategy.is_beam
    # the score column says what the processors did; without any it would repeat the logit
    show_score = beam or any(c.score != c.logit for c in step.top_k + (step.chosen,))
    rows = list(enumerate(step.top_k, 1))
    if step.chosen_rank is None:
        rows.append((None, step.chosen))
    numbers = []
    for rank, candidate in rows:
        chosen = candidate.token_id == step.token_id
        cells = [f"{'▶ ' if chosen else '  '}{rank if rank is not None else '…'}", str(candidate.token_id),
                 show_token(candidate.token), fmt(candidate.logit)]
        cells += [fmt(candidate.score)] if show_score else []
        numbers.append(cells + [probability(candidate.probability)])
    columns = [Column("    #", right=True, key=True), Column("id", right=True), Column("token"),
               Column("logit", right=True)]
    columns += [Column("log-prob" if beam else "score", right=True)] if show_score else []
    columns += [Column("prob", right=True)]
    styles = ["bold" if candidate.token_id == step.token_id else None for _, candidate in rows]
    for mark, bar_width in _DECORATIONS:
        decorated = [cells + ([bar(candidate.probability, bar_width)] if bar_width else []) +
                     ([_mark(step, rank, candidate, mark)] if mark else [])
                     for cells, (rank, candidate) in zip(numbers, rows)]
        shown = columns + [Column()] * (len(decorated[0]) - len(columns))
        if grid_width(shown, decorated) <= width:
            break
    lines = grid(shown, decorated, width, row_styles=styles)
    if mark is None and step.chosen_rank is None:
        lines += flow(words(f"    ▶ {step.rule}: outside the top {len(step.top_k)}", "bold", first=""), width)
    return lines


def _mark(step: Step, rank: int | None, candidate, kind: str) -> str:
    if candidate.token_id != step.token_id:
        return ""
    mark = {"rule": f"◀ {_RULE.get(step.rule, step.rule)}", "name": f"◀ {step.rule}", "arrow": "◀"}[kind]
    return mark + (f" (outside the top {len(step.top_k)})" if rank is None else "")


def _looked_at(step: Step, plan: DecodePlan, all_layers: bool, width: int) -> list[Text]:
    order = sorted(range(len(step.cross_attention)), key=lambda i: -step.cross_attention[i])[:3]
    pieces = [Text(f"      looked at (layer {plan.layer}):", style="dim")]
    pieces += [Text((" · " if n else " ") + f"{source_name(plan.source_tokens, i)} {step.cross_attention[i]:.2f}",
                    style="magenta") for n, i in enumerate(order)]
    lines = flow(pieces, width, indent=8)
    if all_layers:
        pieces = [Text("      strongest per layer:", style="dim")]
        pieces += [Text((" · " if n else " ") + f"L{f.layer} {source_name(plan.source_tokens, f.source_index)} "
                        f"{f.weight:.2f}") for n, f in enumerate(step.layers)]
        lines += flow(pieces, width, indent=8)
    return lines


# ----------------------------------------------------------------------------- one beam-search step


def render_beam_step(step: BeamStep, console: Console) -> None:
    width = _width(console)
    console.print(Text(f"step {step.step}", style="bold") + Text(f"  {len(step.beams)} running beam(s)"))
    columns = [Column("  beam", right=True, key=True), Column("log-prob", right=True),
               Column("decoder input", style="cyan"), Column("best next tokens (log-prob)")]
    rows = []
    for row in step.beams:
        tokens, _ = tail(row.input_tokens, row.input_ids, _BEAM_INPUT_SHOWN)
        best = " · ".join(f"{show_token(c.token)} {fmt(c.score)}" for c in row.top_k[:3])
        rows.append([str(row.beam), fmt(row.score), tokens, best])
    lines = grid(columns, rows, width)
    glyphs = glyphs_of(console)
    if any(cell_len(glyphs(line.plain)) > width for line in lines):  # a cell wider than the line: wrap its words
        lines = table([replace(column, wrap=not column.right) for column in columns],
                      [[shown(cell, console) for cell in row] for row in rows], width)
    _print(console, lines)
    if step.next_beams:
        kept = [Text("    kept:", style="dim")]
        kept += [Text(("   " if n else " ") + f"{c.beam} ← beam {c.parent} + {show_token(c.token)} ({fmt(c.score)})")
                 for n, c in enumerate(step.next_beams)]
    else:  # the search ends with this step: no running beam goes on, the finished hypotheses are the result
        kept = words("    kept: none, the search ends here", "dim", first="")
    lines = flow(kept, width, indent=6)
    if any(cell_len(glyphs(line.plain)) > width for line in lines):  # `←` is `<-` on an ASCII terminal
        lines = flow([shown(piece, console) for piece in kept], width, indent=6)
    _print(console, lines)
    for hypothesis in step.finished:
        line = [Text("    finished:", style="dim")] + words(repr(hypothesis.text), "green")
        line += [Text(f"  from beam {hypothesis.parent},", style="dim"),
                 Text(f" score {fmt(hypothesis.score, 3)}", style="dim")]
        lines = flow(line, width, indent=6)
        if lines[-1].cell_len + len(_PENALTY_NOTE) <= width:
            lines[-1].append(_PENALTY_NOTE, style="dim")
        _print(console, lines)
    console.print()


# ----------------------------------------------------------------------------- the end


def render_summary(run: DecodeRun, console: Console) -> None:
    width = _width(console)
    console.print()
    _print(console, flow([Text("output ", style="bold")] + words(run.output_text or "(empty)", "bold green"),
                         width, indent=8))
    ids = [Text("ids    ", style="bold")] + [Text(f" {i}") for i in run.output_ids]
    end = f"stopped: {run.stop_reason}" + ("" if run.sequence_score is None else ";")
    ids += words(end, "dim", first="   ")
    if run.sequence_score is not None:
        ids.append(Text(f" beam score {fmt(run.sequence_score, 4)}", style="dim"))
    _print(console, flow(ids, width, indent=8))
    if run.strategy.is_beam and run.steps:
        console.print(Text("how the output was built (the beam each token extended):", style="bold"))
        columns = [Column("  step", right=True, key=True), Column("from beam", right=True), Column("token"),
                   Column("log-prob", right=True), Column("prob", right=True), Column("looked at")]
        rows = []
        for step in run.steps:
            focus = step.layers[run.layer]
            rows.append([str(step.step), str(step.beam), show_token(step.token), fmt(step.chosen.score),
                         probability(step.chosen.probability),
                         f"{source_name(run.source_tokens, focus.source_index)} {focus.weight:.2f}"])
        _print(console, grid(columns, rows, width))
    for note in run.notes:
        _print(console, flow(words(f"note: {note}", "yellow", first=""), width, indent=6))
    console.print()
    title = words(f"cross-attention · decoder layer {run.layer} · mean of {run.heads} heads · rows: generated, "
                  "columns: source", "bold", first="")
    _print(console, flow(title, width))
    _print(console, heatmap_lines(run, width))


def heatmap_lines(run: DecodeRun, width: int = 100) -> list[Text]:
    """The generated tokens × source tokens map as lines of text, split into blocks of columns when too wide."""
    return shade_lines([step.cross_attention for step in run.steps], [show_token(step.token) for step in run.steps],
                       [show_token(t) for t in run.source_tokens], width)


def render_branch(run: DecodeRun, console: Console) -> None:
    """--force: the original and the branch side by side, from the forced step on."""
    forced = run.forced
    if forced is None:
        return
    width = _width(console)
    console.print()
    _print(console, flow(words(f"branch at step {forced.step}: '{show_token(forced.token)}' (id {forced.token_id}) "
                               f"forced where the model chose '{show_token(forced.original_token)}' "
                               f"(id {forced.original_token_id}); both go on with the same settings", "bold",
                               first=""), width))
    original = forced.original_tokens[1:]  # the token chosen at each step
    branch = [step.token for step in run.steps]
    rows = []
    for index in range(forced.step, max(len(original), len(branch))):
        left = show_token(original[index]) if index < len(original) else ""
        right = show_token(branch[index]) if index < len(branch) else ""
        mark = "◀ forced" if index == forced.step else ("" if left == right else "differs")
        rows.append([str(index), left, right, mark])
    columns = [Column("step", right=True), Column("original"), Column("branch"), Column("")]
    _print(console, grid(columns, rows, width, indent=2))
    _print(console, flow(words(f"original: {run.original_text!r}", first=""), width))
    _print(console, flow(words(f"branch:   {run.output_text!r}", first=""), width))


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
    render_branch(run, console)
    render_self_attention(run, console)
    render_occlusion(run, console)
