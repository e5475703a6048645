"""t5peek info [MODEL]"""

from __future__ import annotations

from t5peek.options import (AllowPickleOpt, DebugOpt, DeviceOpt, Device, Dtype, DtypeOpt, JsonOpt, MaxMemoryOpt,
                            ModelArg, ModelOpt, OfflineOpt, RefreshOpt, RevisionOpt, common_options)
from t5peek.output import Output, run_command

HELP = """One-screen summary of a model: family, depths, widths, vocabulary, tying, dtype, origin.

Reads config.json and the safetensors headers only; no weights are loaded.

Examples:

  t5peek info google/flan-t5-base

  t5peek info ./my-model --json

  t5peek info google/flan-t5-xl --max-memory 0=8GiB --max-memory cpu=16GB
"""


def info_command(
    model_arg: ModelArg = None,
    max_memory: MaxMemoryOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    refresh: RefreshOpt = False,
    device: DeviceOpt = Device.cpu,
    dtype: DtypeOpt = Dtype.auto,
    allow_pickle: AllowPickleOpt = False,
    debug: DebugOpt = False,
    json: JsonOpt = False,
) -> None:
    def body() -> None:
        from dataclasses import replace

        from t5peek import info, loading, params, placement
        from t5peek.render.info import render_info

        common = common_options(model_arg, model, revision, offline, device, dtype, allow_pickle, debug, json, refresh)
        out = Output(common.json, common.debug)
        memory = placement.parse_max_memory(max_memory)
        resolved = loading.resolve_model(common.model, common.revision, common.offline, common.refresh)
        for warning in resolved.warnings:
            out.warn(warning)
        raw = loading.read_config(resolved)
        checkpoint = loading.read_checkpoint(resolved, raw)
        total, note = None, "needs the checkpoint headers (run `t5peek params` to count from the config)"
        if checkpoint.tensors and raw["model_type"] in _header_counted():
            total = params.count(common.model, raw, checkpoint, "component").total
            note = "exact, from the safetensors headers"
        elif not checkpoint.tensors and checkpoint.format == "none":
            with out.progress("Building the model on the meta device…"):
                total = params.count(common.model, raw, checkpoint, "component",
                                     lambda: loading.build_meta_model(resolved, raw, checkpoint)).total
            note = "from config.json alone (no checkpoint header could be read)"
        record = info.summarize(resolved, raw, checkpoint, total, note)
        if memory is not None:
            with out.progress("Planning the split over --max-memory…"):
                record = replace(record, placement=placement.plan_for_model(resolved, raw, checkpoint, memory,
                                                                            common.dtype))
        out.emit(record, render_info)

    run_command(debug, body)


def _header_counted() -> set[str]:
    from t5peek.anatomy import HEADER_COUNTED

    return HEADER_COUNTED
