"""t5peek arch [MODEL]"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from t5peek.options import (DebugOpt, JsonOpt, ModelArg, ModelOpt, OfflineOpt, RefreshOpt, RevisionOpt, model_name,
                            open_model)
from t5peek.commands.generate import HtmlOpt, check_html_target, write_report
from t5peek.output import Output, cli_command

HELP = """The module tree of the full seq2seq LM, with parameters and weight shapes per node.

Built from config.json on the meta device: no weights are downloaded or loaded. Identical consecutive
blocks collapse to '(1-11): 11 x T5Block'; a block that differs says how.

Examples:

\b
  t5peek arch google/flan-t5-base --depth 3
  t5peek arch -m demo --expand
  t5peek arch facebook/bart-large --json
"""


@cli_command
def arch_command(
    model_arg: ModelArg = None,
    depth: Annotated[Optional[int], typer.Option("--depth", "-d", min=0,
                                                 help="Show at most this many levels below the root.")] = None,
    expand: Annotated[bool, typer.Option("--expand", help="Do not collapse repeated blocks.")] = False,
    shapes: Annotated[bool, typer.Option("--shapes/--no-shapes", help="Show each module's weight shapes.")] = True,
    html: HtmlOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    refresh: RefreshOpt = False,
    debug: DebugOpt = False,
    json: JsonOpt = False,
) -> None:
    from t5peek.render.arch import render_arch

    html_target = check_html_target(html)
    out = Output(json, "arch")
    peek = open_model(model_name(model_arg, model), out, revision=revision, offline=offline, refresh=refresh)
    report = peek.arch(depth, expand)
    write_report(report, html_target, out)
    out.emit(report, lambda record, console: render_arch(record, console, show_shapes=shapes))
