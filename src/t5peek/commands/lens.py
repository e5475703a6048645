"""t5peek lens PROMPT [-m MODEL]"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from t5peek.options import (AllowPickleOpt, DebugOpt, Device, DeviceMapOpt, DeviceOpt, Dtype, DtypeOpt, ForceOpt,
                            JsonOpt, MaxMemoryOpt, ModelOpt, OfflineOpt, RefreshOpt, RevisionOpt,
                            check_prompt_is_not_a_model, model_name, open_model)
from t5peek.commands.generate import HtmlOpt
from t5peek.output import Output, cli_command

HELP = """Watch the next token emerge through the decoder: the logit lens and direct logit attribution.

At each step the residual stream is read after the embedding and after every decoder sublayer
(self-attention, cross-attention, feed-forward) through the model's own head (T5: final_layer_norm,
then x d_model**-0.5 when the head is tied, then lm_head; BART-style: the final layer norm where
there is one, then lm_head + final_logits_bias). The grid shows the top-1 token at each depth and
the depth from which the chosen token stays on top. Direct logit attribution splits the chosen
token's logit exactly over the depths, through the final norm with its scale frozen.

Greedy by default (the tokens of model.generate(do_sample=False, num_beams=1)); with --target,
teacher forcing: one pass, the target token is the one followed at each position. T5- and
BART-family models (incl. Marian, mBART, Pegasus); other families are refused.

--heads splits each attention depth's push over its heads (each head's output through its slice
of the output projection, then the same frozen path), and each head's part over the keys it read
(attention weight x value vector; the value projection's bias is kept apart). Post-norm models
(BART, Marian) take the sublayer's LayerNorm with its 1/std frozen; what it made of the stream
it was given is its own part. --watch reads rival tokens at every depth beside the chosen one.
--encoder-layer L lets the decoder read encoder layer L's output instead of the last
(DecoderLens), through the encoder's final norm where it has one; the run (greedy, or
--target) and its lens read from it.

Examples:

\b
  t5peek lens -m demo "translate English to Spanish: the red house is small"
  t5peek lens -m demo "translate English to Spanish: the red house" \\
      --step 1
  t5peek lens -m demo "translate English to German: the house is small" \\
      --target "das Haus ist klein" --top-k 5
  t5peek lens -m demo "translate English to Spanish: the red house" \\
      --step 1 --heads --watch madre
  t5peek lens -m demo "translate English to Spanish: the red house" \\
      --encoder-layer 0
  t5peek lens -m demo "translate English to French: the cat" --json
  t5peek lens -m demo "translate English to French: the cat" --svg lens.svg
"""


@cli_command
def lens_command(
    prompt: Annotated[str, typer.Argument(help="The text to feed the encoder.", show_default=False,
                                          metavar="PROMPT")],
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Teacher forcing: the target text the "
                                                  "decoder reads at once; its tokens are the ones followed.")] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", "-n", help="Greedy generation: stop "
                                                          "after this many new tokens (or at the end-of-sequence "
                                                          "token). [default: 8]", show_default=False)] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Tokens kept per depth, shown with --step and in --json "
                                       "(1 to 100).")] = 3,
    step: Annotated[Optional[int], typer.Option("--step", "-s", help="Show one step in detail: every depth with its "
                                                "top-k, the chosen token's rank and probability, and its push.",
                                                show_default=False)] = None,
    heads: Annotated[bool, typer.Option("--heads", help="Split each self- and cross-attention depth's push over "
                                        "its heads and each head's over the keys it read; show how much of each "
                                        "step's push came from the source (cross-attention) and how much from the "
                                        "decoder's own prefix (self-attention), and with --step the strongest "
                                        "heads.")] = False,
    watch: Annotated[Optional[list[str]], typer.Option("--watch", help="A rival token to follow at every "
                                                       "depth (rank and probability), a vocabulary string or #ID; "
                                                       "repeat for more (up to 10).", show_default=False,
                                                       metavar="TOKEN")] = None,
    encoder_layer: Annotated[Optional[int], typer.Option("--encoder-layer", help="DecoderLens: the decoder "
                                                         "reads the output of this encoder layer (0 is the first), "
                                                         "through the encoder's final norm where the family has "
                                                         "one, instead of the last; greedy generation (or "
                                                         "--target) runs on it. [default: the last]",
                                                         show_default=False)] = None,
    svg: Annotated[Optional[str], typer.Option("--svg", help="Write the depth x step grid of top-1 tokens (shaded "
                                               "by the chosen token's probability) as a standalone SVG chart to "
                                               "this file, replaced whole.", metavar="FILE",
                                               show_default=False)] = None,
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
    from t5peek.commands.generate import check_html_target, check_svg_target, write_report, write_svg_chart
    from t5peek.lens.run import DEFAULT_NEW_TOKENS, LensRequest, check_step
    from t5peek.render.lens import render_lens

    check_prompt_is_not_a_model(prompt, model is not None, "lens")
    request = LensRequest(prompt, target, max_new_tokens, top_k, heads, tuple(watch or ()), encoder_layer)
    if target is None:
        new_tokens = max_new_tokens or DEFAULT_NEW_TOKENS
        check_step(step, new_tokens, f"a run of --max-new-tokens {new_tokens}")
    svg_target = check_svg_target(svg)
    html_target = check_html_target(html)
    out = Output(json, "lens")
    peek = open_model(model_name(None, model), out, revision=revision, offline=offline, refresh=refresh,
                      device=device, dtype=dtype, allow_pickle=allow_pickle, force=force, device_map=device_map,
                      max_memory=max_memory)
    run = peek.run(request)
    check_step(step, len(run.steps), f"this run ({run.stop_reason})" if target is None else "the target")
    write_svg_chart(run, svg_target, out)
    write_report(run, html_target, out)
    out.emit(run, lambda record, console: render_lens(record, console, step))
