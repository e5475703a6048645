"""One output sink: data on stdout (rich or JSON), messages and progress on stderr, one handler for errors."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Callable, Iterator

from rich.console import Console

from t5peek.errors import ExitCode, T5PeekError, redact
from t5peek.jsonable import document, error_document


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

    def __init__(self, json_mode: bool = False, command: str = ""):
        self.json_mode = json_mode
        self.command = command
        self.console = _PipeFriendlyConsole(file=sys.stdout, width=_width(), highlight=False, soft_wrap=False)
        self.err = Console(file=sys.stderr, width=_width(), highlight=False, soft_wrap=True)

    def emit(self, record, render: Callable[[object, Console], None] | None) -> None:
        if self.json_mode:
            _write_json(document(self.command, record))
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


def _write_json(data: dict) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def cli_command(func: Callable) -> Callable:
    """Wire a Typer command `<name>_command` to the one error handler: its `debug` option decides on
    tracebacks, its `json` option on whether a failure is also written to stdout as a JSON error document."""
    import functools

    command = func.__name__.removesuffix("_command")

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        run_command(bool(kwargs.get("debug")), lambda: func(*args, **kwargs),
                    command=command if kwargs.get("json") else None)

    return wrapper


def run_command(debug: bool, body: Callable[[], None], command: str | None = None) -> None:
    """Run a command body, turning every failure into one line on stderr and a documented exit code (and,
    when `command` is given, a JSON error document on stdout)."""
    import typer

    def failed(kind: str, code: ExitCode, message: str, hint: str | None = None) -> typer.Exit:
        fail(None, message, hint)
        if command is not None:
            _write_json(error_document(command, kind, redact(message), redact(hint) if hint else None, code))
        return typer.Exit(int(code))

    try:
        body()
    except T5PeekError as exc:
        _show_traceback(debug)
        raise failed(exc.kind, exc.exit_code, exc.message, exc.hint) from None
    except KeyboardInterrupt:
        raise failed("interrupted", ExitCode.INTERRUPTED, "interrupted.") from None
    except BrokenPipeError:
        _silence_stdout()
        raise typer.Exit(int(ExitCode.OK)) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except MemoryError:
        _show_traceback(debug)
        raise failed("out_of_memory", ExitCode.ERROR, "out of memory.",
                     "Try a smaller model, --dtype bfloat16, or a shorter input.") from None
    except Exception as exc:  # noqa: BLE001 - the one place that catches everything
        _show_traceback(debug)
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise failed("unexpected", ExitCode.ERROR, f"unexpected {type(exc).__name__}: {text}".rstrip(": "),
                     None if debug else "Run again with --debug to see the traceback.") from None


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
