"""Render ModelInfo as a two-column table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from t5peek.info import ModelInfo
from t5peek.render.format import human_bytes, human_count
from t5peek.render.placement import render_placement


def render_info(record: ModelInfo, console: Console) -> None:
    table = Table(title=f"{record.model}", title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
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
    console.print(table)

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
