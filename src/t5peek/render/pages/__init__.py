"""Each view's HTML page (`--html FILE`), the `report` page of every view, and the notebook's inline page: one
shell (shell.py), one small module per view with its markup and drawing script, the data its --json document."""

from __future__ import annotations

import importlib

from t5peek.jsonable import document
from t5peek.render.pages.shell import Section, View, page

VIEWS = ("info", "arch", "params", "trace", "generate", "lens", "attend", "budget")


def view(command: str) -> View:
    if command not in VIEWS:
        raise ValueError(f"no page draws {command!r}")
    return importlib.import_module(f"t5peek.render.pages.{command}").VIEW


def section(command: str, record) -> Section:
    """A view's section: its --json document (and for generate, every head's attention beside it)."""
    extra = None
    if command == "generate":
        from t5peek.render.pages.attention import packed_attention

        extra = {"attention": packed_attention(record)}
    return Section(view(command), document(command, record), extra)


def page_for(command: str, record) -> str:
    """The page of one view's record: what `t5peek COMMAND --html FILE` writes."""
    model = getattr(record, "model", None) or ""
    title = f"t5peek {command} · {model}" if model else f"t5peek {command}"
    return page(title, f"t5peek {command}", [section(command, record)], subtitle=_subtitle(record))


def _subtitle(record) -> str:
    return " · ".join(str(part) for part in (getattr(record, "model", None), getattr(record, "prompt", None)) if part)


def command_for(record) -> str | None:
    """The view whose page draws `record`, or None (a record with no page: patch, knockout)."""
    from t5peek.arch import ArchReport
    from t5peek.attend.records import AttendReport
    from t5peek.budget.records import BudgetReport
    from t5peek.generate import DecodeRun
    from t5peek.info import ModelInfo
    from t5peek.lens.records import LensRun
    from t5peek.params import ParamReport
    from t5peek.trace import TraceReport

    commands = {ModelInfo: "info", ArchReport: "arch", ParamReport: "params", TraceReport: "trace",
                DecodeRun: "generate", LensRun: "lens", AttendReport: "attend", BudgetReport: "budget"}
    return commands.get(type(record))


def inline(record, height: int = 640) -> str | None:
    """The record's page for a notebook cell: the whole page in a sandboxed <iframe srcdoc> (scripts run, in an
    origin of their own, with the page's Content-Security-Policy), or None when no page draws it."""
    import html

    command = command_for(record)
    if command is None:
        return None
    return (f'<iframe class="t5peek-page" sandbox="allow-scripts" style="width: 100%; height: {height}px; '
            f'border: 1px solid #e5e5ea" srcdoc="{html.escape(page_for(command, record), quote=True)}"></iframe>')
