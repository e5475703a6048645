"""Render TraceReport: the tokens, then one table per phase (encoder, decoder steps or the teacher-forced pass),
each module by its own name, indented under the one that called it, then the decoder summary (steps, or decoder
inputs next to labels). Runs of identical blocks show once ("block.2–7 × 6 same as block.1"), and a later decoder
step lists only what differs from the step before; --json keeps every record."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from t5peek.render.arch import ROLE_STYLES
from t5peek.render.compare import render_comparison
from t5peek.render.format import Column, flow, print_lines, probability
from t5peek.render.table import rule, say, shown, table, whole
from t5peek.render.trace_rows import Note, Row, print_rows
from t5peek.trace import MODEL, STACK, VIEW_NOTES, CacheShape, Phase, Routing, TraceRecord, TraceReport, explanation_key
from t5peek.trace.explain import explanation

# Short names for the arguments and outputs that recur on every row; --json keeps the full names.
SHORT_NAMES = {
    "hidden_states": "hidden", "attention_mask": "mask", "mask": "mask", "position_bias": "pos_bias",
    "encoder_hidden_states": "enc_out", "encoder_attention_mask": "enc_mask", "key_value_states": "enc_out",
    "encoder_decoder_position_bias": "cross_bias", "cross_position_bias": "cross_bias",
    "past_key_values": "cache", "input_ids": "ids", "decoder_input_ids": "dec_ids",
    "encoder_outputs.last_hidden_state": "enc_out", "encoder_last_hidden_state": "enc_out",
    "last_hidden_state": "hidden", "position_ids": "pos_ids", "input": "", "output": "", "weights": "attn",
    "global_weights": "global attn", "router_logits": "logits", "probability": "p",
}
_UNNAMED_WHEN_ALONE = {"hidden_states", "input", "output", "input_ids", "hidden"}
_STYLES = dict(ROLE_STYLES, block="bold", stack="bold", model="bold", experts="yellow")
_MAX_TOKENS_SHOWN = 64
_MAX_ROWS_SHOWN = 48


def render_trace(report: TraceReport, console: Console) -> None:
    _header(report, console)
    if report.view == "teacher-forcing":
        _teacher_forcing_table(report, console)
    explained: set[str] = set()
    previous = first_step = None
    for phase in report.phases:
        first_step = first_step or (phase if phase.kind == "step" else None)
        _phase(report, phase, console, explained, previous, first_step)
        previous = phase if phase.kind == "step" and not report.stats else None  # --stats: every value, every step
    if any(record.routing is not None for phase in report.phases for record in phase.records):
        say(console, Text("mixture of experts: each router sends every token to one expert (top-1; 'a+b': to two, "
                           "top-2), whose feed-forward alone runs on it; '–' marks a token whose expert was full (over "
                           "capacity): it skips the feed-forward and keeps only the residual.", style="dim"))
    if report.view == "generation":
        _steps_table(report, console)
    if report.first_nonfinite is not None:
        bad = report.first_nonfinite
        say(console, Text(f"first non-finite output: {bad.module or '(model)'} ({bad.cls}), output "
                           f"'{bad.output}' has {bad.nan} NaN and {bad.inf} inf, in {bad.phase}",
                           style="bold red"))
    elif report.stats:
        say(console, Text("every output is finite (no NaN or inf).", style="green"))
    if report.comparison is not None:
        render_comparison(report.comparison, console)
    for note in report.notes:
        say(console, Text(f"note: {note}", style="yellow"))


# ---------------------------------------------------------------------------------------------- header


def _header(report: TraceReport, console: Console) -> None:
    view = "teacher forcing (training view)" if report.view == "teacher-forcing" else \
        "greedy generation (inference view)"
    depth = "block view" if report.depth is None else f"depth {report.depth}"
    say(console, Text.assemble((report.model, "bold"), (f"  {report.model_class}", "dim")))
    say(console, Text(f"{view} · {depth} · {report.dtype} on {report.device} · "
                       f"{report.attention_implementation} attention", style="dim"))
    print_lines(console, _token_line("prompt", report.source_tokens, report.source_ids, console))
    say(console, Text(VIEW_NOTES[report.view], style="dim italic"))


def _token_line(label: str, tokens, ids, console: Console) -> list[Text]:
    """The tokens and their ids, laid out already: a token and its id stay on one line."""
    pieces = [Text(f"{label} ({len(ids)} tokens):", style="bold")]
    count = min(len(ids), _MAX_TOKENS_SHOWN)
    for i in range(count):
        piece = Text("  " if i else " ")
        piece.append(tokens[i])
        piece.append(f" {ids[i]}", style="dim")
        pieces.append(piece)
    if len(ids) > count:
        pieces.append(Text(f"  … {len(ids) - count} more", style="dim"))
    return flow([shown(piece, console) for piece in pieces], console.width, indent=0)


# ---------------------------------------------------------------------------------------------- phases


def _phase(report: TraceReport, phase: Phase, console: Console, explained: set[str], previous: Phase | None,
           first_step: Phase | None) -> None:
    console.print()
    rule(console, Text(f"{phase.name} · {phase.time_ms:.1f} ms", style="bold"))
    detail = _phase_detail(report, phase)
    if detail:
        say(console, Text(detail, style="dim"))
    if not phase.records:
        say(console, Text("no module at this depth ran in this phase (the encoder runs outside the model's "
                           "own forward here); try a larger --depth.", style="dim"))
        return
    walk = _Walk(report, phase, explained)
    if first_step is not None and phase is not first_step:
        walk.notes = {index: (f"{', '.join(names)}: not computed, read from the cache (projected from the encoder "
                              f"output in {first_step.name})", after)
                      for index, (names, after) in phase.cached_projections(first_step).items()}
    if previous is not None:
        changed = phase.changed_since(previous)
        # under a cross-attention with a cache note, the projections that did run (q, o) make the contrast
        walk.full = changed | {r.index for r in phase.records if r.parent in walk.notes}
        walk.keep = phase.with_ancestors(walk.full)
        say(console, Text(f"only what differs from {previous.name} is listed: the other "
                           f"{len(phase.records) - len(changed)} of {len(phase.records)} modules ran with the same "
                           "shapes.", style="dim"))
    for root in walk.children.get(None, ()):
        walk.record(root)
    print_rows(walk.rows, console)


class _Walk:
    """The rows of one phase in execution order: runs of identical blocks collapsed; of a later decoder step, only
    the records that changed (`full`) and those that hold them (`keep`); the cross-attention cache notes."""

    def __init__(self, report: TraceReport, phase: Phase, explained: set[str]):
        self.report, self.phase, self.explained = report, phase, explained
        self.children = phase.children()
        self.notes: dict[int, tuple[str, set[str]]] = {}
        self.full: set[int] | None = None  # None: every record, in full
        self.keep: set[int] | None = None
        self.rows: list = []

    def record(self, record: TraceRecord) -> None:
        key = explanation_key(record.role, record.module) if self.report.explain else None
        if key and key not in self.explained:
            self.explained.add(key)
            line = Text("ℹ ", style="cyan")
            line.append(explanation(key, self.report.design), style="italic")
            self.rows.append(Note(line, 2 * record.level))
        cls, inputs, outputs, extra = _cells(self.report, self.phase, record)
        style = _STYLES.get(record.role, "")
        if self.full is not None and record.index not in self.full:
            self.rows.append(Row(record.level, record.leaf, style, cls, [Text("unchanged", style="dim")]))
        else:
            self.rows.append(Row(record.level, record.leaf, style, cls, inputs, outputs, extra,
                                  f"{record.time_ms:.2f}"))
        children = [c for c in self.children.get(record.index, ()) if self.keep is None or c.index in self.keep]
        note = self.notes.get(record.index)
        for run in self.phase.runs(children):
            if note and run[0].leaf in note[1]:
                self._note(record, note[0])
                note = None
            self.record(run[0])
            if len(run) > 1:
                self._same(run)
        if note:
            self._note(record, note[0])

    def _same(self, run: list[TraceRecord]) -> None:
        first, rest = run[0], run[1:]
        name = rest[0].leaf + (f"–{rest[-1].module.rpartition('.')[2]} × {len(rest)}" if len(rest) > 1 else "")
        self.rows.append(Row(first.level, name, "bold", Text(first.cls), [Text(f"same as {first.leaf}", style="dim")],
                              ms=f"{sum(r.time_ms for r in rest):.2f}"))

    def _note(self, record: TraceRecord, text: str) -> None:
        self.rows.append(Note(Text(text, style=_STYLES["cross-attention"]), 2 * record.level + 2))


def _routing_text(routing: Routing, tokens: tuple[str, ...]) -> Text:
    """Each token and the expert it went to, then how many tokens each expert got."""
    text = Text("\nexpert per token: ", style="yellow")
    named = len(tokens) == len(routing.experts)
    shown = min(len(routing.experts), _MAX_TOKENS_SHOWN)
    for i in range(shown):
        if i:
            text.append("  ")
        expert = routing.experts[i]
        text.append(f"{tokens[i] if named else f'#{i}'}→")
        text.append(str(expert) if expert >= 0 else "–", style="bold yellow" if expert >= 0 else "bold red")
        if routing.second and routing.second[i] >= 0:
            text.append(f"+{routing.second[i]}", style="yellow")
    if len(routing.experts) > shown:
        text.append(f"  … {len(routing.experts) - shown} more", style="dim")
    if len(routing.experts) > 1:
        counts = "  ".join(f"{expert}: {count}" for expert, count in enumerate(routing.counts()))
        dropped = sum(1 for e in routing.experts if e < 0)
        text.append(f"\ntokens per expert: {counts}" + (f"; {dropped} over capacity" if dropped else ""),
                    style="dim")
    return text


def _phase_detail(report: TraceReport, phase: Phase) -> str:
    if phase.kind == "step":
        step = next((s for s in report.steps if s.step == phase.step), None)
        if step is None:
            return ""
        cache = _arrow(step.self_cache_before, step.self_cache_after)
        if step.cross_kv_projections:
            cross = (f"computed from the encoder output ({step.cross_kv_projections} k/v projections) and "
                     "cached")
        else:
            cross = "reused from the cache (0 k/v projections)"
        return (f"feeds {step.input_token!r} (id {step.input_id}) at position {step.position}; self-attention "
                f"cache {cache} positions; cross-attention keys/values {cross}")
    if phase.kind == "encoder":
        return "its output is computed once and reused by every decoder step"
    if phase.kind == "forward":
        return "the decoder reads all target positions at once; the causal mask hides later ones"
    return ""


def _class_cell(record: TraceRecord, report: TraceReport) -> Text:
    text = Text("" if record.role == MODEL else record.cls)
    extra = [value for value, usual in ((record.dtype, report.dtype), (record.device, report.device))
             if value and value != usual]
    if extra:
        text.append(" · " + " ".join(extra), style="yellow")
    return text


def _cells(report: TraceReport, phase: Phase, record: TraceRecord) -> tuple[Text, list[Text], list[Text], Text | None]:
    """What a record's row shows: its class, its input and output items, and its stats and routing lines."""
    full_cache = record.role in (MODEL, STACK)
    inputs = _items(record.input_shapes, full_cache=full_cache)
    outputs = _items(record.output_shapes, record, full_cache=full_cache)
    extra = Text()
    for name, stat in (record.stats or {}).items():
        if not (name in ("output", "hidden_states", "last_hidden_state", "logits") or not stat.finite):
            continue
        label = SHORT_NAMES.get(name, name)
        extra.append(f"\n{label + ': ' if label else ''}μ {stat.mean:.2g}  σ {stat.std:.3g}  "
                     f"max|x| {stat.abs_max:.3g}", style="dim")
        if not stat.finite:
            extra.append(f"  NaN {stat.nan}  inf {stat.inf}", style="bold red")
        break
    if record.routing is not None:
        extra.append_text(_routing_text(record.routing, report.tokens_of(phase, record)))
    return _class_cell(record, report), inputs, outputs, extra if extra.plain else None


