"""Records that display themselves in Jupyter: text/plain as the CLI draws them, text/html as the view's
interactive page (`--html FILE`), inline in a sandboxed frame, with the CLI's drawing folded under it (alone for a
record no page draws).

The records stay plain dataclasses: `register(ipython)` adds IPython display formatters for their types
(text/plain and text/html), the mechanism IPython offers for classes that do not render themselves.
"""

from __future__ import annotations

import io
from typing import Callable

from t5peek.render.format import SafeConsole
from t5peek.render.registry import RENDERERS

WIDTH = 110


def as_text(record, render: Callable) -> str:
    console = SafeConsole(file=io.StringIO(), width=WIDTH, color_system=None, highlight=False, soft_wrap=False,
                      force_jupyter=False)
    render(record, console)
    return console.file.getvalue()


def as_html(record, render: Callable) -> str:
    from t5peek.render.pages import inline

    page = inline(record)
    terminal = as_terminal_html(record, render)
    if page is None:
        return terminal
    return f"{page}<details><summary>as the terminal draws it</summary>{terminal}</details>"


def as_terminal_html(record, render: Callable) -> str:
    console = SafeConsole(file=io.StringIO(), width=WIDTH, record=True, color_system="truecolor", highlight=False,
                      force_jupyter=False)
    render(record, console)
    return console.export_html(inline_styles=True, code_format='<pre style="font-family: Menlo, Consolas, '
                               'monospace; font-size: 12px; line-height: 1.25">{code}</pre>')


def register(ipython) -> None:
    """Make every t5peek record display as the CLI draws it, in this IPython session."""
    formatters = ipython.display_formatter.formatters
    for record_type, render in RENDERERS.items():
        formatters["text/html"].for_type(record_type, lambda record, render=render: as_html(record, render))
        formatters["text/plain"].for_type(
            record_type, lambda record, printer, cycle, render=render: printer.text(as_text(record, render)))


def register_if_in_ipython() -> None:
    import sys

    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    ipython = get_ipython()
    if ipython is not None and getattr(ipython, "display_formatter", None) is not None:
        register(ipython)
