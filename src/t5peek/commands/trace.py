"""t5peek trace PROMPT [-m MODEL]"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from t5peek.options import (AllowPickleOpt, DebugOpt, Device, DeviceMapOpt, DeviceOpt, Dtype, DtypeOpt, ForceOpt,
                            JsonOpt, MaxMemoryOpt, ModelOpt, OfflineOpt, RefreshOpt, RevisionOpt,
                            check_prompt_is_not_a_model, model_name, open_model)
from t5peek.commands.generate import HtmlOpt, check_html_target, write_report
from t5peek.output import Output, cli_command

HELP = """Run PROMPT through the model and show every module as it runs: input and output shapes,
dtype, device and time, the attention weight shape of each attention module, and the KV cache.

Two decoder views. Without --target: generation (inference), the encoder once, then the decoder one
new token per step (greedy) with a KV cache; the self-attention cache grows by one position per
step, cross-attention keys/values are computed at step 0 and reused. With --target: teacher forcing
(training), the whole target goes in at once, shifted right, under the causal mask.

With --target and --compare (T5 and BART families): training vs inference. After the
teacher-forcing trace come three more views of the same target: the teacher-forced logits
against the decoder run one step at a time with a KV cache, fed the same tokens (max |diff| per
position, within float tolerance); the causal mask, drawn once and measured on the attention
weights; and free-running greedy decoding (what generate() does) for as many steps as the
target has, marking the first position where the model's own choice departs from the target
(exposure bias). Add --depth 0 to keep the module trace to one row.

Attention runs in eager mode, so that the attention weights exist to be measured.

Examples:

\b
  t5peek trace -m demo "translate English to German: the house is small"
  t5peek trace -m demo "translate English to German: the house is small" \\
      --target "das Haus ist klein"
  t5peek trace -m demo "translate English to German: the red house is small" \\
      --target "das blaue Haus ist klein" --compare --depth 0
  t5peek trace -m facebook/bart-base "a b c" --depth 5 --stats --json
"""

DEPTH_HELP = ("How deep to hook, counted from the model root as in `t5peek arch --depth`: the model is 0, "
              "each module below adds 1, ModuleList containers add nothing. T5: encoder 1, "
              "encoder.block.0 2, block.0.layer.0 3, layer.0.SelfAttention 4, SelfAttention.q 5. BART: "
              "model 1, model.encoder 2, encoder.layers.0 3, layers.0.self_attn 4, self_attn.q_proj 5. "
              "Default: the block view, each block with its attention, feed-forward and norm sublayers.")


@cli_command
def trace_command(
    prompt: Annotated[str, typer.Argument(help="The text to feed the encoder.", show_default=False,
                                          metavar="PROMPT")],
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Teacher forcing: the target text "
                                                  "the decoder reads at once (training view).")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", "-n", help="Generation: how many decoder steps to "
                                                 "run and show, at least 1 (stops early at the end-of-sequence "
                                                 "token). [default: 3]", show_default=False)] = None,
    depth: Annotated[Optional[int], typer.Option("--depth", "-d", help=DEPTH_HELP, show_default=False)] = None,
    stats: Annotated[bool, typer.Option("--stats", help="Add mean, std, abs-max and NaN/inf counts of each "
                                        "output, and name the first module whose output is not finite.")] = False,
    explain: Annotated[bool, typer.Option("--explain", help="Add a one-line plain-language note for each "
                                          "kind of stage.")] = False,
    compare: Annotated[bool, typer.Option("--compare", help="With --target: teacher forcing against cached "
                                          "steps on the same tokens, the causal mask, then free-running greedy "
                                          "and where it first departs from the target.")] = False,
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
    from t5peek.render.trace import render_trace

    from t5peek.trace.run import TraceRequest

    check_prompt_is_not_a_model(prompt, model is not None, "trace")
    request = TraceRequest(prompt, target=target, steps=steps, depth=depth, stats=stats, explain=explain,
                           compare=compare)
    html_target = check_html_target(html)
    out = Output(json, "trace")
    peek = open_model(model_name(None, model), out, revision=revision, offline=offline, refresh=refresh,
                      device=device, dtype=dtype, allow_pickle=allow_pickle, force=force, device_map=device_map,
                      max_memory=max_memory)
    report = peek.run(request)
    write_report(report, html_target, out)
    out.emit(report, render_trace)
