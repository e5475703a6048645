"""One output sink: data on stdout (rich or JSON), messages and progress on stderr, one handler for errors."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
import unicodedata
from typing import Callable, Iterator

from rich.cells import get_character_cell_size
from rich.console import Console
from rich.markup import escape

from t5peek.errors import ExitCode, T5PeekError, redact
from t5peek.jsonable import document, error_document
from t5peek.render.format import INVISIBLE, SafeConsole, visible

# The widths t5peek lays its output out in, whatever COLUMNS or the terminal say: narrower, almost nothing fits on
# a line; wider, padded lines and grids grow without bound (COLUMNS=100000 made a trace of megabytes).
MIN_WIDTH, MAX_WIDTH = 40, 250


def _width() -> int:
    """COLUMNS when it is a positive number, else the terminal's width (80 when there is none), within MIN_WIDTH
    and MAX_WIDTH. COLUMNS=0 would otherwise make rich print nothing at all."""
    columns = os.environ.get("COLUMNS", "")
    return min(max(int(columns) if columns.strip().isdigit() and int(columns) > 0 else _terminal_width(),
                   MIN_WIDTH), MAX_WIDTH)


def _terminal_width() -> int:
    for descriptor in (0, 1, 2):  # as rich asks: the first standard stream that is a terminal
        try:
            if (size := os.get_terminal_size(descriptor).columns) > 0:
                return size
        except OSError:
            continue
    return 80


# ----------------------------------------------------------------------------- terminals that are not UTF-8

_GLYPHS = {"→": "->", "←": "<-", "↳": "->", "▶": ">", "◀": "<", "…": "...", "·": "-", "×": "x", "▁": "_",
           "Ġ": "_", "—": "-", "–": "-", "≥": ">=", "≤": "<=", "✓": "ok", "✗": "x", "ℹ": "i", "μ": "mean",
           "σ": "std", "█": "#", "▓": "%", "▒": "+", "░": ":", "‘": "'", "’": "'", "“": '"', "”": '"'}
_SPACE_RUN = re.compile(r"( {2,})")
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _ascii_forced() -> bool:
    """T5PEEK_ASCII=1: ASCII output even on a UTF-8 terminal (for golden files)."""
    return os.environ.get("T5PEEK_ASCII", "").strip().lower() not in ("", "0", "false", "no")


def _stream_encoding(stream) -> str:
    return "ascii" if _ascii_forced() else (getattr(stream, "encoding", None) or "utf-8").lower()


def _needs_fallback(stream) -> bool:
    return not _stream_encoding(stream).replace("_", "-").startswith("utf")


@functools.lru_cache(maxsize=4096)
def _glyph(char: str, encoding: str) -> str:
    if char in _GLYPHS:
        return _GLYPHS[char]
    if char.isascii():
        return char
    if 0x2500 <= ord(char) <= 0x259F:  # box drawing and block elements
        return _box_glyph(unicodedata.name(char, ""))
    try:
        char.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "?"
    return char


def _box_glyph(name: str) -> str:
    if "HORIZONTAL" in name and "VERTICAL" not in name:
        return "-"
    if "VERTICAL" in name and "HORIZONTAL" not in name or "BLOCK" in name:
        return "|"
    return "+"


def fallback_text(text: str, encoding: str) -> str:
    """`text` as `encoding` can hold it: known glyphs as ASCII look-alikes, anything else as '?'. A glyph that grows
    ('→' is '->') takes the extra width from the next run of spaces on its line, so table columns stay aligned; on a
    line of glyphs alone (a row of a heatmap's header) each glyph keeps one cell."""
    return "\n".join(_fallback_line(line, encoding) for line in text.split("\n"))


def _fallback_line(line: str, encoding: str) -> str:
    one_cell = all(char == " " or _glyph(char, encoding) != char for char in _ESCAPE.sub("", line))
    out, debt = [], 0
    for index, part in enumerate(_SPACE_RUN.split(line)):
        if index % 2:
            keep = max(1, len(part) - debt)
            debt -= len(part) - keep
            out.append(" " * keep)
            continue
        for char in part:
            new = _glyph(char, encoding)
            if new != char:
                new = new[:get_character_cell_size(char)] if one_cell else new
                debt += len(new) - get_character_cell_size(char)
            out.append(new)
    return "".join(out)


class _FallbackStream:
    """A text stream for a terminal that is not UTF-8 (or T5PEEK_ASCII=1). Its `encoding` tells rich to draw
    boxes and trees in ASCII; whatever else is written goes through `fallback_text`."""

    def __init__(self, stream, encoding: str):
        self._stream = stream
        self.encoding = encoding

    def write(self, text: str) -> int:
        self._stream.write(fallback_text(text, self.encoding))
        return len(text)

    def __getattr__(self, name):  # flush, fileno, isatty, ...
        return getattr(self._stream, name)


class _TrimmedLines:
    """A text stream that drops the spaces rich pads each line with to the console width: piped output and
    golden files end their lines where the text ends. Used only where no escape codes are written."""

    def __init__(self, stream):
        self._stream = stream
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        if lines:
            self._stream.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._stream.write(self._partial)
            self._partial = ""
        self._stream.flush()

    def __getattr__(self, name):  # fileno, isatty, encoding, ...
        return getattr(self._stream, name)


def _console(stream, console_class: type[Console] = SafeConsole, **kwargs) -> Console:
    """A console on `stream`: ASCII fallback where the stream cannot take UTF-8, no escape codes under NO_COLOR,
    no padding at the ends of lines without colour, a sane width whatever COLUMNS says."""
    no_color = os.environ.get("NO_COLOR", "") != ""
    if _needs_fallback(stream):
        stream = _FallbackStream(stream, _stream_encoding(stream))
    if no_color:
        kwargs["color_system"] = None  # rich's own NO_COLOR still writes bold and dim
    if no_color or not _isatty(stream):
        stream = _TrimmedLines(stream)
    return console_class(file=stream, width=_width(), highlight=False, **kwargs)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, a CI runner stopping a job), raised in the main thread by the handler `cli.main`
    installs. A kind of KeyboardInterrupt, so whatever cleans up after Ctrl-C cleans up after it too."""


class OutputFailed(T5PeekError):
    """Standard output cannot take what a command writes: a full disk, a closed descriptor, an I/O error."""


class _Stdout:
    """Standard output as commands write it: a write that fails for any reason but a reader that stopped early
    (a closed pipe) is OutputFailed, one line and exit 1. A stdout closed when t5peek started is None."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._guarded(lambda stream: stream.write(text))

    def flush(self) -> None:
        self._guarded(lambda stream: stream.flush())

    def _guarded(self, call):
        if self._stream is None:
            raise OutputFailed("Cannot write the output: standard output is closed.")
        try:
            return call(self._stream)
        except BrokenPipeError:
            raise
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise OutputFailed(f"Cannot write the output: {reason.rstrip('.')}.",
                               hint="Check the disk or device that standard output goes to.") from None

    def __getattr__(self, name):  # encoding, fileno, isatty, ...
        return getattr(self._stream, name)


