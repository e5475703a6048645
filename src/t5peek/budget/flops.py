"""FLOPs as torch's FlopCounterMode counts them: every matrix product (2·m·n·k), nothing else.

What runs: four projections per attention (T5's inner width is heads × d_kv; no 1/sqrt(d) scaling product to
count, it is elementwise), two products per attention over the keys it sees, two or three feed-forward
projections (gated: two inputs), the output head over the whole vocabulary. Norms, softmax, biases, T5's output
rescale and the loss are elementwise and not counted. Backward computes two products per forward product (the
input's and the weight's gradient), so a training step is three forwards; checkpointing recomputes each block's
forward once more, up to the last tensor the block saves.
"""

from __future__ import annotations

from t5peek.budget.shapes import T5_STYLE, ModelShape


def _projections(shape: ModelShape, tokens: int, inner: int) -> int:
    return 2 * tokens * shape.d_model * inner


def _feed_forward(shape: ModelShape, tokens: int, width: int) -> int:
    return (3 if shape.gated else 2) * 2 * tokens * shape.d_model * width


def attention(shape: ModelShape, batch: int, queries: int, keys: int, inner: int, new_keys: int | None = None) -> int:
    """Projections of queries and output, of the `new_keys` keys and values not yet cached (all `keys` by default),
    then scores and context over all `keys`."""
    flops = 2 * _projections(shape, batch * queries, inner)
    flops += 2 * _projections(shape, batch * (keys if new_keys is None else new_keys), inner)
    return flops + 2 * 2 * batch * queries * keys * inner


def encoder_block(shape: ModelShape, batch: int, source: int) -> int:
    return attention(shape, batch, source, source, shape.inner) + _feed_forward(shape, batch * source,
                                                                                shape.encoder_ffn)


def encoder_pass(shape: ModelShape, batch: int, source: int) -> int:
    return shape.encoder_layers * encoder_block(shape, batch, source)


def decoder_block(shape: ModelShape, batch: int, target: int, source: int) -> int:
    """Teacher forcing: the whole target at once under the causal mask (the masked scores are computed too)."""
    inner = shape.decoder_inner
    return attention(shape, batch, target, target, inner) + attention(shape, batch, target, source, inner) + \
        _feed_forward(shape, batch * target, shape.decoder_ffn)


def head(shape: ModelShape, rows: int) -> int:
    return 2 * rows * shape.d_model * shape.vocab


def decoder_step(shape: ModelShape, rows: int, position: int, source: int) -> int:
    """One generated token at 0-based `position`: it attends to position + 1 cached keys and to the source; the
    cross-attention keys and values come from the cache (see cross_projection for the step that fills it)."""
    inner = shape.decoder_inner
    per_block = attention(shape, rows, 1, position + 1, inner, new_keys=1) + \
        attention(shape, rows, 1, source, inner, new_keys=0) + _feed_forward(shape, rows, shape.decoder_ffn)
    return shape.decoder_layers * per_block + head(shape, rows)


def cross_projection(shape: ModelShape, rows: int, source: int) -> int:
    """The first step projects the encoder output to the cross-attention keys and values, once for the run."""
    return shape.decoder_layers * 2 * _projections(shape, rows * source, shape.decoder_inner)


def generate(shape: ModelShape, batch: int, source: int, target: int, beams: int) -> int:
    """A whole generate(): the encoder once for the batch, then `target` decoder steps over batch × beams rows."""
    rows = batch * beams
    steps = sum(decoder_step(shape, rows, position, source) for position in range(target))
    return encoder_pass(shape, batch, source) + cross_projection(shape, rows, source) + steps


def training_forward(shape: ModelShape, batch: int, source: int, target: int) -> int:
    return encoder_pass(shape, batch, source) + shape.decoder_layers * decoder_block(shape, batch, target, source) \
        + head(shape, batch * target)


def training_step(shape: ModelShape, batch: int, source: int, target: int, checkpointing: bool) -> int:
    forward = training_forward(shape, batch, source, target)
    recompute = 0
    if checkpointing:
        recompute = encoder_pass(shape, batch, source) + \
            shape.decoder_layers * decoder_block(shape, batch, target, source)
        if shape.style == T5_STYLE and shape.dropout <= 0:
            # torch's non-reentrant checkpoint stops recomputing once the last saved tensor is back: a T5 block
            # without dropout saves nothing after its feed-forward's input to wo, so wo is not run again
            recompute -= 2 * shape.d_model * (shape.encoder_layers * batch * source * shape.encoder_ffn +
                                              shape.decoder_layers * batch * target * shape.decoder_ffn)
    return 3 * forward + recompute
