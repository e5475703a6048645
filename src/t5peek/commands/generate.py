"""t5peek generate PROMPT [-m MODEL]"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from t5peek.options import (AllowPickleOpt, DebugOpt, DeviceMapOpt, DeviceOpt, Device, Dtype, DtypeOpt, ForceOpt,
                            JsonOpt, MaxMemoryOpt, ModelOpt, OfflineOpt, RefreshOpt, RevisionOpt,
                            check_prompt_is_not_a_model, common_options)
from t5peek.output import Output, run_command

HELP = """Decode PROMPT step by step: at each step the decoder input so far, the top-k next tokens (id,
token, raw logit, probability after the logits processors), the token chosen and by which rule, and
where the decoder looked in the source (cross-attention). At the end: the text, and the whole
cross-attention map (generated tokens x source tokens) as a heatmap.

The tokens and scores are the ones model.generate() produces with the same settings. Settings come from
the model's generation_config, then from task_specific_params when PROMPT starts with a task prefix
(e.g. 'translate English to German: '), then from the options below; the header says which came from
where. Steps print as they are computed; Ctrl-C keeps them.

Examples:

  t5peek generate -m demo "translate English to German: the house is small"

  t5peek generate "summarize: ..." --num-beams 4 --max-new-tokens 30

  t5peek generate -m demo "translate English to German: I love fish" --sample --temperature 0.7 --seed 1

  t5peek generate -m demo "translate English to German: the cat" --all-layers --html report.html
