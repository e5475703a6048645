"""t5peek arch [MODEL]"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from t5peek.options import (AllowPickleOpt, DebugOpt, DeviceOpt, Device, Dtype, DtypeOpt, JsonOpt, ModelArg,
                            ModelOpt, OfflineOpt, RefreshOpt, RevisionOpt, common_options)
from t5peek.output import Output, run_command

HELP = """The module tree of the full seq2seq LM, with parameters and weight shapes per node.

Built from config.json on the meta device: no weights are downloaded or loaded. Identical consecutive
blocks collapse to '(1-11): 11 x T5Block'; a block that differs says how.

Examples:

  t5peek arch google/flan-t5-base --depth 3

  t5peek arch -m demo --expand

  t5peek arch facebook/bart-large --json
"""


def arch_command(
    model_arg: ModelArg = None,
    depth: Annotated[Optional[int], typer.Option("--depth", "-d", min=0,
                                                 help="Show at most this many levels below the root.")] = None,
    expand: Annotated[bool, typer.Option("--expand", help="Do not collapse repeated blocks.")] = False,
    shapes: Annotated[bool, typer.Option("--shapes/--no-shapes", help="Show each module's weight shapes.")] = True,
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
        from t5peek import arch, loading
        from t5peek.render.arch import render_arch

        common = common_options(model_arg, model, revision, offline, device, dtype, allow_pickle, debug, json, refresh)
        out = Output(common.json, common.debug)
        resolved = loading.resolve_model(common.model, common.revision, common.offline, common.refresh)
        for warning in resolved.warnings:
            out.warn(warning)
        raw = loading.read_config(resolved)
        checkpoint = loading.read_checkpoint(resolved, raw)
        notes = ()
        if not checkpoint.tensors:
            notes = ("no safetensors header could be read: the tree follows config.json alone, its "
                     "tie_word_embeddings included",)
        with out.progress("Building the model on the meta device…"):
            meta = loading.build_meta_model(resolved, raw, checkpoint)
            report = arch.describe(meta, common.model, depth, expand, notes)
        out.emit(report, lambda record, console: render_arch(record, console, show_shapes=shapes))

    run_command(debug, body)
