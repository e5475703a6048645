"""One output sink: data on stdout (rich or JSON), messages and progress on stderr, one handler for errors."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import math
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

from rich.console import Console

from t5peek.errors import ExitCode, T5PeekError, redact


def to_jsonable(value):
    """Dataclasses, enums, paths and tuples as plain JSON values (non-finite floats become strings)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _width() -> int | None:
    columns = os.environ.get("COLUMNS")
    return int(columns) if columns and columns.isdigit() else None


class _PipeFriendlyConsole(Console):
    """A reader that stops early (`t5peek arch | head`) ends the command quietly, with success."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


class Output:
    """Where a command writes. In JSON mode stdout carries exactly one document."""

    def __init__(self, json_mode: bool = False):
        self.json_mode = json_mode
        self.console = _PipeFriendlyConsole(file=sys.stdout, width=_width(), highlight=False, soft_wrap=False)
        self.err = Console(file=sys.stderr, width=_width(), highlight=False, soft_wrap=True)

    def emit(self, record, render: Callable[[object, Console], None]) -> None:
        if self.json_mode:
            sys.stdout.write(json.dumps(to_jsonable(record), ensure_ascii=False, indent=2) + "\n")
            sys.stdout.flush()
        else:
            render(record, self.console)

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/] {redact(message)}", markup=True, highlight=False)

    def note(self, message: str) -> None:
        self.err.print(f"[dim]{redact(message)}[/]", markup=True, highlight=False)

    @contextlib.contextmanager
    def progress(self, message: str) -> Iterator[None]:
        """A spinner on stderr while something slow runs (only when stderr is a terminal)."""
        if self.err.is_terminal:
            with self.err.status(message, spinner="dots"):
                yield
        else:
            yield


def fail(output_err: Console | None, message: str, hint: str | None = None) -> None:
    err = output_err or Console(file=sys.stderr, highlight=False)
    line = f"[bold red]error:[/] {redact(message)}"
    err.print(line, markup=True, highlight=False, soft_wrap=True)
    if hint:
        err.print(f"  [dim]hint:[/] {redact(hint)}", markup=True, highlight=False, soft_wrap=True)


def cli_command(func: Callable) -> Callable:
    """Wire a Typer command to the one error handler: its `debug` option decides on tracebacks."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        run_command(bool(kwargs.get("debug")), lambda: func(*args, **kwargs))

    return wrapper


def run_command(debug: bool, body: Callable[[], None]) -> None:
    """Run a command body, turning every failure into one line on stderr and a documented exit code."""
    import typer

    try:
        body()
    except T5PeekError as exc:
        _show_traceback(debug)
        fail(None, exc.message, exc.hint)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        fail(None, "interrupted.")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except BrokenPipeError:
        _silence_stdout()
        raise typer.Exit(int(ExitCode.OK)) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except MemoryError:
        _show_traceback(debug)
        fail(None, "out of memory.", "Try a smaller model, --dtype bfloat16, or a shorter input.")
        raise typer.Exit(int(ExitCode.ERROR)) from None
    except Exception as exc:  # noqa: BLE001 - the one place that catches everything
        _show_traceback(debug)
        text = str(exc).splitlines()[0] if str(exc) else ""
        fail(None, f"unexpected {type(exc).__name__}: {text}".rstrip(": "),
             None if debug else "Run again with --debug to see the traceback.")
        raise typer.Exit(int(ExitCode.ERROR)) from None


def _show_traceback(debug: bool) -> None:
    if not debug:
        return
    import traceback

    sys.stderr.write(redact("".join(traceback.format_exc())))
    sys.stderr.flush()


def _silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so Python's exit-time flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
