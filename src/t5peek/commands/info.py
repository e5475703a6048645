"""t5peek info [MODEL]"""

from __future__ import annotations

from t5peek.commands.generate import HtmlOpt, check_html_target, write_report
from t5peek.options import (DebugOpt, Dtype, DtypeOpt, JsonOpt, MaxMemoryOpt, ModelArg, ModelOpt, OfflineOpt,
                            RefreshOpt, RevisionOpt, model_name, open_model)
from t5peek.output import Output, cli_command
from t5peek.placement import parse_max_memory

HELP = """One-screen summary of a model: family, depths, widths, vocabulary, tying, dtype, origin.

Reads config.json and the safetensors headers only; no weights are loaded.

Examples:

\b
  t5peek info google/flan-t5-base
  t5peek info ./my-model --json
  t5peek info google/flan-t5-xl --max-memory 0=8GiB --max-memory cpu=16GB
"""


@cli_command
def info_command(
    model_arg: ModelArg = None,
    max_memory: MaxMemoryOpt = None,
    html: HtmlOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    refresh: RefreshOpt = False,
    dtype: DtypeOpt = Dtype.auto,
    debug: DebugOpt = False,
    json: JsonOpt = False,
) -> None:
    from t5peek.render.info import render_info

    html_target = check_html_target(html)
    out = Output(json, "info")
    memory = parse_max_memory(max_memory)
    peek = open_model(model_name(model_arg, model), out, revision=revision, offline=offline, refresh=refresh,
                      dtype=dtype)
    record = peek.info(plan_memory=memory)
    write_report(record, html_target, out)
    out.emit(record, render_info)
