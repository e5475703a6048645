"""The Typer app. Commands live in `t5peek.commands.*`; nothing here imports torch or transformers."""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated, Optional

import typer

from t5peek import __version__
from t5peek.commands import (arch, attend, attribute, budget, generate, info, knockout, lens, params, patch, report,
                             trace)
from t5peek.output import MAX_WIDTH, MIN_WIDTH, Terminated
from t5peek.usage import Group

HELP = """See inside Hugging Face encoder-decoder models (T5, flan-t5, BART, Marian, mT5, Pegasus, ...).

Examples:

\b
  t5peek info google/flan-t5-base      a one-screen summary of a model
  t5peek arch demo --depth 3           the module tree, repeats collapsed
  t5peek params google/flan-t5-xxl     exact counts, no weights downloaded
  t5peek trace -m demo "translate English to German: the house is small"
  t5peek generate -m demo "translate English to German: the house is small"
  t5peek lens -m demo "translate English to Spanish: the red house" --step 1
  t5peek attend -m demo "translate English to Spanish: the red house" --step 1
  t5peek budget google/flan-t5-base --mode train --batch 8 --source 512
  t5peek patch -m demo "translate English to Spanish: the cat" --noise 6:7
  t5peek knockout -m demo "translate English to German: the cat" --sweep self
  t5peek report -m demo "translate English to German: the cat" -o report.html

MODEL is a Hub id, a local folder, or 'demo' (a small T5 that ships with t5peek and works offline).

Exit codes: 0 ok, 1 runtime error, 2 usage error, 3 refused for safety, 130 interrupted, 143 terminated.
"""

EPILOG = f"""Environment: T5PEEK_ASCII=1 prints ASCII only (no box drawing, arrows or shades), as t5peek does by itself
when the terminal is not UTF-8; NO_COLOR=1 prints no colours or other escape codes; COLUMNS sets the width, from
{MIN_WIDTH} to {MAX_WIDTH} (a narrower or wider COLUMNS or terminal gets {MIN_WIDTH} or {MAX_WIDTH}).
"""


# ----------------------------------------------------------------------------- the app


app = typer.Typer(help=HELP, epilog=EPILOG, cls=Group, no_args_is_help=True, add_completion=True,
                  pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})


def _version(value: bool) -> None:
    if value:
        typer.echo(f"t5peek {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Show the version and exit.")] = None,
) -> None:
    """See inside Hugging Face encoder-decoder models."""


app.command("info", help=info.HELP)(info.info_command)
app.command("arch", help=arch.HELP)(arch.arch_command)
app.command("params", help=params.HELP)(params.params_command)
app.command("trace", help=trace.HELP)(trace.trace_command)
app.command("generate", help=generate.HELP)(generate.generate_command)
app.command("lens", help=lens.HELP)(lens.lens_command)
app.command("attend", help=attend.HELP)(attend.attend_command)
app.command("budget", help=budget.HELP)(budget.budget_command)
app.command("patch", help=patch.HELP)(patch.patch_command)
app.command("knockout", help=knockout.HELP)(knockout.knockout_command)
app.command("attribute", help=attribute.HELP)(attribute.attribute_command)
app.command("report", help=report.HELP)(report.report_command)


def main() -> None:
    """The `t5peek` script. SIGTERM ends a run the way Ctrl-C does (one line, cleanup, exit 143); a second
    SIGTERM ends it at once."""
    _fill_closed_streams()
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: the caller keeps its own handling
        previous = None
    try:
        app(prog_name="t5peek")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _on_sigterm(_signum, _frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated()


def _fill_closed_streams() -> None:
    """Put /dev/null where stdin, stdout or stderr was closed (`>&-`), so that no file t5peek opens gets one of
    their numbers and receives what is meant for them. sys.stdout stays None: writing the output then fails in
    one line. A closed stderr takes the messages into /dev/null; the exit code still tells."""
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - open as long as the process
