"""`attribute`: which source tokens (and which earlier output tokens) make the model say its token, by integrated
gradients, next to what the cross-attention and occlusion say about the same position.

The decoder is teacher-forced on the prompt's greedy output, as `patch` does: decoder position T reads the output up
to T and predicts the next output token. Its score is that token's logit (minus the --contrast token's). Integrated
gradients moves every source token's embedding, as the encoder receives it, from the pad token's embedding to its
own (positions are the model's own all along: they are not part of the path); a second integral moves the decoder's
tokens 0..T the same way with the source as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from t5peek import seq2seq, vocab
from t5peek.attribution.embeddings import substitutes
from t5peek.attribution.integrated import FEWEST_STEPS, METHOD, integrated_gradients
from t5peek.attribution.records import AttributionRun
from t5peek.errors import UsageError
from t5peek.interventions import common
from t5peek.interventions.sites import check_family
from t5peek.probe.hooks import hooked
from t5peek.session import RunShape, Session

DEFAULT_STEPS = 256
MAX_STEPS = 1024
GRADIENT_ROWS = 32  # path points per forward and backward pass
INCOMPLETE = 0.01  # of |score - baseline|: a larger completeness error gets a note
NEAR_ZERO = 1e-3  # a completeness error below this is rounding, however small the difference
INCOMPLETE_NOTE = ("the {part} attributions miss {share:.1f}% of score - {baseline}: raise --steps; if that does not "
                   "help, the score jumps somewhere on the path (saturated attention, or a normalisation that the "
                   "baseline itself sits on) and no gradient sees the jump.")
PAD_START_NOTE = ("the decoder starts with {pad}, the pad token: at decoder position 0 the input is the baseline "
                  "itself, so its attribution is 0.")


@dataclass(frozen=True)
class AttributeRequest:
    prompt: str
    position: int = 0
    contrast: str | None = None  # a vocabulary string or #ID: the score becomes logit(token) - logit(contrast)
    steps: int = DEFAULT_STEPS
    max_new_tokens: int | None = None  # the greedy output; None: common.DEFAULT_NEW_TOKENS

    def __post_init__(self) -> None:
        seq2seq.check_text(self.prompt, "PROMPT")
        seq2seq.check_text(self.contrast, "--contrast")
        if not self.prompt.strip():
            raise UsageError('PROMPT is empty; give the source text, e.g. t5peek attribute -m demo "translate English '
                             'to Spanish: the red house" --position 2.')
        if self.contrast is not None and not self.contrast.strip():
            raise UsageError("--contrast is empty; give a token of the vocabulary, or #ID.")
        seq2seq.check_bounded(self.position, "--position", 0, seq2seq.MAX_NEW_TOKENS - 1)
        seq2seq.check_bounded(self.steps, "--steps", FEWEST_STEPS, MAX_STEPS)
        seq2seq.check_bounded(self.max_new_tokens, "--max-new-tokens", 1, seq2seq.MAX_NEW_TOKENS)


def run_attribute(session: Session, request: AttributeRequest) -> AttributionRun:
    session.require("attribute")
    check_family(session.model_type, session.name, "attribute")
    new_tokens = max(request.max_new_tokens or common.DEFAULT_NEW_TOKENS, request.position + 1)
    input_ids, attention_mask, _ = seq2seq.encode(session, request.prompt, None, new_tokens, "--max-new-tokens")
    pad = _pad_id(session)
    loaded = session.weights(eager_attention=True, run=RunShape(input_ids.shape[-1], new_tokens))
    model, device = loaded.model, loaded.device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    tokens = seq2seq.TokenNames(session.tokenizer)
    import torch

    with session.progress("Integrating gradients over the source and the decoder's tokens…"):
        output_ids = common.greedy_ids(session, model, input_ids, attention_mask, new_tokens)
        position = request.position
        decoder_input, token_id = common.explained(output_ids, position, device)
        plain = common.forward_logits(model, input_ids, attention_mask, decoder_input)
        contrast_id = _contrast_id(session, request.contrast, plain.shape[-1], token_id, tokens)
        score = _scorer(position, token_id, contrast_id)
        actual_score = float(score(plain)[0])
        encoder, decoder = substitutes(model)
        hooks = encoder.hooks() + decoder.hooks()

        def score_with(substitute, source_ids, prefix):
            def run(path):
                substitute.value = path
                batch = path.shape[0]
                try:
                    logits = model(input_ids=source_ids.expand(batch, -1),
                                   attention_mask=attention_mask.expand(batch, -1),
                                   decoder_input_ids=prefix.expand(batch, -1), use_cache=False,
                                   return_dict=True).logits
                finally:
                    substitute.value = None
                return score(logits.float())
            return run

        with hooked(model, hooks), torch.no_grad():
            source = encoder.embed(input_ids)[0]
            source_baseline = encoder.embed(torch.full_like(input_ids, pad))[0]
            prefix = decoder.embed(decoder_input)[0]
            prefix_baseline = decoder.embed(torch.full_like(decoder_input, pad))[0]
        with hooked(model, hooks):
            source_run = score_with(encoder, input_ids, decoder_input)
            prefix_run = score_with(decoder, input_ids, decoder_input)
            with torch.no_grad():
                baseline_score = float(source_run(source_baseline[None])[0])
                prefix_baseline_score = float(prefix_run(prefix_baseline[None])[0])
            source_attributions = integrated_gradients(source_run, source, source_baseline, request.steps,
                                                       GRADIENT_ROWS)
            prefix_attributions = integrated_gradients(prefix_run, prefix, prefix_baseline, request.steps,
                                                       GRADIENT_ROWS)
        occluded = _occluded_scores(model, input_ids, attention_mask, decoder_input, pad, score)
        cross = _cross_attention(model, input_ids, attention_mask, decoder_input, position)
    source_error = sum(source_attributions) - (actual_score - baseline_score)
    prefix_error = sum(prefix_attributions) - (actual_score - prefix_baseline_score)
    notes = [INCOMPLETE_NOTE.format(part=part, share=100 * abs(error) / abs(span) if span else 100.0,
                                    baseline=baseline)
             for part, baseline, error, span in (("source", "baseline", source_error, actual_score - baseline_score),
                                                 ("prefix", "prefix baseline", prefix_error,
                                                  actual_score - prefix_baseline_score))
             if abs(error) > max(INCOMPLETE * abs(span), NEAR_ZERO)]
    if output_ids[0] == pad:
        notes.append(PAD_START_NOTE.format(pad=tokens.one(pad)))
    return AttributionRun(
        model=session.name, prompt=request.prompt, source_ids=tuple(input_ids[0].tolist()),
        source_tokens=tokens(input_ids[0].tolist()), output_ids=output_ids, output_tokens=tokens(output_ids),
        position=position, token_id=token_id, token=tokens.one(token_id), contrast_id=contrast_id,
        contrast_token=None if contrast_id is None else tokens.one(contrast_id), pad_token_id=pad,
        pad_token=tokens.one(pad), method=METHOD, steps=request.steps, score=actual_score,
        baseline_score=baseline_score, source_attributions=tuple(source_attributions),
        completeness_error=source_error,
        prefix_baseline_score=prefix_baseline_score, prefix_attributions=tuple(prefix_attributions),
        prefix_completeness_error=prefix_error,
        cross_attention=cross, occluded_scores=tuple(occluded),
        occlusion_drops=tuple(actual_score - value for value in occluded), notes=tuple(notes))


def _pad_id(session: Session) -> int:
    """The token whose embedding is the baseline."""
    return seq2seq.pad_token_id(session, "attribute measures against the pad token's embedding")


def _contrast_id(session: Session, contrast: str | None, width: int, token_id: int, tokens) -> int | None:
    if contrast is None:
        return None
    found = vocab.token_id(session.tokenizer, contrast, width, "--contrast")
    if found == token_id:
        raise UsageError(f"--contrast {contrast!r} is the predicted token '{tokens.one(token_id)}' itself: give "
                         "another token to compare it with.")
    return found


def _scorer(position: int, token_id: int, contrast_id: int | None):
    """The score of each batch row's logits at `position`: [batch, positions, vocab] → [batch]."""

    def score(logits):
        row = logits[:, position]
        return row[:, token_id] if contrast_id is None else row[:, token_id] - row[:, contrast_id]

    return score


def _occluded_scores(model, input_ids, attention_mask, decoder_input, pad: int, score) -> list[float]:
    """The score with each source token alone replaced by the pad token."""
    length = input_ids.shape[-1]
    found: list[float] = []
    for rows in common.chunks(list(range(length))):
        batch = input_ids.repeat(len(rows), 1)
        for row, position in enumerate(rows):
            batch[row, position] = pad
        logits = common.forward_logits(model, batch, attention_mask.expand(len(rows), -1),
                                       decoder_input.expand(len(rows), -1))
        found += score(logits).tolist()
    return found


def _cross_attention(model, input_ids, attention_mask, decoder_input, position: int
                     ) -> tuple[tuple[float, ...], ...]:
    """Per decoder layer, the cross-attention weights of decoder position `position`, averaged over heads."""
    import torch

    with torch.no_grad(), hooked(model, []):
        output = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input,
                       use_cache=False, output_attentions=True, return_dict=True)
    return tuple(tuple(layer[0, :, position].float().mean(0).tolist()) for layer in output.cross_attentions)
