"""t5peek trace PROMPT [-m MODEL]"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from t5peek.options import (AllowPickleOpt, DebugOpt, DeviceMapOpt, DeviceOpt, Device, Dtype, DtypeOpt, ForceOpt,
                            JsonOpt, MaxMemoryOpt, ModelOpt, OfflineOpt, RefreshOpt, RevisionOpt,
                            check_prompt_is_not_a_model, common_options)
from t5peek.output import Output, run_command

HELP = """Run PROMPT through the model and show every module as it runs: input and output shapes,
dtype, device and time, the attention weight shape of each attention module, and the KV cache.

Two decoder views. Without --target: generation (inference), the encoder once, then the decoder one
new token per step (greedy) with a KV cache; the self-attention cache grows by one position per
step, cross-attention keys/values are computed at step 0 and reused. With --target: teacher forcing
(training), the whole target goes in at once, shifted right, under the causal mask.

Attention runs in eager mode, so that the attention weights exist to be measured.

Examples:

  t5peek trace -m demo "translate English to German: the house is small"

  t5peek trace -m demo "translate English to German: the house is small" --target "das Haus ist klein"

  t5peek trace -m facebook/bart-base "a b c" --depth 5 --stats --json
"""

DEFAULT_STEPS = 3
DEPTH_HELP = ("How deep to hook, counted from the model root as in `t5peek arch --depth`: the model is 0, "
              "each module below adds 1, ModuleList containers add nothing. T5: encoder 1, "
              "encoder.block.0 2, block.0.layer.0 3, layer.0.SelfAttention 4, SelfAttention.q 5. BART: "
              "model 1, model.encoder 2, encoder.layers.0 3, layers.0.self_attn 4, self_attn.q_proj 5. "
              "Default: the block view, each block with its attention, feed-forward and norm sublayers.")


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
    def body() -> None:
        from dataclasses import replace

        from t5peek import anatomy, loading, placement
        from t5peek.errors import UsageError
        from t5peek.render.trace import render_trace
        from t5peek.trace import trace_forward

        common = common_options(None, model, revision, offline, device, dtype, allow_pickle, debug, json, refresh)
        _check_arguments(prompt, target, depth, steps)
        n_steps = DEFAULT_STEPS if steps is None else steps
        check_prompt_is_not_a_model(prompt, model is not None, "trace")
        memory = placement.parse_max_memory(max_memory)
        out = Output(common.json, common.debug)
        resolved = loading.resolve_model(common.model, common.revision, common.offline, common.refresh)
        for warning in resolved.warnings:
            out.warn(warning)
        raw = loading.read_config(resolved)
        anatomy.check_supported(raw["model_type"], "trace", common.model)
        loading.quiet_libraries()

        tokenizer = None
        if resolved.repo_id is None:  # local files: check the length before loading any weights
            with out.progress("Loading the tokenizer…"):
                tokenizer = loading.load_tokenizer(resolved)
            encoded = _encode(tokenizer, prompt, target, raw, n_steps, common.model, out.warn)
        with out.progress(f"Loading the weights of {common.model}…"):
            loaded = loading.load_model(resolved, device=common.device, dtype=common.dtype,
                                        allow_pickle=common.allow_pickle, eager_attention=True,
                                        with_tokenizer=tokenizer is None, force=force, device_map=device_map,
                                        max_memory=memory, warn=out.warn)
        if tokenizer is None:
            tokenizer = loaded.tokenizer
            encoded = _encode(tokenizer, prompt, target, raw, n_steps, common.model, out.warn)
        input_ids, attention_mask, labels = encoded

        with out.progress("Running the model under hooks…"):
            report = trace_forward(loaded.model, input_ids.to(loaded.device), attention_mask.to(loaded.device),
                                   depth=depth, target_ids=None if labels is None else labels.to(loaded.device),
                                   steps=n_steps, stats=stats, tokenizer=tokenizer, model_name=common.model,
                                   prompt=prompt, target=target, explain=explain)
        notes = ["attention was loaded in eager mode (attn_implementation='eager') so that attention weights "
                 "exist; sdpa or flash attention compute the same result without them."]
        if loaded.device != "cpu" and not stats:
            notes.append(f"times on {loaded.device} are host-side: kernels run asynchronously and the trace "
                         "does not wait for them.")
        split = getattr(loaded.model, "hf_device_map", None)
        if split and len(set(split.values())) > 1:
            by_device: dict[str, list[str]] = {}
            for module_name, where in split.items():
                by_device.setdefault(str(where), []).append(module_name)
            notes.append("split by accelerate: " + "; ".join(f"{where}: {', '.join(names)}" for where, names in
                                                             by_device.items())
                         + ". Offloaded modules run on the CPU, their weights brought in as they run.")
        if report.view == "generation":
            notes.append("greedy = the highest-scoring token at each step, from the raw logits (generate() may "
                         "also apply forced or banned tokens from the generation config).")
        report = replace(report, notes=tuple(notes) + report.notes)
        out.emit(report.to_json() if common.json else report, render_trace)

    run_command(debug, body)


def _check_arguments(prompt: str, target: str | None, depth: int | None, steps: int | None) -> None:
    from t5peek.errors import UsageError

    if not prompt or not prompt.strip():
        raise UsageError("PROMPT is empty; give the text to trace, e.g. t5peek trace \"the house is small\".")
    if target is not None and not target.strip():
        raise UsageError("--target is empty; give the target text, or leave --target out for generation.")
    if depth is not None and depth < 0:
        raise UsageError(f"--depth must be 0 or more (got {depth}); 0 is the model itself.")
    if steps is not None and target is not None:
        raise UsageError("--steps counts generation steps; with --target the decoder reads the whole target at "
                         "once, so give one or the other.")


def _encode(tokenizer, prompt: str, target: str | None, raw_config: dict, steps: int, name: str, warn):
    """Token ids for the prompt (and the labels for --target), checked against the model's positions."""
    from t5peek import seq2seq

    encoded = tokenizer(prompt, return_tensors="pt")
    input_ids = encoded["input_ids"]
    attention_mask = encoded.get("attention_mask")
    if attention_mask is None:
        import torch

        attention_mask = torch.ones_like(input_ids)
    seq2seq.check_prompt(raw_config, name, input_ids.shape[-1], tokenizer, warn)
    labels = None
    if target is not None:
        labels = tokenizer(text_target=target, return_tensors="pt")["input_ids"]
        seq2seq.check_target(raw_config, name, labels.shape[-1], tokenizer, warn)
    else:
        seq2seq.check_new_tokens(raw_config, name, steps, "--steps", tokenizer, warn)
    return input_ids, attention_mask, labels
