"""t5peek params [MODEL]"""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from t5peek.options import (AllowPickleOpt, DebugOpt, Device, DeviceOpt, Dtype, DtypeOpt, ForceOpt, JsonOpt,
                            MaxMemoryOpt, ModelArg, ModelOpt, OfflineOpt, RefreshOpt, RevisionOpt, model_name,
                            open_model)
from t5peek.commands.generate import HtmlOpt, check_html_target, write_report
from t5peek.output import Output, cli_command
from t5peek.placement import parse_max_memory

HELP = """Exact parameter counts, broken down, and the memory they take per dtype.

Counts come from the safetensors headers (a few KB), so even an 11B model is counted in a second
without its weights. Tied weights count once. --weights loads the model to add trainable/frozen counts.

Examples:

\b
  t5peek params google/flan-t5-base
  t5peek params -m demo --by layer
  t5peek params ./my-model --by type --json
  t5peek params google/flan-t5-xxl --max-memory 0=16GiB --max-memory cpu=32GB
"""


class View(str, enum.Enum):
    component = "component"
    layer = "layer"
    type = "type"


@cli_command
def params_command(
    model_arg: ModelArg = None,
    by: Annotated[View, typer.Option("--by", help="Break down by component, layer or type.",
                                     case_sensitive=False)] = View.component,
    weights: Annotated[bool, typer.Option("--weights", help="Load the weights too, to count trainable and "
                                          "frozen parameters (--device, --dtype, --allow-pickle and "
                                          "--skip-memory-check apply to that load).")] = False,
    max_memory: MaxMemoryOpt = None,
    html: HtmlOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    refresh: RefreshOpt = False,
    device: DeviceOpt = Device.cpu,
    dtype: DtypeOpt = Dtype.auto,
    allow_pickle: AllowPickleOpt = False,
    force: ForceOpt = False,
    debug: DebugOpt = False,
    json: JsonOpt = False,
) -> None:
    from t5peek.render.params import render_params

    html_target = check_html_target(html)
    out = Output(json, "params")
    memory = parse_max_memory(max_memory)
    peek = open_model(model_name(model_arg, model), out, revision=revision, offline=offline, refresh=refresh,
                      device=device, dtype=dtype, allow_pickle=allow_pickle, force=force)
    report = peek.params(View(by).value, weights=weights, plan_memory=memory)
    write_report(report, html_target, out)
    out.emit(report, render_params)
