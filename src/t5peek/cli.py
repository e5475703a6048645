"""The Typer app. Commands live in `t5peek.commands.*`; nothing here imports torch or transformers."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from t5peek import __version__
from t5peek.commands import arch, generate, info, params, trace

HELP = """See inside Hugging Face encoder-decoder models (T5, flan-t5, BART, Marian, mT5, Pegasus, ...).

Examples:

  t5peek info google/flan-t5-base       a one-screen summary of a model

  t5peek arch demo --depth 3            the module tree, repeated blocks collapsed

  t5peek params google/flan-t5-xxl      exact counts, without downloading weights

  t5peek trace -m demo "translate English to German: the house is small"

  t5peek generate -m demo "translate English to Spanish: the red house is small"

MODEL is a Hub id, a local folder, or 'demo' (a small T5 that ships with t5peek and works offline).
Exit codes: 0 ok, 1 runtime error, 2 usage error, 3 refused for safety, 130 interrupted.
"""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
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


def main() -> None:
    app(prog_name="t5peek")