def _items(shapes: dict, record: TraceRecord | None = None, full_cache: bool = True) -> list[Text]:
    items = []
    alone = len(shapes) == 1
    for name, shape in shapes.items():
        label = SHORT_NAMES.get(name, name)
        if alone and name in _UNNAMED_WHEN_ALONE:
            label = ""
        if isinstance(shape, CacheShape):
            item = Text("cache", style="dim")
            if full_cache:
                item.append(" " + _cache_text(shape))
        elif record is not None and record.attention is not None and name == "weights":
            style = _STYLES.get("cross-attention" if record.attention.kind == "cross" else "self-attention", "")
            item = Text(f"{record.attention.kind}-attn weights {_dims(shape)}", style=style)
        else:
            item = Text(label + " " if label else "", style="dim")
            item.append(_dims(shape))
        items.append(item)
    return items or [Text("–", style="dim")]


def _dims(shape) -> str:
    return "×".join(str(d) for d in shape) if len(shape) else "scalar"


def _cache_text(cache: CacheShape) -> str:
    def part(name: str, layers) -> str:
        if not layers:
            return f"{name} empty"
        shapes = {layer.keys for layer in layers}
        if len(shapes) == 1:
            only = next(iter(shapes))
            return f"{name} {len(layers)}×k/v {_dims(only)}" if only else f"{name} {len(layers)}× empty"
        return f"{name} positions " + "/".join(str(layer.length) for layer in layers)

    parts = [part("self", cache.self_attention)]
    if cache.cls == "EncoderDecoderCache":
        parts.append(part("cross", cache.cross_attention))
    return "; ".join(parts)


