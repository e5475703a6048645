"""Render TraceReport: the tokens, then one table per phase (encoder, decoder steps or the teacher-forced pass),
sublayers indented under their block, then the decoder summary (steps, or decoder inputs next to labels)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from t5peek import anatomy
from t5peek.render.arch import ROLE_STYLES
from t5peek.trace import (EXPLANATIONS, MODEL, STACK, VIEW_NOTES, CacheShape, DecodeStep, Phase, Routing, TraceRecord,
                          TraceReport, explanation_key)

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
    for phase in report.phases:
        _phase(report, phase, console, explained)
    if any(record.routing is not None for phase in report.phases for record in phase.records):
        console.print(Text("mixture of experts: each router sends every token to one expert (top-1; 'a+b': to two, "
                           "top-2), whose feed-forward alone runs on it; '–' marks a token whose expert was full (over "
                           "capacity): it skips the feed-forward and keeps only the residual.", style="dim"))
    if report.view == "generation":
        _steps_table(report, console)
    if report.first_nonfinite is not None:
        bad = report.first_nonfinite
        console.print(Text(f"first non-finite output: {bad.module or '(model)'} ({bad.cls}), output "
                           f"'{bad.output}' has {bad.nan} NaN and {bad.inf} inf, in {bad.phase}",
                           style="bold red"))
    elif report.stats:
        console.print(Text("every output is finite (no NaN or inf).", style="green"))
    for note in report.notes:
        console.print(Text(f"note: {note}", style="yellow"))


# ---------------------------------------------------------------------------------------------- header


def _header(report: TraceReport, console: Console) -> None:
    view = "teacher forcing (training view)" if report.view == "teacher-forcing" else \
        "greedy generation (inference view)"
    depth = "block view" if report.depth is None else f"depth {report.depth}"
    title = Text()
    title.append(report.model, style="bold")
    title.append(f"  {report.model_class}", style="dim")
    console.print(title)
    console.print(Text(f"{view} · {depth} · {report.dtype} on {report.device} · "
                       f"{report.attention_implementation} attention", style="dim"))
    console.print(_token_line("prompt", report.source_tokens, report.source_ids))
    console.print(Text(VIEW_NOTES[report.view], style="dim italic"))


def _token_line(label: str, tokens, ids) -> Text:
    text = Text()
    text.append(f"{label} ({len(ids)} tokens): ", style="bold")
    shown = min(len(ids), _MAX_TOKENS_SHOWN)
    for i in range(shown):
        if i:
            text.append("  ")
        text.append(tokens[i])
        text.append(f" {ids[i]}", style="dim")
    if len(ids) > shown:
        text.append(f"  … {len(ids) - shown} more", style="dim")
    return text


# ---------------------------------------------------------------------------------------------- phases


def _phase(report: TraceReport, phase: Phase, console: Console, explained: set[str]) -> None:
    console.print()
    console.rule(Text(f"{phase.name} · {phase.time_ms:.1f} ms", style="bold"), align="left", style="dim")
    detail = _phase_detail(report, phase)
    if detail:
        console.print(Text(detail, style="dim"))
    if not phase.records:
        console.print(Text("no module at this depth ran in this phase (the encoder runs outside the model's "
                           "own forward here); try a larger --depth.", style="dim"))
        return
    paths = {record.index: record.module for record in phase.records}
    modules = [_module_cell(record, paths) for record in phase.records]
    classes = [_class_cell(record, report) for record in phase.records]
    # Names as wide as they need, shapes get the rest (at least 32 columns), the time column is fixed.
    spare = max(console.width - 8 - 6 - 32, 24)
    module_width = max(len(cell) for cell in modules)
    class_width = max(len(cell) for cell in classes)
    if module_width + class_width > spare:
        module_width = max(12, spare * module_width // (module_width + class_width))
        class_width = spare - module_width
    shapes_width = console.width - 8 - 6 - module_width - class_width
    table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False, header_style="bold", expand=True)
    table.add_column("module", overflow="fold", width=max(module_width, 6))
    table.add_column("class", overflow="fold", style="dim", width=max(class_width, 5))
    table.add_column("inputs → outputs", overflow="fold", ratio=1)
    table.add_column("ms", justify="right", no_wrap=True, width=8)
    for record, module_cell, class_cell in zip(phase.records, modules, classes):
        key = explanation_key(record) if report.explain else None
        if key and key not in explained:
            explained.add(key)
            table.add_row(Text("  " * record.level + "ℹ " + key.split(":")[0], style="cyan"), "",
                          Text(EXPLANATIONS[key], style="italic"), "")
        shapes = _shapes_cell(record, shapes_width)
        if record.routing is not None:
            shapes.append_text(_routing_text(record.routing, _record_tokens(report, phase, record)))
        table.add_row(module_cell, class_cell, shapes, f"{record.time_ms:.2f}")
    console.print(table)


def _record_tokens(report: TraceReport, phase: Phase, record: TraceRecord) -> tuple[str, ...]:
    """The tokens a record's call ran on: the prompt in the encoder, the fed token(s) in the decoder."""
    if anatomy.stack_of(record.module) == "encoder":
        return report.source_tokens
    if phase.kind == "step":
        step = next((s for s in report.steps if s.step == phase.step), None)
        return (step.input_token,) if step is not None else ()
    if phase.kind == "forward":
        return report.decoder_input_tokens
    return ()


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


