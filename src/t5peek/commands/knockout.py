"""t5peek knockout PROMPT --head KIND:L.H [--head ...] | --sweep KIND [-m MODEL]"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from t5peek.options import (AllowPickleOpt, DebugOpt, Device, DeviceMapOpt, DeviceOpt, Dtype, DtypeOpt, ForceOpt,
                            JsonOpt, MaxMemoryOpt, ModelOpt, OfflineOpt, RefreshOpt, RevisionOpt,
                            check_prompt_is_not_a_model, model_name, open_model)
from t5peek.output import Output, cli_command

HELP = """Knock out attention heads and see what the model then says.

A head is knocked out at the input of its attention's output projection (T5's o, BART's out_proj),
where the heads' outputs sit side by side: its slice is zeroed (--mode zero, the same as zeroing the
head's columns of the projection's weight), or replaced by its mean over the positions of the
original run (--mode mean). KIND is encoder (encoder self-attention), self (decoder self-attention)
or cross (decoder cross-attention); L and H count from 0.

Shows each token of the original greedy output with its logit with and without the heads
(teacher-forced on the original output), then the output decoded greedily with the heads knocked
out, and the first position where it departs. --sweep KIND knocks out every head of that kind, one
at a time: a layer x head table of the mean change of the original tokens' logits, marking the heads
that change the output alone. T5- and BART-family models; other families are refused.

Examples:

\b
  t5peek knockout -m demo "translate English to Spanish: the red house" \\
      --head cross:2.0 --head cross:2.2
  t5peek knockout -m demo "translate English to Spanish: the red house" \\
      --sweep cross --mode mean
"""


@cli_command
def knockout_command(
    prompt: Annotated[str, typer.Argument(help="The source text.", show_default=False, metavar="PROMPT")],
    head: Annotated[Optional[list[str]], typer.Option("--head", help="A head to knock out, KIND:L.H (e.g. cross:2.3); "
                                                      "repeat for more.", show_default=False,
                                                      metavar="KIND:L.H")] = None,
    sweep: Annotated[Optional[str], typer.Option("--sweep", help="Knock out every head of KIND (encoder, self or "
                                                 "cross), one at a time.", show_default=False,
                                                 metavar="KIND")] = None,
    mode: Annotated[str, typer.Option("--mode", help="zero, or mean (the head's mean over the original run's "
                                      "positions).")] = "zero",
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", "-n", help="Stop the greedy outputs "
                                                          "after this many new tokens. [default: 20]",
                                                          show_default=False)] = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    refresh: RefreshOpt = False,
    device: DeviceOpt = Device.cpu,
    dtype: DtypeOpt = Dtype.auto,
    allow_pickle: AllowPickleOpt = False,
    device_map: DeviceMapOpt = None,
    max_memory: MaxMemoryOpt = None,
    force: ForceOpt = False,
    debug: DebugOpt = False,
    json: JsonOpt = False,
) -> None:
    from t5peek.interventions.knockout import KnockoutRequest, parse_head
    from t5peek.render.knockout import render_knockout

    check_prompt_is_not_a_model(prompt, model is not None, "knockout")
    request = KnockoutRequest(prompt, tuple(parse_head(text) for text in head or ()), mode, max_new_tokens, sweep)
    out = Output(json, "knockout")
    peek = open_model(model_name(None, model), out, revision=revision, offline=offline, refresh=refresh,
                      device=device, dtype=dtype, allow_pickle=allow_pickle, force=force, device_map=device_map,
                      max_memory=max_memory)
    out.emit(peek.run(request), render_knockout)