def _arrow(before: tuple[int, ...], after: tuple[int, ...]) -> str:
    def short(lengths):
        if not lengths:
            return "0"
        return str(lengths[0]) if len(set(lengths)) == 1 else "/".join(map(str, lengths))

    return f"{short(before)} → {short(after)}"


# ---------------------------------------------------------------------------------------------- decoder summaries


def _summary(console: Console, title: str, columns: list[Column], rows: list[list]) -> None:
    """A summary table as rich lays it out where that keeps every cell whole; else wrapped whole (render.table)."""
    drawn = Table(title=title, title_justify="left", box=None, padding=(0, 2), header_style="bold")
    for column in columns:
        drawn.add_column(column.header, justify="right" if column.right else "left", style=column.style)
    for row in rows:
        drawn.add_row(*row)
    if whole(console, drawn):
        console.print(drawn)
        return
    print_lines(console, table(columns, [[shown(cell, console) for cell in row] for row in rows], console.width,
                               title=shown(title, console).plain))


def _teacher_forcing_table(report: TraceReport, console: Console) -> None:
    console.print()
    columns = [Column("position", right=True, key=True), Column("decoder input (id)", wrap=True),
               Column("label = what it must predict (id)", wrap=True), Column("model's top guess (id)", style="dim",
                                                                               wrap=True)]
    rows = []
    count = len(report.labels)
    for i in range(min(count, _MAX_ROWS_SHOWN)):
        guess = ""
        if i < len(report.predicted_ids):
            mark = "✓" if report.predicted_ids[i] == report.labels[i] else "✗"
            guess = f"{report.predicted_tokens[i]} ({report.predicted_ids[i]}) {mark}"
        rows.append([str(i), f"{report.decoder_input_tokens[i]} ({report.decoder_input_ids[i]})",
                     f"{report.label_tokens[i]} ({report.labels[i]})", guess])
    if count > _MAX_ROWS_SHOWN:
        rows.append(["…", f"{count - _MAX_ROWS_SHOWN} more", "", ""])
    _summary(console, "decoder input = labels shifted right by one (the model's own shift)", columns, rows)
    if report.loss is not None:
        say(console, Text(f"loss {report.loss:.4f}: cross-entropy of every position's logits against its "
                           "label, all positions from this one pass", style="dim"))


