"""trace_forward and the two views of the decoder: teacher forcing (training) and greedy generation with a KV
cache (inference)."""

from __future__ import annotations

from t5peek import anatomy
from t5peek.kinds import PhaseKind, View
from t5peek.probe.stepping import decoder_steps
from t5peek.seq2seq import eos_ids, shift_right, token_strings
from t5peek.trace.plan import hook_plan
from t5peek.trace.probes import _layer_shapes
from t5peek.trace.records import BlockDesign, DecodeStep, NonFinite, TraceReport
from t5peek.trace.tracer import Tracer


def trace_forward(model, input_ids, attention_mask=None, *, depth: int | None = None, target_ids=None,
                  steps: int = 3, stats: bool = False, tokenizer=None, model_name: str | None = None,
                  prompt: str = "", target: str | None = None, explain: bool = False,
                  stop_at_eos: bool = True, global_attention_mask=None) -> TraceReport:
    """Run the model under hooks and return what ran.

    With `target_ids` (the labels, shape [1, T]): teacher forcing, one forward pass of encoder and decoder.
    Without: the encoder once, then up to `steps` greedy decoder steps with a KV cache.
    Usable without the CLI (benchmarks call it directly); the model should be loaded with eager attention
    for attention weight shapes to exist. `stop_at_eos=False` runs all `steps` even past end-of-sequence.
    `global_attention_mask` (LED only, shape [1, S], 1 = global) gives those tokens global attention in the encoder;
    the encoder's attention records then hold the global weights too.
    """
    import torch

    anatomy.check_supported(getattr(model.config, "model_type", None), "trace", model_name or type(model).__name__)
    if depth is not None and depth < 0:
        raise ValueError("depth must be 0 or more")
    if steps < 0:
        raise ValueError("steps must be 0 or more")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    attn_impl = str(getattr(model.config, "_attn_implementation", None) or "default")
    notes: list[str] = []
    if attn_impl != "eager":
        notes.append(f"attention runs as '{attn_impl}', which returns no attention weights: load the model with "
                     "attn_implementation='eager' to see their shapes.")
    param = next(model.parameters(), None)
    dtype = str(param.dtype).removeprefix("torch.") if param is not None else "?"
    device = str(input_ids.device)  # where it runs: offloaded weights sit on "meta" until their module runs
    extra: dict = {}
    encoder_extra = {} if global_attention_mask is None else {"global_attention_mask": global_attention_mask}
    with Tracer(model, depth=depth, stats=stats) as tracer, torch.no_grad():
        if target_ids is not None:
            extra = _teacher_forcing(model, tracer, input_ids, attention_mask, target_ids, tokenizer, encoder_extra)
        else:
            extra = _generation(model, tracer, input_ids, attention_mask, steps, tokenizer, stop_at_eos,
                                encoder_extra)
            if steps and len(extra["steps"]) < steps:
                notes.append(f"generation stopped at the end-of-sequence token after {len(extra['steps'])} "
                             f"step(s) of {steps} asked.")
    first_bad = _first_nonfinite(tracer.phases) if stats else None
    ids = [int(i) for i in input_ids[0].tolist()]
    return TraceReport(model=model_name or type(model).__name__, model_class=type(model).__name__,
                       view=View.TEACHER_FORCING if target_ids is not None else View.GENERATION, depth=depth,
                       attention_implementation=attn_impl, dtype=dtype, device=device, prompt=prompt,
                       source_tokens=token_strings(tokenizer, ids), source_ids=tuple(ids), phases=tuple(tracer.phases),
                       target=target, stats=stats, first_nonfinite=first_bad, explain=explain,
                       notes=tuple(notes), design=_design(model, depth, tracer.norm_first), **extra)


