"""Render a Placement: which modules go to which device under --max-memory."""

from __future__ import annotations

from rich.console import Console

from t5peek.render.format import Column, human_bytes, print_lines
from t5peek.render.table import glyphs_of, paragraph, table


def render_placement(placement, console: Console) -> None:
    if placement is None:
        return
    columns = [Column("device", key=True), Column("limit", right=True), Column("weights", right=True),
               Column("modules", wrap=True)]
    rows, shown = [], glyphs_of(console)
    for share in placement.shares:
        limit = placement.max_memory.get(share.device)
        shown_limit = "unbounded" if limit is None or limit >= 2**60 else human_bytes(limit)
        modules = ", ".join(share.modules[:6]) + (f" … (+{len(share.modules) - 6})" if len(share.modules) > 6
                                                  else "")
        rows.append([_device_name(share.device), shown_limit, human_bytes(share.bytes), shown(modules)])
    lines = table(columns, rows, console.width, title="split over --max-memory (accelerate's plan; nothing loaded)")
    on_disk = [share for share in placement.shares if share.device == "disk"]
    if on_disk:
        lines += paragraph(f"offloaded to disk: {_count(on_disk[0].modules)} ({human_bytes(on_disk[0].bytes)}). "
                           "Offloaded weights stay in an offload folder and are read in each time their module "
                           "runs, which is slow.", console.width, "yellow")
    print_lines(console, lines)


def _count(modules: tuple[str, ...]) -> str:
    if modules == ("(whole model)",):
        return "the whole model"
    return f"{len(modules)} module" + ("s" if len(modules) != 1 else "")


def _device_name(device: str) -> str:
    return f"cuda:{device}" if device.isdigit() else device