def _steps_table(report: TraceReport, console: Console) -> None:
    if not report.steps:
        return
    console.print()
    columns = [Column("step", right=True, key=True), Column("fed (id)", wrap=True), Column("pos", right=True),
               Column("self-attn cache", wrap=True), Column("cross-attn K/V", wrap=True),
               Column("next token (id)", wrap=True), Column("p", right=True)]
    rows = []
    for step in report.steps:
        projections = step.cross_kv_projections
        rows.append([str(step.step), f"{step.input_token} ({step.input_id})", str(step.position),
                     _arrow(step.self_cache_before, step.self_cache_after),
                     f"computed ({projections} proj.)" if projections else "reused (0 proj.)",
                     f"{step.next_token} ({step.next_id})" + (" end" if step.eos else ""),
                     probability(step.next_probability)])
    _summary(console, "greedy decoding, one token per step", columns, rows)
    layers = len(report.steps[-1].self_cache_after)
    cross = report.steps[-1].cross_cache[0] if report.steps[-1].cross_cache else 0
    say(console, Text(f"self-attention cache: one entry per decoder layer ({layers}), one position more per "
                       f"step; cross-attention cache: keys/values of all {cross} encoder positions, projected "
                       "once at step 0.", style="dim"))
    if report.generated_text:
        say(console, Text(f"generated so far: {report.generated_text!r}", style="dim"))
