"""Memory of a generate() run: the encoder output, the two KV caches, the transient peaks, the logits.

Cache sizes are exact: transformers keeps, per decoder layer, keys and values of shape [batch × beams, heads, length,
d_kv] in the compute dtype; the cross-attention length is the source, the self-attention length grows by one per
step and ends at the number of new tokens (the last token is never fed back). The transient peaks are estimates:
the largest set of tensors one layer holds at once.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    values, context, scores and probabilities; T5 keeps its position bias for the whole stack) and its feed-forward."""
    hidden = 2 * batch * source * shape.d_model * element
    scores = batch * shape.heads * source * source * element
    attention = 4 * batch * source * shape.inner * element + 2 * scores
    if shape.style == T5_STYLE:
        attention += shape.heads * source * source * element
    feed_forward = (3 if shape.gated else 2) * batch * source * shape.encoder_ffn * element
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
