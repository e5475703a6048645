"""Memory of a generate() run: the encoder output, the two KV caches, the transient peaks, the logits.

Cache sizes are exact: transformers keeps, per decoder layer, keys and values of shape [batch × beams, heads, length,
d_kv] in the compute dtype; the cross-attention length is the source, the self-attention length grows by one per
step and ends at the number of new tokens (the last token is never fed back). The transient peaks are estimates:
the largest set of tensors one layer holds at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from t5peek.budget import encoder_attention
from t5peek.budget.shapes import T5_STYLE, ModelShape

FLOAT32 = 4


@dataclass(frozen=True)
class InferenceBudget:
    encoder_output: int
    cross_cache: int
    self_cache: int  # at the last new token
    self_cache_per_token: int
    encoder_peak: int  # transient, one encoder layer at a time
    decoder_step_peak: int  # transient, one decoder layer of the last step
    logits: int
    peak: int  # weights included


def cache_per_position(shape: ModelShape, rows: int, element: int) -> int:
    """Keys and values of one position in every decoder layer."""
    return 2 * shape.decoder_layers * rows * shape.decoder_heads * shape.d_kv * element


def encoder_transient(shape: ModelShape, batch: int, source: int, element: int) -> int:
    """One encoder layer without autograd: its input and output, and the larger of its attention (queries, keys,
    values, context, scores and probabilities, as many as its pattern computes on the length it pads to; T5 keeps
    its position bias for the whole stack) and its feed-forward."""
    pattern = shape.encoder_attention
    tokens = encoder_attention.feed_forward_tokens(encoder_attention.effective(pattern, source), source)
    hidden = 2 * batch * tokens * shape.d_model * element
    per_sequence = encoder_attention.scores(pattern, shape.heads, source) * element
    attention = 4 * batch * tokens * shape.inner * element + 2 * batch * per_sequence
    if shape.style == T5_STYLE:
        attention += per_sequence
    feed_forward = (3 if shape.gated else 2) * batch * tokens * shape.encoder_ffn * element
    return hidden + max(attention, feed_forward)


def step_transient(shape: ModelShape, rows: int, keys: int, element: int) -> int:
    """One decoder layer of one step: tiny next to the caches, but it grows with the keys it reads."""
    hidden = 2 * rows * shape.d_model * element
    attention = 4 * rows * shape.decoder_inner * element + 2 * rows * shape.decoder_heads * keys * element
    feed_forward = (3 if shape.gated else 2) * rows * shape.decoder_ffn * element
    return hidden + max(attention, feed_forward)


def logits_bytes(shape: ModelShape, rows: int, beams: int, element: int) -> int:
    """The step's logits, generate()'s float32 copy, and with beams the log-probabilities and candidate scores."""
    per_row = shape.vocab * (element + FLOAT32 + (2 * FLOAT32 if beams > 1 else 0))
    return rows * per_row


def budget(shape: ModelShape, weights: int, batch: int, source: int, target: int, beams: int,
           element: int) -> InferenceBudget:
    rows = batch * beams
    encoder_output = rows * source * shape.d_model * element
    per_token = cache_per_position(shape, rows, element)
    cross, own = per_token * source, per_token * target
    encoder_peak = encoder_transient(shape, batch, source, element)
    step_peak = step_transient(shape, rows, max(target, source), element)
    logits = logits_bytes(shape, rows, beams, element)
    decoding = encoder_output + cross + own + step_peak + logits
    return InferenceBudget(encoder_output, cross, own, per_token, encoder_peak, step_peak, logits,
                           weights + max(encoder_peak, decoding))


# --occlusion re-scores the output once per source token; its copies go through the model in forwards of at most
# this many bytes beyond the weights (one copy alone may need more: it then goes alone)
OCCLUSION_FORWARD_BYTES = 256 * 1024 ** 2


def rescoring_bytes(shape: ModelShape, source: int, target: int, element: int) -> int:
    """One sequence of a teacher-forced forward without cache (--occlusion's re-scoring): the decoder reads all
    `target` positions at once. The largest of three moments: an encoder layer (T5's position bias counted per
    sequence, as a padding mask makes it); a decoder layer beside the encoder output, with the scores, their
    softmax and the masks of its self- and cross-attention; the logits with their float32 copy and
    log-probabilities. Grows linearly with the sequences of a batch."""
    encoder = encoder_transient(shape, 1, source, element) + 8 * source
    if shape.style == T5_STYLE:
        encoder += shape.heads * source * source * element
    heads, inner, output = shape.decoder_heads, shape.decoder_inner, source * shape.d_model * element
    self_attention = 4 * target * inner * element + (3 * heads + 1) * target * target * element
    cross_attention = 2 * (target + source) * inner * element + (3 * heads + 1) * target * source * element
    feed_forward = (3 if shape.gated else 2) * target * shape.decoder_ffn * element
    biases = heads * target * (target + source) * element if shape.style == T5_STYLE else 0
    ids_and_masks = 8 * (source + 2 * target) + target * (target + source)  # int64 ids, boolean masks
    decoder = output + 2 * target * shape.d_model * element + max(self_attention, cross_attention, feed_forward) + \
        biases + ids_and_masks
    logits = output + target * shape.d_model * element + target * shape.vocab * (element + 2 * FLOAT32)
    return max(encoder, decoder, logits)


def rescoring_batch(shape: ModelShape, copies: int, source: int, target: int, element: int) -> tuple[int, int]:
    """How many of `copies` sequences one re-scoring forward takes (within OCCLUSION_FORWARD_BYTES, at least one),
    and the bytes such a forward needs."""
    one = rescoring_bytes(shape, source, target, element)
    rows = max(1, min(copies, OCCLUSION_FORWARD_BYTES // one))
    return rows, rows * one
