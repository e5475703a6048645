"""Vector charts for slides (`generate --svg`, `lens --svg`): standalone SVG 1.1 documents drawn from the record
the command renders, one rect per cell.

- `generate_svg(DecodeRun)`: the cross-attention map of the shown layer (mean of heads), generated tokens x source
  tokens, shaded as the terminal's heatmap is (to the strongest weight of the map), each row ending with the
  chosen token's probability.
- `lens_svg(LensRun)`: the depth x step grid of top-1 tokens, each cell shaded by the chosen token's probability
  at that depth, the chosen token marked ('*', bold, outlined) where it is on top, and where each one settles.

Numbers are written as the terminal writes them (`render.format.probability`, weights to two places), tokens as
`show_token` spells them; the group classes (cells, row-labels, column-labels, probabilities, legend) name the
parts for whoever reads the file.
"""

from __future__ import annotations

import math

from t5peek.generate import DecodeRun
from t5peek.kinds import Rule
from t5peek.lens import LensRun
from t5peek.render.format import probability, show_token
from t5peek.render.lens import CHOSEN_MARK, depth_name
from t5peek.render.svg_draw import FAINT, SANS, Drawing, ink_on, legend, shade, width_of

MARGIN = 16.0
CELL = 18.0  # a heatmap cell's side
LABEL = 11.0  # font size of token labels
LABEL_CELLS = 32  # a token label longer than this is cut with '…' (its cell's tooltip has it whole)
LINE_CELLS = 140  # the same for the lines of the heading
LENS_ROW = 32.0  # a lens cell's height: the top-1 token over the chosen token's probability
LENS_TOKEN_CELLS = 20
MARK = "#e6550d"  # the outline of a lens cell whose top-1 is the chosen token


def render_svg(run: DecodeRun | LensRun) -> str:
    """The chart of a run: `generate_svg` or `lens_svg`."""
    if isinstance(run, LensRun):
        return lens_svg(run)
    if isinstance(run, DecodeRun):
        return generate_svg(run)
    raise TypeError(f"no SVG chart draws a {type(run).__name__}")


def _heading(drawing: Drawing, title: str, lines: list[str]) -> float:
    """The title and lines of text under it; returns the y below them."""
    drawing.text(MARGIN, MARGIN + 14, title, size=16, font_family=SANS, font_weight="bold", limit=LINE_CELLS)
    y = MARGIN + 14
    for line in lines:
        y += 18
        drawing.text(MARGIN, y, line, size=12, font_family=SANS, fill=FAINT, limit=LINE_CELLS)
    return y + 12


def _column_labels(drawing: Drawing, labels: list[str], left: float, bottom: float, step: float) -> None:
    drawing.open("column-labels", font_size=_size(LABEL))
    for n, label in enumerate(labels):
        x = left + step * (n + 0.5) + LABEL * 0.35  # the middle of the column, a little past the baseline
        drawing.text(x, bottom - 4, label, size=LABEL, limit=LABEL_CELLS, rotate=True)
    drawing.close()


def _size(value: float) -> str:
    return f"{value:g}"