def _module_cell(record: TraceRecord, paths: dict[int, str]) -> Text:
    parent = paths.get(record.parent) if record.parent is not None else None
    name = record.module
    if parent and name.startswith(parent + "."):
        name = name[len(parent) + 1:]
    if not name:
        name = record.cls
    return Text("  " * record.level + name, style=_STYLES.get(record.role, ""))


def _class_cell(record: TraceRecord, report: TraceReport) -> Text:
    text = Text("" if record.role == MODEL else record.cls)
    extra = [value for value, usual in ((record.dtype, report.dtype), (record.device, report.device))
             if value and value != usual]
    if extra:
        text.append(" · " + " ".join(extra), style="yellow")
    return text


def _shapes_cell(record: TraceRecord, width: int) -> Text:
    full_cache = record.role in (MODEL, STACK)
    inputs = _shapes_text(record.input_shapes, full_cache=full_cache)
    outputs = _shapes_text(record.output_shapes, record, full_cache=full_cache)
    text = Text()
    text.append_text(inputs)
    text.append(" → " if len(inputs) + len(outputs) + 3 <= width else "\n→ ", style="dim")
    text.append_text(outputs)
    if record.stats:
        for name, stat in record.stats.items():
            if not (name in ("output", "hidden_states", "last_hidden_state", "logits") or not stat.finite):
                continue
            line = Text("\n")
            label = SHORT_NAMES.get(name, name)
            line.append(f"{label + ': ' if label else ''}μ {stat.mean:.2g}  σ {stat.std:.3g}  "
                        f"max|x| {stat.abs_max:.3g}", style="dim")
            if not stat.finite:
                line.append(f"  NaN {stat.nan}  inf {stat.inf}", style="bold red")
            text.append_text(line)
            break
    return text


def _shapes_text(shapes: dict, record: TraceRecord | None = None, full_cache: bool = True) -> Text:
    text = Text()
    alone = len(shapes) == 1
    for i, (name, shape) in enumerate(shapes.items()):
        if i:
            text.append(", ")
        label = SHORT_NAMES.get(name, name)
        if alone and name in _UNNAMED_WHEN_ALONE:
            label = ""
        if isinstance(shape, CacheShape):
            text.append("cache", style="dim")
            if full_cache:
                text.append(" " + _cache_text(shape))
            continue
        if record is not None and record.attention is not None and name == "weights":
            style = _STYLES.get("cross-attention" if record.attention.kind == "cross" else "self-attention", "")
            text.append(f"{record.attention.kind}-attn weights ", style=style)
            text.append(_dims(shape), style=style)
            continue
        if label:
            text.append(label + " ", style="dim")
        text.append(_dims(shape))
    if not shapes:
        text.append("–", style="dim")
    return text


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


def _teacher_forcing_table(report: TraceReport, console: Console) -> None:
    console.print()
    table = Table(title="decoder input = labels shifted right by one (the model's own shift)",
                  title_justify="left", box=None, padding=(0, 2), header_style="bold")
    table.add_column("position", justify="right")
    table.add_column("decoder input (id)")
    table.add_column("label = what it must predict (id)")
    table.add_column("model's top guess (id)", style="dim")
    count = len(report.labels)
    for i in range(min(count, _MAX_ROWS_SHOWN)):
        guess = ""
        if i < len(report.predicted_ids):
            mark = "✓" if report.predicted_ids[i] == report.labels[i] else "✗"
            guess = f"{report.predicted_tokens[i]} ({report.predicted_ids[i]}) {mark}"
        table.add_row(str(i), f"{report.decoder_input_tokens[i]} ({report.decoder_input_ids[i]})",
                      f"{report.label_tokens[i]} ({report.labels[i]})", guess)
    if count > _MAX_ROWS_SHOWN:
        table.add_row("…", f"{count - _MAX_ROWS_SHOWN} more", "", "")
    console.print(table)
    if report.loss is not None:
        console.print(Text(f"loss {report.loss:.4f}: cross-entropy of every position's logits against its "
                           "label, all positions from this one pass", style="dim"))


def _steps_table(report: TraceReport, console: Console) -> None:
    if not report.steps:
        return
    console.print()
    table = Table(title="greedy decoding, one token per step", title_justify="left", box=None, padding=(0, 2),
                  header_style="bold")
    table.add_column("step", justify="right")
    table.add_column("fed (id)")
    table.add_column("pos", justify="right")
    table.add_column("self-attn cache")
    table.add_column("cross-attn K/V")
    table.add_column("next token (id)")
    table.add_column("p", justify="right")
    for step in report.steps:
        table.add_row(str(step.step), f"{step.input_token} ({step.input_id})", str(step.position),
                      _arrow(step.self_cache_before, step.self_cache_after), _cross_cell(step),
                      f"{step.next_token} ({step.next_id})" + (" end" if step.eos else ""),
                      f"{step.next_probability:.3f}")
    console.print(table)
    layers = len(report.steps[-1].self_cache_after)
    cross = report.steps[-1].cross_cache[0] if report.steps[-1].cross_cache else 0
    console.print(Text(f"self-attention cache: one entry per decoder layer ({layers}), one position more per "
                       f"step; cross-attention cache: keys/values of all {cross} encoder positions, projected "
                       "once at step 0.", style="dim"))
    if report.generated_text:
        console.print(Text(f"generated so far: {report.generated_text!r}", style="dim"))


def _cross_cell(step: DecodeStep) -> str:
    if step.cross_kv_projections:
        return f"computed ({step.cross_kv_projections} proj.)"
    return "reused (0 proj.)"