def _teacher_forcing(model, tracer: Tracer, input_ids, attention_mask, labels, tokenizer,
                     encoder_extra: dict | None = None) -> dict:
    import warnings

    decoder_input_ids = shift_right(model, labels)
    with tracer.phase("encoder + decoder, one forward pass (teacher forcing)", PhaseKind.FORWARD), \
            warnings.catch_warnings():
        # EncoderDecoderModel warns whenever decoder_input_ids come with labels; here they are its own shift.
        warnings.filterwarnings("ignore", message="Version v4.12.0 introduces", category=FutureWarning)
        output = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                       labels=labels, use_cache=False, **(encoder_extra or {}))
    label_ids = [int(i) for i in labels[0].tolist()]
    dec_ids = [int(i) for i in decoder_input_ids[0].tolist()]
    predicted = [int(i) for i in output.logits[0].argmax(-1).tolist()]
    loss = output.loss
    return dict(labels=tuple(label_ids), label_tokens=token_strings(tokenizer, label_ids),
                decoder_input_ids=tuple(dec_ids), decoder_input_tokens=token_strings(tokenizer, dec_ids),
                predicted_ids=tuple(predicted), predicted_tokens=token_strings(tokenizer, predicted),
                loss=float(loss) if loss is not None else None)


def _generation(model, tracer: Tracer, input_ids, attention_mask, steps: int, tokenizer,
                stop_at_eos: bool = True, encoder_extra: dict | None = None) -> dict:
    import torch

    with tracer.phase("encoder, runs once", PhaseKind.ENCODER):
        encoder_outputs = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask, return_dict=True,
                                              **(encoder_extra or {}))
    eos = eos_ids(model)
    decoded: list[DecodeStep] = []
    generated: list[int] = []
    before: tuple[int, ...] = ()

    def phase(step: int):
        return tracer.phase(f"decoder step {step}", PhaseKind.STEP, step=step)

    for passed in decoder_steps(model, encoder_outputs, attention_mask, steps, around=phase):
        step, cache = passed.step, passed.cache
        probabilities = torch.softmax(passed.output.logits[0, -1].float(), dim=-1)
        chosen = int(probabilities.argmax())
        kv_calls = tracer.phases[-1].cross_kv_projections
        decoded.append(DecodeStep(step=step, input_id=passed.fed_id,
                                  input_token=token_strings(tokenizer, [passed.fed_id])[0],
                                  position=before[0] if before else 0, self_cache_before=before,
                                  self_cache_after=_lengths(cache.self_attention_cache),
                                  cross_cache=_lengths(cache.cross_attention_cache), cross_kv_projections=kv_calls,
                                  next_id=chosen, next_token=token_strings(tokenizer, [chosen])[0],
                                  next_probability=float(probabilities[chosen]), eos=chosen in eos))
        before = _lengths(cache.self_attention_cache)
        generated.append(chosen)
        if stop_at_eos and chosen in eos:
            break
    text = tokenizer.decode(generated, skip_special_tokens=True) if tokenizer is not None and generated else None
    return dict(steps=tuple(decoded), generated_ids=tuple(generated), generated_text=text)


def _design(model, depth: int | None, norm_first: bool | None) -> BlockDesign:
    """What the config says of the feed-forward, and what the first block's norms are and where they ran."""
    import torch

    config = model.config
    projection = str(_config_value(config, "feed_forward_proj") or "")
    gated = bool(_config_value(config, "is_gated_act")) or projection.startswith("gated-")
    norm = next((ref() for ref, is_norm in hook_plan(model, depth).first_block if is_norm), None)
    return BlockDesign(gated_feed_forward=gated,
                       activation=_config_value(config, "dense_act_fn", "activation_function", "hidden_act"),
                       norm=type(norm).__name__ if norm is not None else None,
                       rms_norm=norm is not None and not isinstance(norm, torch.nn.LayerNorm)
                       and getattr(norm, "bias", None) is None,
                       pre_norm=norm_first)


def _config_value(config, *names: str):
    """The first of `names` set in the config, or in its decoder's (EncoderDecoderModel nests one per stack)."""
    for source in (config, getattr(config, "decoder", None)):
        for name in names:
            value = getattr(source, name, None)
            if value is not None and not callable(value):
                return value
    return None


def _lengths(cache) -> tuple[int, ...]:
    return tuple(layer.length for layer in _layer_shapes(cache))


def _first_nonfinite(phases) -> NonFinite | None:
    """The record whose output went non-finite first, by completion order (an inner module before its block)."""
    best = None
    for phase in phases:
        for record in phase.records:
            for name, stat in (record.stats or {}).items():
                if not stat.finite and (best is None or record.finished < best[0]):
                    best = (record.finished, NonFinite(phase.name, record.module, record.cls, name, stat.nan,
                                                       stat.inf))
    return best[1] if best else None
