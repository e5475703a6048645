"""Render ModelInfo as a two-column table."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from t5peek.info import ModelInfo
from t5peek.render.format import human_bytes, human_count, print_lines
from t5peek.render.placement import render_placement
from t5peek.render.table import fit_shown, say, shown, widest_part


_EDGE, _GAP, _RIGHT = 2, 4, 2  # where the fields and their values start, and the padding after a value
_UNDER = 4  # a value too wide for its column goes under its field, this far in


def render_info(record: ModelInfo, console: Console) -> None:
    table = _Fields()
    origin = record.source + (f" @ {record.commit[:12]}" if record.commit else "")
    table.add_row("class", f"{record.architecture or '?'}  ({record.model_type}, {record.family} family)")
    table.add_row("from", f"{origin}  {record.folder}")
    table.add_row("encoder", f"{record.encoder_layers} blocks")
    table.add_row("decoder", f"{record.decoder_layers} blocks" + (
        "  (differs from the encoder)" if record.decoder_layers != record.encoder_layers else ""))
    table.add_row("d_model", str(record.d_model))
    table.add_row("heads", str(record.heads))
    table.add_row("feed-forward", f"{record.d_ff}  ({record.activation})")
    table.add_row("vocabulary", f"{record.vocab_size:,}" if isinstance(record.vocab_size, int) else "?")
    positions = _positions(record)
    if positions:
        table.add_row("positions", positions)
    table.add_row("output head", f"{record.head}  ({record.head_note})")
    stored = record.stored_dtype or "?"
    if record.stored_bytes is not None:
        stored += f", {human_bytes(record.stored_bytes)} in {record.checkpoint_files} file(s)"
    table.add_row("stored", f"{record.checkpoint_format}: {stored}")
    params = f"{record.total:,} ({human_count(record.total)})" if record.total else "?"
    table.add_row("parameters", Text.assemble(f"{params}  ", (record.total_note, "dim")))
    for task, prefix in record.task_prefixes.items():
        table.add_row("task prefix", f"{prefix!r}  ({task})")
    say(console, Text(record.model, style="italic"))
    print_lines(console, table.lines(console))

    render_placement(record.placement, console)


def _positions(record: ModelInfo) -> str:
    """relative (32 buckets, max distance 128); learned, 1,024 positions; ..."""
    if record.position_kind == "relative":
        return f"relative ({record.relative_buckets} buckets, max distance {record.relative_max_distance})"
    if not record.max_positions:
        return record.position_kind or ""
    limit = f"{record.max_positions:,} positions"
    if record.decoder_max_positions and record.decoder_max_positions != record.max_positions:
        limit += f" in the encoder, {record.decoder_max_positions:,} in the decoder"
    return f"{record.position_kind}, {limit}" if record.position_kind else limit


class _Fields:
    """Fields and their values, as rich draws a two-column table (field names in bold, values broken between words
    beside them), but a value never cut: one whose longest word does not fit beside its field goes under it."""

    def __init__(self):
        self.rows: list[tuple[str, Text]] = []

    def add_row(self, field: str, value) -> None:
        self.rows.append((field, value if isinstance(value, Text) else Text(value)))

    def lines(self, console: Console) -> list[Text]:
        width = console.width
        key = max(len(field) for field, _ in self.rows)
        natural = max(value.cell_len for _, value in self.rows)
        room = min(natural, width - _EDGE - key - _GAP - _RIGHT)
        lines: list[Text] = []
        for field, value in self.rows:
            head = Text(" " * _EDGE + field, style="bold")
            if widest_part(shown(value, console)) <= room:
                beside = fit_shown(value, console, room)
                lead = " " * (_EDGE + key + _GAP)
                lines.append(head + Text(" " * (key - len(field) + _GAP)) + beside[0])
                lines += [Text(lead) + line for line in beside[1:]]
            else:
                lines.append(head)
                lines += [Text(" " * _UNDER) + line for line in fit_shown(value, console, width - _UNDER)]
        for line in lines:
            line.rstrip()
        return lines
