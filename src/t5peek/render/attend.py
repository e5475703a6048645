"""Render AttendReport: one attention head at one query, stage by stage, each stage explained in one line.

    Q asks · K answers · the scores · softmax · V is what gets passed on · the output projection · the check

Vectors show their first values and their norm (`full=True`: every value); each number is printed whole and what
does not fit moves to the next line. The per-key table keeps every key; its bar and columns give way at narrow
widths. Tokens are model text: they are drawn as Text, never read as markup.
"""

from __future__ import annotations

import math

from rich.console import Console
from rich.text import Text

from t5peek.attend import AttendReport, AttentionKind
from t5peek.render.table import fit_text
from t5peek.render.format import Column, bar, flow, grid, grid_width, probability, show_token, words

SHOWN_VALUES = 8  # values of a vector shown without --full
_BAR_WIDTHS = (10, 5, 0)


def _width(console: Console) -> int:
    return console.width or 100


def _print(console: Console, lines: list[Text]) -> None:
    for line in lines:
        console.print(line, soft_wrap=True)  # laid out already: no wrapping, no cropping


def number(value: float | None, digits: int = 3) -> str:
    if value is None or math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def _dot(console: Console) -> str:
    """The dot product's name: the output layer would turn '·' into '-' on a terminal that is not UTF-8."""
    return "q·k" if (console.encoding or "").lower().startswith("utf") else "q.k"


def _tiny(value: float) -> str:
    return f"{value:.1e}"


def _say(console: Console, text: str, width: int, style: str | None = "dim") -> None:
    """A sentence flowed at `width`; a word wider than the line (a module path) breaks after its dots."""
    _print(console, [part for line in flow(words(text, style, first="  "), width)
                     for part in (fit_text(line, width) if line.cell_len > width else [line])])


def _stage(console: Console, title: str, text: str, width: int) -> None:
    _print(console, flow([Text(title, style="bold")] + words(text), width, indent=2))


def _vector(console: Console, label: str, values: tuple[float, ...], width: int, full: bool,
            extra: str = "") -> None:
    norm = math.sqrt(sum(v * v for v in values))
    shown = values if full else values[:SHOWN_VALUES]
    pieces = [Text(f"  {label}", style="bold")] + words(f"({len(values)} values, norm {number(norm)}{extra}):")
    pieces += [Text(" " + number(v)) for v in shown]
    if len(shown) < len(values):
        pieces += words(f"and {len(values) - len(shown)} more (--full shows all)", "dim")
    _print(console, flow(pieces, width, indent=6))


# ----------------------------------------------------------------------------- the header


def _header(report: AttendReport, console: Console, width: int) -> None:
    stack = report.kind.stack
    title = [Text(report.model, style="bold"), Text("  " + str(report.kind), style="bold cyan")]
    title += words(f"·  {stack} layer {report.layer} (of 0-{report.layers - 1})  ·  head {report.head} (of "
                   f"0-{report.heads - 1})", first="  ")
    _print(console, flow(title, width))
    _say(console, f"module {report.module}  ·  d_model {report.d_model}, {report.heads} heads of d_kv "
                  f"{report.d_kv}", width)
    source = [Text(f"source ({len(report.source_ids)} tokens):", style="bold")]
    source += [Text(" " + show_token(t)) for t in report.source_tokens]
    _print(console, flow(source, width))
    if report.kind is AttentionKind.ENCODER_SELF:
        query = [Text("query:", style="bold")] + words(f"source position {report.query_position},")
        query += [Text(" " + show_token(report.query_token), style="cyan")]
    else:
        query = [Text(f"step {report.step}:", style="bold")] + words("the decoder reads")
        query += [Text(" " + show_token(report.query_token), style="cyan")]
        query += words(f"at position {report.query_position} and picks")
        query += [Text(" " + show_token(report.next_token or ""), style="green")]
        query += words("(greedy) next; decoder input:")
        query += [Text(" " + show_token(t), style="cyan") for t in report.decoder_tokens]
    _print(console, flow(query, width))
    console.print()


# ----------------------------------------------------------------------------- the per-key table


def _table(report: AttendReport, width: int, dot: str) -> list[Text]:
    relative = report.buckets is not None
    scaled = report.scaling != 1.0
    masked = any(row.masked for row in report.keys)
    columns = [Column("   j", right=True, key=True), Column("token")]
    columns += [Column("rel", right=True), Column("bucket", right=True)] if relative else []
    columns += [Column(dot, right=True)]
    columns += [Column(f"×{number(report.scaling, 4)}", right=True)] if scaled else []
    columns += [Column("bias", right=True)] if relative else []
    columns += [Column("mask", right=True)] if masked else []
    columns += [Column("score", right=True), Column("weight", right=True)]
    numbers = []
    for row in report.keys:
        cells = [str(row.position), show_token(row.token)]
        cells += [f"{row.relative_position:+d}" if row.relative_position else "0", str(row.bucket)] if relative else []
        cells += [number(row.dot)]
        cells += [number(row.scaled)] if scaled else []
        cells += [number(row.bias)] if relative else []
        cells += ["masked" if row.masked else "0"] if masked else []
        cells += ["-inf" if row.masked else number(row.score), probability(row.weight)]
        numbers.append(cells)
    strongest = max(range(len(report.keys)), key=lambda j: report.keys[j].weight)
    styles = ["bold" if j == strongest else None for j in range(len(report.keys))]
    for bar_width in _BAR_WIDTHS:
        rows = [cells + ([_bar(row.weight, bar_width)] if bar_width else [])
                for cells, row in zip(numbers, report.keys)]
        shown = columns + ([Column()] if bar_width else [])
        if grid_width(shown, rows, indent=2) <= width:
            break
    return grid(shown, rows, width, indent=2, row_styles=styles)