def generate_svg(run: DecodeRun) -> str:
    drawing = Drawing()
    title = f"t5peek generate · {run.model}" if run.model else "t5peek generate"
    top = _heading(drawing, title, [
        f"cross-attention · decoder layer {run.layer} (of 0-{run.decoder_layers - 1}) · mean of {run.heads} heads "
        "· rows: generated tokens, columns: source tokens",
        f"output: {run.output_text or '(empty)'}"])
    if not run.steps:
        drawing.text(MARGIN, top + 16, "(no steps)", font_family=SANS)
        return drawing.document(top + 16, title)
    tokens = [step.token for step in run.steps]
    numbers = [str(step.step) for step in run.steps]
    number_width = max(width_of(n, LABEL) for n in numbers)
    token_width = max(width_of(t, LABEL, LABEL_CELLS) for t in tokens)
    left = MARGIN + number_width + 8 + token_width + 6
    grid_top = top + max(width_of(t, LABEL, LABEL_CELLS) for t in run.source_tokens) + 10
    columns = len(run.source_tokens)
    _column_labels(drawing, list(run.source_tokens), left, grid_top, CELL)

    finite = [w for step in run.steps for w in step.cross_attention if math.isfinite(w)]
    strongest = max(max(finite) if finite else 0.0, 0.0) or 1.0
    drawing.open("cells", stroke="#ffffff", stroke_width=1)
    for row, step in enumerate(run.steps):
        for column, weight in enumerate(step.cross_attention):
            fraction = weight / strongest if math.isfinite(weight) else math.nan
            drawing.rect(left + column * CELL, grid_top + row * CELL, CELL, CELL, shade(fraction),
                         title=f"{show_token(step.token)} → {show_token(run.source_tokens[column])}: {weight:.2f}")
    drawing.close()

    baseline = [grid_top + row * CELL + CELL / 2 + LABEL * 0.35 for row in range(len(run.steps))]
    drawing.open("step-numbers", font_size=_size(LABEL), fill=FAINT)
    for number, y in zip(numbers, baseline):
        drawing.text(MARGIN + number_width, y, number, size=LABEL, anchor="end")
    drawing.close()
    drawing.open("row-labels", font_size=_size(LABEL))
    for token, y in zip(tokens, baseline):
        drawing.text(left - 6, y, token, size=LABEL, anchor="end", limit=LABEL_CELLS)
    drawing.close()
    right = left + columns * CELL + 8
    drawing.text(right, grid_top - 6, "prob", size=LABEL, font_weight="bold")
    drawing.open("probabilities", font_size=_size(LABEL))
    for step, y in zip(run.steps, baseline):
        mark = "  forced by --force" if step.rule is Rule.FORCED else ""
        drawing.text(right, y, probability(step.chosen.probability) + mark, size=LABEL)
    drawing.close()

    bottom = grid_top + len(run.steps) * CELL + 16
    ticks = [f"{strongest * n / 2:.2f}" if finite else "-" for n in range(3)]
    end = legend(drawing, MARGIN, bottom, ticks, "cross-attention weight (the darkest shade: the strongest weight of "
                 "the map)", with_nan=len(finite) < sum(len(step.cross_attention) for step in run.steps))
    drawing.text(MARGIN, end + 14, "prob: the chosen token's probability at that step, as generate shows it",
                 size=11, font_family=SANS, fill=FAINT)
    return drawing.document(end + 14, title)