class _PipeFriendlyConsole(SafeConsole):
    """A closed pipe raises BrokenPipeError, where rich would exit 1 (pointing stdout at /dev/null, even from
    stderr). On stdout, a reader that stops early (`t5peek arch | head`) ends the command quietly, with success;
    on stderr, the messages are left unsaid and the exit code stays the one the run earned."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


class Output:
    """Where a command writes. In JSON mode stdout carries exactly one document."""

    def __init__(self, json_mode: bool = False, command: str = ""):
        self.json_mode = json_mode
        self.command = command
        self.console = _console(_Stdout(sys.stdout), _PipeFriendlyConsole, soft_wrap=False)
        self.err = _console(sys.stderr, _PipeFriendlyConsole, soft_wrap=True)

    def emit(self, record, render: Callable[[object, Console], None] | None) -> None:
        if self.json_mode:
            _write_json(document(self.command, record))
        else:
            render(record, self.console)

    def warn(self, message: str) -> None:
        _to_stderr(self.err, f"[yellow]warning:[/] {_shown(message)}")

    def note(self, message: str) -> None:
        _to_stderr(self.err, f"[dim]{_shown(message)}[/]")

    @contextlib.contextmanager
    def progress(self, message: str) -> Iterator[None]:
        """A spinner on stderr while something slow runs (only when stderr is a terminal; under NO_COLOR, which
        allows no escape codes, the message alone)."""
        if not self.err.is_terminal:
            yield
        elif self.err.color_system is None:
            self.note(message)
            yield
        else:
            with self.err.status(message, spinner="line" if _needs_fallback(sys.stderr) else "dots"):
                yield


def fail(output_err: Console | None, message: str, hint: str | None = None) -> None:
    err = output_err or _console(sys.stderr, _PipeFriendlyConsole)
    _to_stderr(err, f"[bold red]error:[/] {_shown(message)}", *([f"  [dim]hint:[/] {_shown(hint)}"] if hint else []))


def _shown(message: str) -> str:
    """A message as one line of markup: no secrets, and what a model file put in it (a name, a config value) with
    its control and invisible characters as escapes, `\\x1b` or `\\u202e`, and its brackets as text."""
    return escape(visible(redact(message)))


def _to_stderr(err: Console, *lines: str) -> None:
    """Lines of markup on stderr. A stderr that cannot take them (a closed pipe, a full disk) says nothing more,
    and changes no exit code: messages then go to /dev/null."""
    try:
        for line in lines:
            err.print(line, markup=True, highlight=False, soft_wrap=True)
    except (OSError, ValueError):
        _silence(2)


def _write_json(data: dict) -> None:
    stdout = _Stdout(sys.stdout)
    stdout.write(_json_text(data) + "\n")
    stdout.flush()


def _json_text(data: dict) -> str:
    """A JSON document as t5peek prints it: ASCII where stdout cannot take UTF-8, and every control or invisible
    character (C1 controls, bidirectional overrides) as a \\uXXXX escape, which reads back as the same string."""
    return INVISIBLE.sub(_json_escape, json.dumps(data, ensure_ascii=_needs_fallback(sys.stdout), indent=2))


def _json_escape(found: re.Match) -> str:
    char = found[0]
    if char < " ":  # json.dumps escaped those in strings: these are the newlines of the layout
        return char
    units = char.encode("utf-16-be", "surrogatepass")
    return "".join(f"\\u{int.from_bytes(units[i:i + 2], 'big'):04x}" for i in range(0, len(units), 2))


def cli_command(func: Callable) -> Callable:
    """Wire a Typer command `<name>_command` to the one error handler: its `debug` option decides on
    tracebacks, its `json` option on whether a failure is also written to stdout as a JSON error document."""
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

    def failed(kind: str, code: int, message: str, hint: str | None = None) -> typer.Exit:
        return typer.Exit(report_failure(kind, code, message, hint, command))

    try:
        with _libraries_quiet(debug):
            body()
    except OutputFailed as exc:
        _show_traceback(debug)
        _silence_stdout()
        raise typer.Exit(report_failure(exc.kind, exc.exit_code, exc.message, exc.hint, None)) from None
    except T5PeekError as exc:
        _show_traceback(debug)
        raise failed(exc.kind, exc.exit_code, exc.message, exc.hint) from None
    except Terminated:
        raise failed("interrupted", ExitCode.TERMINATED, "terminated.") from None
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


def report_failure(kind: str, code: int, message: str, hint: str | None, command: str | None) -> int:
    """One error line (and hint) on stderr and, when `command` is given (--json), the error document on stdout
    (unless stdout cannot take it: the line on stderr has said what went wrong); returns the exit code."""
    fail(None, message, hint)
    if command is not None:
        try:
            _write_json(error_document(command, kind, redact(message), redact(hint) if hint else None, code))
        except (OutputFailed, BrokenPipeError):
            _silence_stdout()
    return int(code)


@contextlib.contextmanager
def _libraries_quiet(debug: bool) -> Iterator[None]:
    """No warnings or log lines of torch, transformers, accelerate or huggingface_hub on the terminal: t5peek says
    what matters in its own words. --debug lets them through."""
    if debug:
        yield
        return
    import logging
    import warnings

    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _show_traceback(debug: bool) -> None:
    if not debug:
        return
    import traceback

    try:
        sys.stderr.write(visible(redact("".join(traceback.format_exc())), keep="\n\t"))
        sys.stderr.flush()
    except (OSError, ValueError):
        _silence(2)


def _silence_stdout() -> None:
    """After a closed pipe or a failed write, point stdout at /dev/null so Python's exit-time flush stays quiet."""
    _silence(1)


def _silence(stream_number: int) -> None:
    """Point standard output (1) or standard error (2) at /dev/null, so that Python's exit-time flush stays quiet."""
    try:
        descriptor = (sys.stdout if stream_number == 1 else sys.stderr).fileno()
    except (AttributeError, OSError, ValueError):  # closed from the start: cli.main put /dev/null there
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, descriptor)
        os.close(devnull)
    except OSError:
        pass
