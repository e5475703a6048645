"""t5peek patch PROMPT --corrupt TEXT | --noise I:J [-m MODEL]"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from t5peek.options import (AllowPickleOpt, DebugOpt, Device, DeviceMapOpt, DeviceOpt, Dtype, DtypeOpt, ForceOpt,
                            JsonOpt, MaxMemoryOpt, ModelOpt, OfflineOpt, RefreshOpt, RevisionOpt,
                            check_prompt_is_not_a_model, model_name, open_model)
from t5peek.output import Output, cli_command

HELP = """Activation patching (causal tracing): which site carries what makes the model say its token.

The clean run is PROMPT and its greedy output. The corrupted run reads --corrupt TEXT as the source
(it must have as many tokens), or PROMPT with Gaussian noise of 3x the embedding's standard
deviation on source tokens I to J-1 (--noise I:J, seeded by --seed); it is teacher-forced on the
clean output. Each site is then restored alone from the clean run into the corrupted one: every
encoder block's output at every source position; the self-attention, cross-attention and
feed-forward outputs of every decoder layer at every decoder position up to --position; and each
decoder layer's cross-attention keys and values (all source positions at once). The score is the
clean token's logit at --position (or its probability, or its logit minus the corrupted run's
token's); restored = (patched - corrupted) / (clean - corrupted). Sites are batched, 64 rows per
forward pass. T5- and BART-family models; other families are refused.

Examples:

\b
  t5peek patch -m demo "translate English to Spanish: the red house" \\
      --corrupt "translate English to Spanish: the blue house" --position 2
  t5peek patch -m demo "translate English to Spanish: the red house" \\
      --noise 6:7 --position 2 --metric prob --json
"""


@cli_command
def patch_command(
    prompt: Annotated[str, typer.Argument(help="The clean source text.", show_default=False, metavar="PROMPT")],
    corrupt: Annotated[Optional[str], typer.Option("--corrupt", "-c", help="The corrupted source text, with as many "
                                                   "tokens as PROMPT.", show_default=False)] = None,
    noise: Annotated[Optional[str], typer.Option("--noise", help="I:J - corrupt PROMPT itself: Gaussian noise (3x the "
                                                 "embedding's std) on source tokens I to J-1.",
                                                 show_default=False, metavar="I:J")] = None,
    position: Annotated[int, typer.Option("--position", "-p", help="The decoder position explained: it reads the "
                                          "clean output up to there and predicts the next clean token.")] = 0,
    metric: Annotated[str, typer.Option("--metric", help="logit (of the clean token), prob (its probability) or "
                                        "logit-diff (clean token - corrupted run's token).")] = "logit",
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the --noise. [default: 0]",
                                                show_default=False)] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", "-n", help="Length of the clean greedy "
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
    from t5peek.interventions.patch import PatchRequest, parse_noise
    from t5peek.render.patch import render_patch

    check_prompt_is_not_a_model(prompt, model is not None, "patch")
    request = PatchRequest(prompt, corrupt, parse_noise(noise), position, metric, seed, max_new_tokens)
    out = Output(json, "patch")
    peek = open_model(model_name(None, model), out, revision=revision, offline=offline, refresh=refresh,
                      device=device, dtype=dtype, allow_pickle=allow_pickle, force=force, device_map=device_map,
                      max_memory=max_memory)
    out.emit(peek.run(request), render_patch)
