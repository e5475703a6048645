"""Render a Placement: which modules go to which device under --max-memory."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from t5peek.render.format import human_bytes


def render_placement(placement, console: Console) -> None:
    if placement is None:
        return
    table = Table(title="split over --max-memory (accelerate's plan; nothing loaded)", title_justify="left")
    table.add_column("device")
    table.add_column("limit", justify="right")
    table.add_column("weights", justify="right")
    table.add_column("modules", overflow="fold")
    for share in placement.shares:
        limit = placement.max_memory.get(share.device)
        shown_limit = "unbounded" if limit is None or limit >= 2**60 else human_bytes(limit)
        modules = ", ".join(share.modules[:6]) + (f" … (+{len(share.modules) - 6})" if len(share.modules) > 6
                                                  else "")
        table.add_row(_device_name(share.device), shown_limit, human_bytes(share.bytes), modules)
    console.print(table)
    on_disk = [share for share in placement.shares if share.device == "disk"]
    if on_disk:
        console.print(Text(f"offloaded to disk: {_count(on_disk[0].modules)} ({human_bytes(on_disk[0].bytes)}). "
                           "Offloaded weights stay in an offload folder and are read in each time their module "
                           "runs, which is slow.", style="yellow"))


def _count(modules: tuple[str, ...]) -> str:
    if modules == ("(whole model)",):
        return "the whole model"
    return f"{len(modules)} module" + ("s" if len(modules) != 1 else "")


def _device_name(device: str) -> str:
    return f"cuda:{device}" if device.isdigit() else device