"""


def generate_command(
    prompt: Annotated[str, typer.Argument(help="The text to feed the encoder.", show_default=False,
                                          metavar="PROMPT")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many candidate next tokens to show per "
                                       "step (display only; the sampler's own top_k comes from the "
                                       "generation config).")] = 5,
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", "-n", help="Stop after this many "
                                                          "new tokens [default: from the model's settings]",
                                                          show_default=False)] = None,
    num_beams: Annotated[Optional[int], typer.Option("--num-beams", "-b", help="Beam search with this many "
                                                     "beams; each step shows every beam with its score and "
                                                     "parent.", show_default=False)] = None,
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
    html: Annotated[Optional[Path], typer.Option("--html", help="Write a self-contained HTML report (the "
                                                 "cross-attention map per layer and head, the top-k per step).",
                                                 show_default=False, dir_okay=False)] = None,
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

        from t5peek import anatomy, loading, placement, seq2seq
        from t5peek.errors import UsageError

        memory = placement.parse_max_memory(max_memory)
        check_options(prompt, top_k, max_new_tokens, num_beams, sample, temperature, top_p, layer, html)
        check_prompt_is_not_a_model(prompt, model is not None, "generate")
        common = common_options(None, model, revision, offline, device, dtype, allow_pickle, debug, json, refresh)
        out = Output(common.json, common.debug)
        resolved = loading.resolve_model(common.model, common.revision, common.offline, common.refresh)
        for warning in resolved.warnings:
            out.warn(warning)
        raw = loading.read_config(resolved)
        anatomy.check_supported(raw["model_type"], "generate", common.model)
        shown_top_k = check_against_config(raw, common.model, top_k, max_new_tokens, layer, out)

        # The tokenizer comes before the weights, so that a prompt too long for the model fails fast.
        with out.progress(f"Loading {common.model}…"):
            loading.quiet_libraries()
            downloaded = loading.download_weights(resolved, common.allow_pickle)
            tokenizer = loading.load_tokenizer(downloaded)
        encoded = tokenizer(prompt, return_tensors="pt")
        seq2seq.check_prompt(raw, common.model, encoded["input_ids"].shape[1], tokenizer, out.warn)
        if max_new_tokens is not None:
            seq2seq.check_new_tokens(raw, common.model, max_new_tokens, "--max-new-tokens", tokenizer, out.warn)
        with out.progress(f"Loading the weights of {common.model}…"):
            loaded = loading.load_model(downloaded, device=common.device,
                                        dtype=common.dtype, allow_pickle=common.allow_pickle, eager_attention=True,
                                        with_tokenizer=False, force=force, device_map=device_map,
                                        max_memory=memory, warn=out.warn)

        requested, seed_used, seed_source = requested_settings(loaded.model, raw, prompt, max_new_tokens,
                                                               num_beams, sample, temperature, top_p, seed, out)
        from t5peek.steps import decode, resolve_settings

        settings = resolve_settings(raw, prompt, requested, top_k=shown_top_k, seed=seed_used,
                                    seed_source=seed_source, layer=layer, keep_heads=html is not None)
        input_ids = encoded["input_ids"].to(loaded.device)
        attention_mask = encoded["attention_mask"].to(loaded.device) if "attention_mask" in encoded else None
        if common.json:
            run = decode(loaded.model, tokenizer, input_ids, settings, attention_mask=attention_mask)
        else:
            run = _stream(out, loaded.model, tokenizer, input_ids, attention_mask, settings, common.model, prompt,
                          all_layers)
        if html is not None:
            from t5peek.render.html import write_html

            try:
                write_html(run, html, model=common.model, prompt=prompt)
            except OSError as exc:
                raise UsageError(f"Cannot write the HTML report to '{html}': {exc.strerror or exc}.") from exc
            out.note(f"wrote the HTML report to {html}")
        if common.json:
            out.emit(json_record(run, common.model, prompt), lambda record, console: None)

    run_command(debug, body)


def _stream(out: Output, model, tokenizer, input_ids, attention_mask, settings, name: str, prompt: str,
            all_layers: bool):
    """Print the plan, then each step as it is computed, then the summary."""
    from t5peek.render.steps import render_beam_step, render_plan, render_step, render_summary
    from t5peek.steps import BeamStep, decode

    plan_seen = {}

    def on_start(plan) -> None:
        plan_seen["plan"] = plan
        render_plan(plan, out.console, name, prompt)

    def on_step(step) -> None:
        if isinstance(step, BeamStep):
            render_beam_step(step, out.console, plan_seen["plan"])
        else:
            render_step(step, out.console, plan_seen["plan"], all_layers)
        out.console.file.flush()

    run = decode(model, tokenizer, input_ids, settings, on_step=on_step, attention_mask=attention_mask,
                 on_start=on_start)
    render_summary(run, out.console, all_layers)
    return run


def json_record(run, model: str, prompt: str) -> dict:
    """One JSON document: the run without the per-head attention (that goes to --html)."""
    from t5peek.output import to_jsonable

    record = {"model": model, "prompt": prompt, **to_jsonable(run)}
    record.pop("head_attention", None)
    return record


# ----------------------------------------------------------------------------- checks


def check_options(prompt: str, top_k: int, max_new_tokens, num_beams, sample, temperature, top_p, layer,
                  html: Path | None) -> None:
    """Usage errors that need nothing but the options themselves."""
    from t5peek.errors import UsageError

    if not prompt.strip():
        raise UsageError('The prompt is empty: give the text to decode, e.g. "translate English to German: '
                         'the house is small".')
    if top_k <= 0:
        raise UsageError(f"--top-k must be at least 1 (got {top_k}).")
    if max_new_tokens is not None and max_new_tokens <= 0:
        raise UsageError(f"--max-new-tokens must be at least 1 (got {max_new_tokens}).")
    if num_beams is not None and num_beams <= 0:
        raise UsageError(f"--num-beams must be at least 1 (got {num_beams}).")
    if sample is False and num_beams is not None and num_beams > 1:
        raise UsageError(f"--greedy means one beam, but --num-beams {num_beams} asks for beam search.")
    if temperature is not None and not (temperature > 0 and temperature != float("inf")):
        raise UsageError(f"--temperature must be greater than 0 (got {temperature}); for always the top token, "
                         "use --greedy.")
    if top_p is not None and not 0 < top_p <= 1:
        raise UsageError(f"--top-p must be in (0, 1] (got {top_p}).")
    if (temperature is not None or top_p is not None) and sample is False:
        raise UsageError("--temperature and --top-p shape sampling; they do nothing with --greedy.")
    if layer is not None and layer < 0:
        raise UsageError(f"--layer counts decoder layers from 0 (got {layer}).")
    if html is not None:
        parent = html.expanduser().resolve().parent
        if html.expanduser().is_dir():
            raise UsageError(f"--html '{html}' is a folder; give a file name such as report.html.")
        if not parent.is_dir():
            raise UsageError(f"--html '{html}': the folder '{parent}' does not exist.")


def check_against_config(raw: dict, name: str, top_k: int, max_new_tokens, layer, out: Output) -> int:
    """Checks that need only config.json; returns the number of candidates to show."""
    from t5peek import anatomy
    from t5peek.errors import UsageError

    layers = anatomy.config_value(raw, "decoder_layers")
    if layer is not None and isinstance(layers, int) and layer >= layers:
        raise UsageError(f"--layer {layer} is out of range: the decoder of '{name}' has layers 0 to {layers - 1}.")
    vocab = raw.get("vocab_size")
    if isinstance(vocab, int) and top_k > vocab:
        out.warn(f"--top-k {top_k} is more than the vocabulary of {vocab:,} tokens; showing all of them.")
        return vocab
    return top_k


def requested_settings(model, raw: dict, prompt: str, max_new_tokens, num_beams, sample, temperature, top_p,
                       seed, out: Output) -> tuple[dict, int | None, str]:
    """The generate() arguments the options ask for, and the seed to use with where it came from."""
    from t5peek.errors import UsageError
    from t5peek.steps import task_for_prompt

    requested: dict = {}
    if max_new_tokens is not None:
        requested["max_new_tokens"] = max_new_tokens
    if sample is not None:
        requested["do_sample"] = sample
        if sample is False and num_beams is None:
            requested["num_beams"] = 1
    if num_beams is not None:
        requested["num_beams"] = num_beams
    if temperature is not None:
        requested["temperature"] = temperature
    if top_p is not None:
        requested["top_p"] = top_p
    _, task_params = task_for_prompt(raw, prompt)
    sampling = requested.get("do_sample", task_params.get("do_sample", model.generation_config.do_sample))
    if not sampling and (temperature is not None or top_p is not None):
        raise UsageError("--temperature and --top-p shape sampling, which this model does not do by default; "
                         "add --sample.")
    if not sampling:
        if seed is not None:
            out.warn("--seed has no effect without sampling (--sample).")
        return requested, None, "unset"
    if seed is not None:
        return requested, seed, "command line"
    import secrets

    drawn = secrets.randbelow(2**31)
    return requested, drawn, f"drawn at random; --seed {drawn} repeats this run"
