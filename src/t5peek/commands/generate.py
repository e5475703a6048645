"""t5peek generate PROMPT [-m MODEL]"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from t5peek.options import (AllowPickleOpt, DebugOpt, Device, DeviceMapOpt, DeviceOpt, Dtype, DtypeOpt, JsonOpt,
                            MaxMemoryOpt, ModelOpt, OfflineOpt, RefreshOpt, RevisionOpt, SkipMemoryCheckOpt,
                            check_prompt_is_not_a_model, model_name, open_model)
from t5peek.output import Output, cli_command

HELP = """Decode PROMPT step by step: at each step the decoder input so far, the top-k next tokens (id,
token, raw logit, probability after the logits processors), the token chosen and by which rule, and
where the decoder looked in the source (cross-attention). At the end: the text, and the whole
cross-attention map (generated tokens x source tokens) as a heatmap.

--self adds the self-attention maps of the same layer: the encoder's (source x source) and the
decoder's causal triangle (each step over the decoder input so far). --occlusion replaces each
source token by the pad token in turn, re-scores the same output, and names per generated token the
source token whose removal lowers its probability most, beside the one it attended to most:
attention is not explanation, measured. Both follow the T5 and BART families.

--force STEP=TOKEN puts TOKEN (a vocabulary string, or #ID) in at decoding step STEP instead of the
model's choice, then goes on with the same settings: the original and the branch are shown side by
side from STEP on (greedy search and sampling; --json's output_ids is the branch, original_ids the
run without it). The memory check's override is --skip-memory-check on this command.

The tokens and scores are the ones model.generate() produces with the same settings. Settings come from
the model's generation_config, then (only with --task-params, as model.generate() applies none of them)
from the task_specific_params of the task whose prefix PROMPT starts with (e.g. 'translate English to
German: '), then from the options below; the header says which came from where. Steps print as they
are computed; Ctrl-C keeps them.

Examples:

\b
  t5peek generate -m demo "translate English to German: the house is small"
  t5peek generate "summarize: ..." --num-beams 4 --max-new-tokens 30
  t5peek generate -m demo "translate English to German: I love fish" \\
      --sample --temperature 0.7 --seed 1
  t5peek generate -m demo "translate English to German: the cat" \\
      --all-layers --html report.html
  t5peek generate -m demo "translate English to German: the cat" \\
      --svg attention.svg
  t5peek generate -m demo "translate English to Spanish: the red house" \\
      --self --occlusion
  t5peek generate -m demo "translate English to Spanish: the red house" \\
      --force 2=azul
"""


@cli_command
def generate_command(
    prompt: Annotated[str, typer.Argument(help="The text to feed the encoder.", show_default=False,
                                          metavar="PROMPT")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many candidate next tokens to show per "
                                       "step (display only; the sampler's own top_k comes from the "
                                       "generation config).")] = 5,
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", "-n", help="Stop after this many "
                                                          "new tokens: 1 to 2,048, fewer with beams (see "
                                                          "--num-beams) [default: from the model's settings]",
                                                          show_default=False)] = None,
    num_beams: Annotated[Optional[int], typer.Option("--num-beams", "-b", help="Beam search with this many "
                                                     "beams, 1 to 64; each step shows every beam with its score "
                                                     "and parent. Every beam's tokens are kept at every step, so "
                                                     "more beams allow fewer new tokens: up to 1,023 with 4 "
                                                     "beams, 511 with 16, 255 with 64.", show_default=False)] = None,
    sample: Annotated[Optional[bool], typer.Option("--sample/--greedy", help="Sample the next token "
                                                   "(torch.multinomial), or force greedy search with one beam "
                                                   "[default: from the model's settings]",
                                                   show_default=False)] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", help="Sampling temperature (> 0).",
                                                         show_default=False)] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", help="Nucleus sampling: keep the smallest set of "
                                                   "tokens whose probability reaches this (0 < p <= 1).",
                                                   show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed torch's RNG before decoding, for a "
                                                "repeatable sample (one is drawn and shown when sampling "
                                                "without it).", show_default=False)] = None,
    layer: Annotated[Optional[int], typer.Option("--layer", "-l", help="Decoder layer whose cross-attention "
                                                 "is shown, from 0 [default: the last]",
                                                 show_default=False)] = None,
    all_layers: Annotated[bool, typer.Option("--all-layers", help="Also show each decoder layer's strongest "
                                             "source token at every step.")] = False,
    html: Annotated[Optional[str], typer.Option("--html", help="Write a self-contained HTML report (the "
                                                "cross-attention map per layer and head, the top-k per step) "
                                                "to this file, replaced whole; a FIFO or device such as "
                                                "/dev/stdout is written as it is.", metavar="FILE",
                                                show_default=False)] = None,
    svg: Annotated[Optional[str], typer.Option("--svg", help="Write the cross-attention map (generated x source "
                                               "tokens, with each step's chosen token and its probability) as a "
                                               "standalone SVG chart to this file, replaced whole.", metavar="FILE",
                                               show_default=False)] = None,
    task_params: Annotated[bool, typer.Option("--task-params", help="When PROMPT starts with a task prefix of the "
                                              "config's task_specific_params, apply that task's settings (e.g. "
                                              "num_beams), as model.generate(**task_specific_params) would; "
                                              "model.generate() alone does not.")] = False,
    self_attention: Annotated[bool, typer.Option("--self", help="Also show the self-attention maps of --layer "
                                                 "(mean of heads): the encoder's, source x source, and the "
                                                 "decoder's causal triangle. T5 and BART families.")] = False,
    occlusion: Annotated[bool, typer.Option("--occlusion", help="Replace each source token by the pad token in "
                                            "turn and re-score the output: per generated token, the source token "
                                            "whose removal lowers its probability most, beside the attention "
                                            "argmax. One batched pass per source token; T5 and BART "
                                            "families.")] = False,
    force_token: Annotated[Optional[str], typer.Option("--force", help="Branch: put TOKEN (a vocabulary string or "
                                                       "#ID) in at step STEP, then decode on with the same settings.",
                                                       show_default=False, metavar="STEP=TOKEN")] = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    refresh: RefreshOpt = False,
    device: DeviceOpt = Device.cpu,
    dtype: DtypeOpt = Dtype.auto,
    allow_pickle: AllowPickleOpt = False,
    device_map: DeviceMapOpt = None,
    max_memory: MaxMemoryOpt = None,
    skip_memory_check: SkipMemoryCheckOpt = False,
    debug: DebugOpt = False,
    json: JsonOpt = False,
) -> None:
    from t5peek.generate.run import GenerateRequest, parse_force

    check_prompt_is_not_a_model(prompt, model is not None, "generate")
    request = GenerateRequest(prompt, max_new_tokens, num_beams, sample, temperature, top_p, seed, top_k, layer,
                              keep_heads=html is not None, task_params=task_params, self_attention=self_attention,
                              occlusion=occlusion, force=parse_force(force_token))
    target = check_html_target(html)
    svg_target = check_svg_target(svg)
    out = Output(json, "generate")
    peek = open_model(model_name(None, model), out, revision=revision, offline=offline, refresh=refresh,
                      device=device, dtype=dtype, allow_pickle=allow_pickle, force=skip_memory_check,
                      device_map=device_map,
                      max_memory=max_memory)
    if json:
        run = peek.run(request)
        write_report(run, target, out)
        write_svg_chart(run, svg_target, out)
        out.emit(run, render=None)
    else:
        run = _stream(out, peek, request, all_layers)
        write_report(run, target, out)
        write_svg_chart(run, svg_target, out)


def _stream(out: Output, peek, request, all_layers: bool):
    """Print the plan, then each step as it is computed, then the summary. When stdout is not a terminal (the
    steps go to a file or a pipe), a progress line on stderr says how far decoding has got."""
    import sys

    from t5peek.generate import BeamStep
    from t5peek.render.occlusion import render_occlusion
    from t5peek.render.self_attention import render_self_attention
    from t5peek.render.steps import render_beam_step, render_branch, render_plan, render_step, render_summary

    plan_seen = {}

    def on_start(plan) -> None:
        plan_seen["plan"] = plan
        render_plan(plan, out.console, peek.name)

    def on_step(step) -> None:
        if isinstance(step, BeamStep):
            render_beam_step(step, out.console)
        else:
            render_step(step, out.console, plan_seen["plan"], all_layers)
        out.console.file.flush()

    to_terminal = getattr(sys.stdout, "isatty", lambda: False)()
    run = peek.run(request, on_start=on_start, on_step=on_step, progress_steps=not to_terminal)
    render_summary(run, out.console)
    render_branch(run, out.console)
    render_self_attention(run, out.console)
    render_occlusion(run, out.console)
    return run


HtmlOpt = Annotated[Optional[str], typer.Option("--html", help="Also write the view as a self-contained HTML page "
                                               "(offline, its data the --json document) to this file, replaced "
                                               "whole; a FIFO or device such as /dev/stdout is written as it is.",
                                               metavar="FILE", show_default=False)]


def check_html_target(html: str | None):
    """Where the report goes, checked before any weights load (see t5peek.outfile)."""
    if html is None:
        return None
    from t5peek.outfile import check_target

    return check_target(html, "--html")


def write_report(record, target, out: Output) -> None:
    """The page of `record` (the view of `out.command`: the same document as --json) to `target`, if any."""
    if target is None:
        return
    from t5peek.outfile import write_target
    from t5peek.render.pages import page_for

    write_target(target, page_for(out.command, record).encode("utf-8"))
    out.note(f"wrote the HTML report to {target.path}")


def check_svg_target(svg: str | None):
    if svg is None:
        return None
    from t5peek.outfile import check_target

    return check_target(svg, "--svg")


def write_svg_chart(run, target, out: Output) -> None:
    """The chart of `run` (a DecodeRun or a LensRun), written by the rules of t5peek.outfile."""
    if target is None:
        return
    from t5peek.outfile import write_target
    from t5peek.render.svg import render_svg

    write_target(target, render_svg(run).encode("utf-8"))
    out.note(f"wrote the SVG chart to {target.path}")
