"""t5peek attribute PROMPT [--position T] [--contrast TOKEN] [--steps N] [-m MODEL]"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from t5peek.attribution.integrated import FEWEST_STEPS
from t5peek.attribution.run import DEFAULT_STEPS, MAX_STEPS
from t5peek.options import (AllowPickleOpt, DebugOpt, Device, DeviceMapOpt, DeviceOpt, Dtype, DtypeOpt, ForceOpt,
                            JsonOpt, MaxMemoryOpt, ModelOpt, OfflineOpt, RefreshOpt, RevisionOpt,
                            check_prompt_is_not_a_model, model_name, open_model)
from t5peek.output import Output, cli_command

HELP = """Integrated gradients: which source tokens make the model say its token, beside occlusion.

The decoder is teacher-forced on PROMPT's greedy output; decoder position --position reads it up to
there and predicts the next token. Its score is that token's logit (minus the --contrast token's:
why this and not that). Integrated gradients moves every source token's embedding, as the encoder
receives it, from the pad token's embedding to its own (positions are the model's own throughout)
and adds up the score's gradient along the way, by the trapezoid rule on --steps points: the
attributions sum to score - baseline, and the error of that sum is always shown. A second integral
does the same for the decoder's tokens 0 to --position with the source as it is. The same position's
cross-attention (mean of the last layer's heads) and occlusion drops (each source token alone replaced
by the pad token) are ranked beside it. T5- and BART-family models; other families are refused.

Examples:

\b
  t5peek attribute -m demo --position 2 \\
      "translate English to Spanish: the red house is small"
  t5peek attribute -m demo "translate English to Spanish: the red house" \\
      --position 2 --contrast azul --steps 512 --json
"""


@cli_command
def attribute_command(
    prompt: Annotated[str, typer.Argument(help="The source text.", show_default=False, metavar="PROMPT")],
    position: Annotated[int, typer.Option("--position", "-p", help="The decoder position explained: it reads the "
                                          "greedy output up to there and predicts the next token.")] = 0,
    contrast: Annotated[Optional[str], typer.Option("--contrast", help="TOKEN (a vocabulary string or #ID): "
                                                    "attribute logit(predicted) - logit(TOKEN).",
                                                    show_default=False, metavar="TOKEN")] = None,
    steps: Annotated[int, typer.Option("--steps", help=f"Points on the integration path, {FEWEST_STEPS} to "
                                       f"{MAX_STEPS}.")] = DEFAULT_STEPS,
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", "-n", help="Length of the greedy "
                                                          "output. [default: 20]", show_default=False)] = None,
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
    from t5peek.attribution.run import AttributeRequest
    from t5peek.render.attribute import render_attribute

    check_prompt_is_not_a_model(prompt, model is not None, "attribute")
    request = AttributeRequest(prompt, position, contrast, steps, max_new_tokens)
    out = Output(json, "attribute")
    peek = open_model(model_name(None, model), out, revision=revision, offline=offline, refresh=refresh,
                      device=device, dtype=dtype, allow_pickle=allow_pickle, force=force, device_map=device_map,
                      max_memory=max_memory)
    out.emit(peek.run(request), render_attribute)
