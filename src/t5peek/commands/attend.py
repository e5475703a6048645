"""t5peek attend PROMPT [-m MODEL] [--layer L] [--head H] [--step T | --encoder --query I] [--cross | --self]"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from t5peek.options import (AllowPickleOpt, DebugOpt, Device, DeviceMapOpt, DeviceOpt, Dtype, DtypeOpt, ForceOpt,
                            JsonOpt, MaxMemoryOpt, ModelOpt, OfflineOpt, RefreshOpt, RevisionOpt,
                            check_prompt_is_not_a_model, model_name, open_model)
from t5peek.commands.generate import HtmlOpt, check_html_target, write_report
from t5peek.output import Output, cli_command

HELP = """One attention head, in numbers: the query vector, each key's score (q.k, the scaling, T5's
relative-position bucket and bias, the mask), the softmax weights, the weighted sum of the values (the
head's output) and what that head's slice of the output projection adds to the attention output. Q asks,
K answers, V is what gets passed on.

Which query. In the decoder (the default), the decoder runs greedily up to step T (--step, from 0; step 0
reads the decoder start token) and the query is decoder position T: --cross (the default) shows it
looking at the source tokens, --self at the decoder positions 0..T (causal: never ahead). --encoder
shows encoder self-attention, whose query is source position I (--query, from 0).

Every number is recomputed from the attention module's own weights on the hidden states that entered it,
and checked against what the module itself computed in the same run (eager attention). T5-family and
BART-family models (Marian, mBART, Pegasus, ...) only.

Examples:

\b
  t5peek attend -m demo "translate English to Spanish: the red house is small"
  t5peek attend -m demo "translate English to Spanish: the red house" \\
      --step 1 --head 3
  t5peek attend -m demo "translate English to Spanish: the red house" \\
      --self --step 2 --layer 0
  t5peek attend -m demo "translate English to German: the house is small" \\
      --encoder --query 6 --full
  t5peek attend -m demo "translate English to French: I love fish" --json
"""


@cli_command
def attend_command(
    prompt: Annotated[str, typer.Argument(help="The text to feed the encoder.", show_default=False,
                                          metavar="PROMPT")],
    layer: Annotated[Optional[int], typer.Option("--layer", "-l", help="Layer of the stack, from 0 [default: "
                                                 "the last]", show_default=False)] = None,
    head: Annotated[int, typer.Option("--head", "-H", help="Attention head, from 0.")] = 0,
    step: Annotated[Optional[int], typer.Option("--step", "-s", help="Decoder step of the query, from 0 (0 reads "
                                                "the start token; greedy decoding supplies the rest). [default: "
                                                "0]", show_default=False)] = None,
    cross: Annotated[Optional[bool], typer.Option("--cross/--self", help="Decoder cross-attention (over the "
                                                  "source) or causal self-attention (over decoder positions "
                                                  "0..T). [default: --cross]", show_default=False)] = None,
    encoder: Annotated[bool, typer.Option("--encoder", help="Encoder self-attention instead of the "
                                          "decoder.")] = False,
    query: Annotated[Optional[int], typer.Option("--query", "-q", help="With --encoder: the source position of "
                                                 "the query, from 0. [default: 0]", show_default=False)] = None,
    full: Annotated[bool, typer.Option("--full", help="Print every value of every vector (q, each k and v, the "
                                       "head output, the contribution); --json always has them all.")] = False,
    html: HtmlOpt = None,
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
    from t5peek.attend.run import AttendRequest
    from t5peek.render.attend import render_attend

    check_prompt_is_not_a_model(prompt, model is not None, "attend")
    request = AttendRequest(prompt, layer=layer, head=head, step=step, cross=cross, encoder=encoder, query=query)
    html_target = check_html_target(html)
    out = Output(json, "attend")
    peek = open_model(model_name(None, model), out, revision=revision, offline=offline, refresh=refresh,
                      device=device, dtype=dtype, allow_pickle=allow_pickle, force=force, device_map=device_map,
                      max_memory=max_memory)
    report = peek.run(request)
    write_report(report, html_target, out)
    out.emit(report, lambda record, console: render_attend(record, console, full=full))
