"""t5peek info [MODEL]"""

from __future__ import annotations

from t5peek.options import (AllowPickleOpt, DebugOpt, DeviceOpt, Device, Dtype, DtypeOpt, JsonOpt, ModelArg,
                            ModelOpt, OfflineOpt, RevisionOpt, common_options)
from t5peek.output import Output, run_command

HELP = """One-screen summary of a model: family, depths, widths, vocabulary, tying, dtype, origin.

Reads config.json and the safetensors headers only; no weights are loaded.

Examples:

  t5peek info google/flan-t5-base

  t5peek info ./my-model --json
"""


def info_command(
    model_arg: ModelArg = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    device: DeviceOpt = Device.cpu,
    dtype: DtypeOpt = Dtype.auto,
    allow_pickle: AllowPickleOpt = False,
    debug: DebugOpt = False,
    json: JsonOpt = False,
) -> None:
    def body() -> None:
        from t5peek import info, loading, params
        from t5peek.render.info import render_info

        common = common_options(model_arg, model, revision, offline, device, dtype, allow_pickle, debug, json)
        out = Output(common.json, common.debug)
        resolved = loading.resolve_model(common.model, common.revision, common.offline)
        raw = loading.read_config(resolved)
        checkpoint = loading.read_checkpoint(resolved, raw)
        total, note = None, "needs the checkpoint headers (run `t5peek params` to count from the config)"
        if checkpoint.tensors and raw["model_type"] in _header_counted():
            total = params.count(common.model, raw, checkpoint, "component").total
            note = "exact, from the safetensors headers"
        out.emit(info.summarize(resolved, raw, checkpoint, total, note), render_info)

    run_command(debug, body)


def _header_counted() -> set[str]:
    from t5peek.anatomy import HEADER_COUNTED

    return HEADER_COUNTED
