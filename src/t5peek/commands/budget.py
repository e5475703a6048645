"""t5peek budget [MODEL]"""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from t5peek.options import (DebugOpt, Dtype, DtypeOpt, JsonOpt, MaxMemoryOpt, ModelArg, ModelOpt, OfflineOpt,
                            RefreshOpt, RevisionOpt, model_name, open_model)
from t5peek.kinds import Mode, Optimizer
from t5peek.commands.generate import HtmlOpt, check_html_target, write_report
from t5peek.output import Output, cli_command
from t5peek.placement import parse_max_memory

HELP = """How much memory and compute a model needs: to generate, or for one fine-tuning step.

Read from config.json and the safetensors headers only (a few KB), so an 11B model is budgeted in a
second without its weights. Each row says how its number is made and which modules it comes from:
the weights, the encoder output, the cross-attention cache (filled once) and the self-attention cache
(one position per new token), the logits; for training, the activations saved for backward per block,
with or without gradient checkpointing, the gradients, the optimizer state and float32 master weights;
the FLOPs of an encoder pass, of one decoder step and of a training step. The last line says whether it
fits in the memory available (the CPU's, or with --device cuda the GPU's).

Examples:

\b
  t5peek budget -m demo --batch 8 --source 64 --target 32
  t5peek budget google/flan-t5-xxl --dtype bfloat16 --num-beams 4
  t5peek budget google/flan-t5-base --mode train --batch 16 --source 512 \\
      --target 128 --optimizer adafactor --gradient-checkpointing
  t5peek budget google/flan-t5-xxl --max-memory 0=40GiB --max-memory cpu=64GB
"""



class Where(str, enum.Enum):
    cpu = "cpu"
    cuda = "cuda"


@cli_command
def budget_command(
    model_arg: ModelArg = None,
    batch: Annotated[int, typer.Option("--batch", "-b", help="Sequences per batch.")] = 1,
    source: Annotated[int, typer.Option("--source", "-s", help="Source (encoder) tokens per sequence.")] = 512,
    target: Annotated[int, typer.Option("--target", "-t", help="Target tokens: new tokens to generate, or the "
                                        "labels of a training step.")] = 128,
    mode: Annotated[Mode, typer.Option("--mode", help="generate (inference) or train (one fine-tuning step).",
                                             case_sensitive=False)] = Mode.generate,
    num_beams: Annotated[int, typer.Option("--num-beams", "-k", help="Beams of generate(): caches and logits "
                                           "grow with batch × beams.")] = 1,
    optimizer: Annotated[Optimizer, typer.Option("--optimizer", help="Training: whose state to count.",
                                                       case_sensitive=False)] = Optimizer.adamw,
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing", help="Training: keep only "
                                                         "each block's input, recompute in backward.")] = False,
    device: Annotated[Where, typer.Option("--device", help="Where it would run: whose free memory the fit "
                                          "compares with (dropout masks take 1 byte per element on CUDA).",
                                          case_sensitive=False)] = Where.cpu,
    dtype: DtypeOpt = Dtype.auto,
    max_memory: MaxMemoryOpt = None,
    html: HtmlOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    refresh: RefreshOpt = False,
    debug: DebugOpt = False,
    json: JsonOpt = False,
) -> None:
    from t5peek.render.budget import render_budget

    html_target = check_html_target(html)
    out = Output(json, "budget")
    memory = parse_max_memory(max_memory)
    peek = open_model(model_name(model_arg, model), out, revision=revision, offline=offline, refresh=refresh,
                      dtype=dtype)
    report = peek.budget(batch=batch, source=source, target=target, mode=Mode(mode).value,
                         num_beams=num_beams, optimizer=Optimizer(optimizer).value,
                         gradient_checkpointing=gradient_checkpointing, device=Where(device).value,
                         plan_memory=memory)
    write_report(report, html_target, out)
    out.emit(report, render_budget)
