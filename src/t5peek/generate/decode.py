"""`decode()`, the entry point: prepare the settings, run the encoder once, then greedy search and sampling
step by step (`GenerationMixin._sample`) here, or beam search in `beam`."""

from __future__ import annotations

from typing import Callable

from t5peek.errors import UsageError
from t5peek.generate.beam import beam_search
from t5peek.generate.records import Candidate, DecodePlan, DecodeRun, Step
from t5peek.generate.state import _Run, encoder_self_attention, stop_reason
from t5peek.generate.settings import DecodeSettings, prepare, processors_and_criteria, setting_sources
from t5peek.kinds import Rule
from t5peek.probe.hooks import evaluating
from t5peek.seq2seq import TokenNames, decoder_shape, new_cache


def decode(model, tokenizer, input_ids, settings: DecodeSettings | None = None, on_step: Callable | None = None,
           attention_mask=None, on_start: Callable | None = None, force: tuple[int, int] | None = None) -> DecodeRun:
    """Decode `input_ids` (shape (1, n), on the model's device) step by step.

    `force` = (step, token id): at that step the token is taken instead of the rule's choice, and decoding goes
    on from it with the same settings (greedy search and sampling).

    `on_start` gets the `DecodePlan` before the first step. `on_step` is called as each step is computed: with a
    `Step` for greedy search and sampling, with a `BeamStep` for beam search (the path of the final output is
    known only at the end, in `DecodeRun.steps`).
    """
    import torch

    settings = settings or DecodeSettings()
    if input_ids.ndim != 2 or input_ids.shape[0] != 1:
        raise UsageError("decode() follows one prompt at a time: input_ids must have shape (1, n).")
    if input_ids.shape[1] == 0:
        raise UsageError("The prompt is empty after tokenization.")
    device = input_ids.device
    config, strategy, has_default_max_length, notes = prepare(model, settings, device)
    n_layers, n_heads = decoder_shape(model)
    layer = n_layers - 1 if settings.layer is None else settings.layer
    if not 0 <= layer < n_layers:
        raise UsageError(f"--layer {layer} is out of range: this decoder has layers 0 to {n_layers - 1}.")
    head = model.get_output_embeddings()
    vocab_width = head.weight.shape[0] if head is not None else model.config.vocab_size  # the logits' width
    top_k = max(1, min(settings.top_k, vocab_width))

    processors, criteria = processors_and_criteria(model, config, input_ids, tokenizer, device)
    vocab = TokenNames(tokenizer)
    source_ids = tuple(input_ids[0].tolist())
    plan = DecodePlan(strategy, setting_sources(model, settings, config, strategy, has_default_max_length),
                      tuple(type(p).__name__ for p in processors), source_ids, vocab(source_ids), layer, n_layers,
                      n_heads, top_k)
    if on_start is not None:
        on_start(plan)
    state = _Run(model=model, config=config, strategy=strategy, processors=processors, criteria=criteria,
                 vocab=vocab, top_k=top_k, layer=layer, keep_heads=settings.keep_heads, on_step=on_step,
                 source_tokens=plan.source_tokens, self_attention=settings.self_attention)
    encoder_attention = settings.self_attention or settings.keep_heads

    with torch.no_grad(), evaluating(model):
        encoder = model.get_encoder()
        encoder_outputs = encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  output_attentions=encoder_attention, output_hidden_states=False,
                                  return_dict=True)
        encoder_map, encoder_heads = encoder_self_attention(
            encoder_outputs.attentions if encoder_attention else None, input_ids.shape[1], settings.layer,
            settings.self_attention, settings.keep_heads)
        cache = new_cache()
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        if not strategy.is_beam:
            output_ids, stop = _sample_loop(state, encoder_outputs, attention_mask, cache, device, force)
            sequence_score = None
        else:
            output_ids, stop, sequence_score = beam_search(state, encoder_outputs, attention_mask, cache, device)

    return DecodeRun(
        strategy=strategy, settings=plan.settings, processors=plan.processors, source_ids=source_ids,
        source_tokens=plan.source_tokens, layer=layer, decoder_layers=n_layers, heads=n_heads, top_k=top_k,
        steps=tuple(state.steps), output_ids=tuple(output_ids), output_text=vocab.text(output_ids),
        stop_reason=stop, beam_steps=tuple(state.beam_steps), sequence_score=sequence_score,
        head_attention=state.head_attention(), notes=tuple(notes) + tuple(state.notes),
        encoder_self_attention=encoder_map,
        encoder_head_attention=encoder_heads, decoder_head_attention=state.decoder_head_attention(),
    )


