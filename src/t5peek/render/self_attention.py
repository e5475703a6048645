"""`generate --self`: the encoder's self-attention (source x source) and the decoder's causal triangle (each step's
newest token over the decoder input so far), for one layer, mean of heads, drawn with the heatmap's shades.

A long source would take hundreds of lines: the maps show the first `SHOWN` tokens (rows and columns) and say so;
--json and --html carry the whole maps.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from t5peek.generate import DecodeRun
from t5peek.render.format import flow, show_token, words
from t5peek.render.heatmap import shade_lines

SHOWN = 48  # rows and columns of a self-attention map drawn in the terminal


def render_self_attention(run: DecodeRun, console: Console) -> None:
    """Both maps, when the run recorded them (--self)."""
    width = console.width or 100
    for line in encoder_lines(run, width) + decoder_lines(run, width):
        console.print(line, soft_wrap=True)


def encoder_lines(run: DecodeRun, width: int) -> list[Text]:
    encoder = run.encoder_self_attention
    if encoder is None:
        return []
    tokens = [show_token(t) for t in run.source_tokens]
    title = words(f"encoder self-attention · encoder layer {encoder.layer} (of 0-{encoder.encoder_layers - 1}) · "
                  f"mean of {encoder.heads} heads · rows: each source token, columns: the source tokens it attends "
                  "to", "bold", first="")
    lines = [Text()] + flow(title, width)
    lines += _cut_note(len(tokens), "source tokens", width)
    kept = tokens[:SHOWN]
    rows = [list(row[:SHOWN]) for row in encoder.weights[:SHOWN]]
    return lines + shade_lines(rows, kept, kept, width, columns_name="source tokens")


def decoder_lines(run: DecodeRun, width: int) -> list[Text]:
    steps = [step for step in run.steps if step.self_attention is not None]
    if not steps:
        return []
    # step t's newest decoder input token (the query) attends to the decoder input so far: t + 1 keys
    inputs = [show_token(t) for t in steps[-1].input_tokens]
    title = words(f"decoder self-attention · decoder layer {run.layer} · mean of {run.heads} heads · rows: each "
                  "step's newest decoder input token, columns: the decoder input so far (causal: step t sees t+1 "
                  "tokens)", "bold", first="")
    lines = [Text()] + flow(title, width)
    lines += _cut_note(len(inputs), "decoder input tokens", width)
    kept = inputs[:SHOWN]
    rows = [list(step.self_attention[:SHOWN]) for step in steps[:SHOWN]]
    return lines + shade_lines(rows, kept, kept, width, columns_name="decoder input tokens")


def _cut_note(count: int, what: str, width: int) -> list[Text]:
    if count <= SHOWN:
        return []
    return flow(words(f"showing the first {SHOWN} of {count} {what} (rows and columns); --json and --html carry "
                      "the whole map", "dim", first=""), width)