def lens_svg(run: LensRun) -> str:
    drawing = Drawing()
    title = f"t5peek lens · {run.model}" if run.model else "t5peek lens"
    count = len(run.steps)
    view = (f"teacher forcing, {count} target token{'s' * (count != 1)}" if run.target is not None
            else f"greedy, {count} step{'s' * (count != 1)}")
    lines = [f"logit lens · {view} · {run.model_type}, {run.norm_placement}, {run.decoder_layers} decoder layers",
             f"top-1 token at each depth ({CHOSEN_MARK}, bold, outlined: the token chosen at that step)"]
    if run.encoder_layer is not None:
        lines.append(f"decoder reads: {run.encoder_read}")
    top = _heading(drawing, title, lines)
    if not run.steps:
        drawing.text(MARGIN, top + 16, "(no steps)", font_family=SANS)
        return drawing.document(top + 16, title)
    names = [depth_name(run, depth) for depth in range(len(run.depth_labels))]
    left = MARGIN + max(width_of(name, LABEL) for name in names + ["settles at"]) + 10
    widths = [_lens_column_width(step) for step in run.steps]
    starts = [left + sum(widths[:n]) for n in range(count)]
    grid_top = top + 34

    drawing.open("column-labels", font_size=_size(LABEL))
    for step, x, width in zip(run.steps, starts, widths):
        drawing.text(x + width / 2, grid_top - 22, f"step {step.step}", size=10, anchor="middle", fill=FAINT)
        drawing.text(x + width / 2, grid_top - 7, show_token(step.token), size=LABEL, anchor="middle",
                     font_weight="bold", limit=LENS_TOKEN_CELLS)
    drawing.close()
    drawing.open("row-labels", font_size=_size(LABEL))
    for depth, name in enumerate(names):
        drawing.text(left - 8, grid_top + depth * LENS_ROW + LENS_ROW / 2 + 4, name, size=LABEL, anchor="end")
    drawing.close()

    drawing.open("cells", stroke="#ffffff", stroke_width=1)
    for step, x, width in zip(run.steps, starts, widths):
        for depth, reading in enumerate(step.depths):
            top1 = reading.top_k[0]
            drawing.rect(x, grid_top + depth * LENS_ROW, width, LENS_ROW, shade(reading.probability),
                         title=f"{names[depth]}, step {step.step}: top-1 '{show_token(top1.token)}' "
                               f"{probability(top1.probability)}; '{show_token(step.token)}' rank {reading.rank}, "
                               f"{probability(reading.probability)}")
    drawing.close()
    drawing.open("chosen", fill="none", stroke=MARK, stroke_width=2)
    for step, x, width in zip(run.steps, starts, widths):
        for depth, reading in enumerate(step.depths):
            if reading.top_k[0].token_id == step.token_id:
                drawing.parts.append(f"<rect x=\"{x + 1.5:g}\" y=\"{grid_top + depth * LENS_ROW + 1.5:g}\" "
                                     f"width=\"{width - 3:g}\" height=\"{LENS_ROW - 3:g}\"/>")
    drawing.close()
    drawing.open("cell-labels", text_anchor="middle")
    for step, x, width in zip(run.steps, starts, widths):
        for depth, reading in enumerate(step.depths):
            top1 = reading.top_k[0]
            hit = top1.token_id == step.token_id
            y = grid_top + depth * LENS_ROW
            ink = ink_on(reading.probability)
            drawing.text(x + width / 2, y + 14, show_token(top1.token) + (CHOSEN_MARK if hit else ""), size=LABEL,
                         anchor="middle", limit=LENS_TOKEN_CELLS, fill=ink, font_weight="bold" if hit else None,
                         class_="top1")
            drawing.text(x + width / 2, y + 26, probability(reading.probability), size=9.5, anchor="middle",
                         fill=ink, class_="probability")
    drawing.close()

    settles_y = grid_top + len(names) * LENS_ROW + 16
    drawing.open("settles", font_size=_size(LABEL))
    drawing.text(left - 8, settles_y, "settles at", size=LABEL, anchor="end", font_weight="bold")
    for step, x, width in zip(run.steps, starts, widths):
        where = "never" if step.settled_depth is None else depth_name(run, step.settled_depth, short=True)
        drawing.text(x + width / 2, settles_y, where, size=10, anchor="middle", fill=FAINT)
    drawing.close()
    readings = [reading.probability for step in run.steps for reading in step.depths]
    end = legend(drawing, MARGIN, settles_y + 14, [probability(0.0), probability(0.5), probability(1.0)],
                 "shade: the chosen token's probability at that depth (the number under each top-1 token)",
                 with_nan=any(math.isnan(p) for p in readings),
                 extra=(f"top-1 is the chosen token ({CHOSEN_MARK})", {"fill": "none", "stroke": MARK,
                                                                        "stroke_width": 2}))
    return drawing.document(end, title)


def _lens_column_width(step) -> float:
    labels = [width_of(show_token(r.top_k[0].token) + CHOSEN_MARK, LABEL, LENS_TOKEN_CELLS) for r in step.depths]
    labels += [width_of(show_token(step.token), LABEL, LENS_TOKEN_CELLS), width_of(f"step {step.step}", 10),
               width_of("100.0%", 9.5), width_of("cross-attn", 10)]
    return max(labels) + 12