def _bar(weight: float, width: int) -> str:
    """The weight as a bar; none where it would be less than half of its smallest piece."""
    return bar(weight, width) if weight * width * 8 >= 0.5 else ""


def _projected(report: AttendReport, name: str) -> str:
    """`q = W_q x`, `k = W_k h` (T5: no biases), or with `+ b_k` (BART and the others). Keys and values of
    cross-attention are made from h, the encoder's output; everything else from x, what entered the module."""
    source = "h" if report.kind is AttentionKind.CROSS and name != "q" else "x"
    return f"{name} = W_{name} {source}" + ("" if report.scaling == 1.0 else f" + b_{name}")


def _key_explanation(report: AttendReport, dot: str) -> str:
    if report.kind is AttentionKind.CROSS:
        return (f"Each source token offers a key {_projected(report, 'k')} ({report.d_kv} values), where h is the "
                "encoder's final output at that token: every decoder layer and step reads the same h, so these "
                f"keys (and the values) are computed once and cached; {dot} says how well a key answers the query.")
    keys = "Each decoder position so far" if report.kind is AttentionKind.DECODER_SELF else "Each source token"
    return (f"{keys} offers a key {_projected(report, 'k')} ({report.d_kv} values); {dot} says how well it "
            "answers the query.")


def _score_explanation(report: AttendReport, dot: str) -> str:
    if report.buckets is not None:
        direction = ("that tell left from right" if report.bidirectional else "that only look back, as a decoder "
                     "cannot see ahead")
        return (f"score = {dot} (T5 does not divide by sqrt(d_kv)) + the learned bias of the bucket of the "
                f"relative position, key - query ({report.buckets} buckets {direction}; distances past "
                f"{report.max_distance} share the last)")
    if report.scaling != 1.0:
        return (f"score = {dot} × 1/sqrt({report.d_kv}) = {dot} × {number(report.scaling, 4)}, so that scores do "
                f"not grow with d_kv; no position bias: {report.position_kind} positions were added to the "
                "embeddings")
    return f"score = {dot}: T5 does not divide by sqrt(d_kv), and its cross-attention adds no position bias"


# ----------------------------------------------------------------------------- the whole report


def render_attend(report: AttendReport, console: Console, full: bool = False) -> None:
    width, dot = _width(console), _dot(console)
    _header(report, console, width)
    t5 = report.scaling == 1.0
    _stage(console, "Q asks.", f"The query of position {report.query_position}: {_projected(report, 'q')}, where x "
                               "is the hidden "
                               f"state that entered {report.module.rsplit('.', 1)[-1]}"
                               + (" (after its layer norm)." if t5 else "."), width)
    _vector(console, "q", report.query, width, full)
    _stage(console, "K answers.", _key_explanation(report, dot), width)
    _say(console, _score_explanation(report, dot) + ".", width)
    if not any(row.masked for row in report.keys):
        _say(console, "mask: nothing is hidden from this query (every key adds 0).", width)
    _stage(console, "Softmax", "turns the scores into weights that add up to 100%: exp(score) / sum of exp(score).",
           width)
    _print(console, _table(report, width, dot))
    if full:
        _keys_and_values(report, console, width)
    _stage(console, "V is what gets passed on.", f"Each key's position also offers a value "
                                                 f"{_projected(report, 'v')}; the head's "
                                                 f"output is the sum of weight × v ({report.d_kv} values).", width)
    _vector(console, "head output", report.head_output, width, full)
    start, stop = report.output_columns
    share = report.contribution_norm / report.output_norm if report.output_norm else float("nan")
    _stage(console, "The output projection", f"W_o[:, {start}:{stop}] ({report.d_model}×{report.d_kv}, norm "
                                             f"{number(report.projection_norm)}) is this head's slice: it maps the "
                                             f"head output back to d_model; the heads' parts add up to the "
                                             f"attention output" + ("." if t5 else ", with the projection's bias."),
           width)
    _vector(console, "contribution", report.contribution, width, full,
            f"; the whole attention output's is {number(report.output_norm)}, ratio {number(share, 2)}")
    _print(console, flow(words(_check(report.check), "dim", first=""), width, indent=2))
    for note in report.notes:
        _print(console, flow(words("note: " + note, "dim", first=""), width, indent=2))


def _check(check) -> str:
    differences = (check.weights_max_abs_diff, check.head_output_max_abs_diff)
    if not all(math.isfinite(d) for d in differences):
        return "check: not possible: the numbers are not finite (see the note), so they cannot be compared"
    return (f"check: recomputed = the module's own in this run: weights differ by at most {_tiny(differences[0])}, "
            f"the head output by at most {_tiny(differences[1])}")


def _keys_and_values(report: AttendReport, console: Console, width: int) -> None:
    _print(console, flow(words("every key and value vector:", "bold", first="  "), width))
    for row in report.keys:
        for name, values in (("k", row.key), ("v", row.value)):
            pieces = [Text(f"  {name}{row.position} ({show_token(row.token)}):", style="bold")]
            pieces += [Text(" " + number(v)) for v in values]
            _print(console, flow(pieces, width, indent=6))
