"""t5peek params [MODEL]"""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from t5peek.options import (AllowPickleOpt, DebugOpt, DeviceOpt, Device, Dtype, DtypeOpt, ForceOpt, JsonOpt,
                            MaxMemoryOpt, ModelArg, ModelOpt, OfflineOpt, RefreshOpt, RevisionOpt, common_options)
from t5peek.output import Output, run_command

HELP = """Exact parameter counts, broken down, and the memory they take per dtype.

Counts come from the safetensors headers (a few KB), so even an 11B model is counted in a second
without its weights. Tied weights count once. --weights loads the model to add trainable/frozen counts.

Examples:

  t5peek params google/flan-t5-base

  t5peek params -m demo --by layer

  t5peek params ./my-model --by type --json

  t5peek params google/flan-t5-xxl --max-memory 0=16GiB --max-memory cpu=32GB
"""


class View(str, enum.Enum):
    component = "component"
    layer = "layer"
    type = "type"


def params_command(
    model_arg: ModelArg = None,
    by: Annotated[View, typer.Option("--by", help="Break down by component, layer or type.",
                                     case_sensitive=False)] = View.component,
    weights: Annotated[bool, typer.Option("--weights", help="Load the weights too, to count trainable and "
                                          "frozen parameters.")] = False,
    max_memory: MaxMemoryOpt = None,
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
    def body() -> None:
        from dataclasses import replace

        from t5peek import loading, params, placement
        from t5peek.render.params import render_params

        common = common_options(model_arg, model, revision, offline, device, dtype, allow_pickle, debug, json, refresh)
        out = Output(common.json, common.debug)
        resolved = loading.resolve_model(common.model, common.revision, common.offline, common.refresh)
        for warning in resolved.warnings:
            out.warn(warning)
        raw = loading.read_config(resolved)
        checkpoint = loading.read_checkpoint(resolved, raw)
        memory = placement.parse_max_memory(max_memory)
        loaded = None
        if weights:
            with out.progress(f"Loading the weights of {common.model}…"):
                loaded = loading.load_model(resolved, device=common.device, dtype=common.dtype,
                                            allow_pickle=common.allow_pickle, with_tokenizer=False,
                                            force=force, warn=out.warn).model

        def meta_model():
            with out.progress("Building the model on the meta device…"):
                return loading.build_meta_model(resolved, raw, checkpoint)

        report = params.count(common.model, raw, checkpoint, by.value, meta_model, loaded)
        if memory is not None:
            with out.progress("Planning the split over --max-memory…"):
                split = placement.plan_for_model(resolved, raw, checkpoint, memory, common.dtype)
            report = replace(report, placement=split)
        out.emit(report, render_params)

    run_command(debug, body)