def _sample_loop(run: _Run, encoder_outputs, attention_mask, cache, device, force: tuple[int, int] | None = None):
    """GenerationMixin._sample for one sequence: greedy (argmax) or multinomial sampling."""
    import torch

    config = run.config
    pad = config._pad_token_tensor
    has_eos_criteria = any(hasattr(c, "eos_token_id") for c in run.criteria)
    do_sample = bool(config.do_sample)
    rule = run.strategy.rule
    input_ids = config._decoder_start_token_tensor.reshape(1, 1).to(device)
    unfinished = torch.ones(1, dtype=torch.long, device=device)
    next_input = input_ids
    prefix = input_ids[0].tolist()
    step = 0
    while True:
        outputs, cache = run.forward(encoder_outputs, attention_mask, next_input, cache)
        logits = outputs.logits[:, -1].to(copy=True, dtype=torch.float32, device=device)
        scores = run.processors(input_ids, logits)
        ids, top_logits, top_scores, top_probs, probs = run.candidates(logits, scores)
        run.check_finite(step, top_scores[0][0], do_sample)
        if do_sample:  # `probs` is softmax(scores), the very tensor generate() hands torch.multinomial
            next_tokens = torch.multinomial(probs, num_samples=1).squeeze(1)
        else:
            next_tokens = torch.argmax(scores, dim=-1)
        if has_eos_criteria:
            next_tokens = next_tokens * unfinished + pad * (1 - unfinished)
        forced = force is not None and step == force[0]
        if forced:
            next_tokens = torch.full_like(next_tokens, force[1])
        stacked, attention = run.cross_attention(outputs)
        self_stacked, self_shown = run.decoder_self_attention(outputs)
        del outputs
        input_ids = torch.cat([input_ids, next_tokens[:, None]], dim=-1)
        unfinished = unfinished & ~run.criteria(input_ids, None)

        token_id = int(next_tokens[0])
        top = run.row_candidates(ids, top_logits, top_scores, top_probs, 0)
        rank = next((r for r, c in enumerate(top, 1) if c.token_id == token_id), None)
        if rank is not None:
            chosen = top[rank - 1]
        else:
            lg, sc, pr = torch.stack([logits[0, token_id], scores[0, token_id], probs[0, token_id]]).tolist()
            chosen = Candidate(token_id, run.vocab.one(token_id), lg, sc, pr)
        if run.keep_heads:
            run.heads.append(stacked[:, 0].cpu())
            run.self_heads.append(self_stacked[:, 0].cpu())
        record = Step(step=step, input_ids=tuple(prefix), input_tokens=run.vocab(prefix), token_id=token_id,
                      token=chosen.token, rule=Rule.FORCED if forced else rule, chosen=chosen, chosen_rank=rank,
                      top_k=top,
                      cross_attention=tuple(attention.shown[0]), layers=run.focus(attention, 0),
                      self_attention=tuple(self_shown[0]) if self_shown is not None else None)
        run.steps.append(record)
        if run.on_step is not None:
            run.on_step(record)
        prefix.append(token_id)
        step += 1
        if unfinished.max() == 0:
            break
        next_input = input_ids[:, -1:]
    output_ids = prefix
    return output_ids, stop_reason(config, output_ids)
