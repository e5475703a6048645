"""FLOPs as torch's FlopCounterMode counts them: every matrix product (2·m·n·k), nothing else.

What runs: four projections per attention (T5's inner width is heads × d_kv; no 1/sqrt(d) scaling product to
count, it is elementwise), two products per attention over the keys it sees, two or three feed-forward
projections (gated: two inputs), the output head over the whole vocabulary. Norms, softmax, biases, T5's output
rescale and the loss are elementwise and not counted. A mixture-of-experts layer runs its router's product
(d_model × experts per token) and one expert's feed-forward per token. A sparse encoder attention (LongT5, LED,
BigBird, PEGASUS-X) runs the products t5peek.budget.encoder_attention lists, on the padded length where it pads.
Backward computes two products per forward product (the input's and the weight's gradient; one or none where
inputs need no gradient, as masks do), so a training step is about three forwards; checkpointing recomputes each
block's forward once more, up to the last tensor the block saves.
"""

from __future__ import annotations

from t5peek.budget import encoder_attention
from t5peek.budget.shapes import ModelShape


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


def _router(shape: ModelShape, tokens: int) -> int:
    return 2 * tokens * shape.d_model * shape.experts


def _encoder_layer(shape: ModelShape, batch: int, source: int, layer: int) -> encoder_attention.Products:
    attention = shape.encoder_attention
    found = encoder_attention.products(attention, shape.d_model, shape.heads, shape.d_kv, batch, source, layer,
                                       shape.encoder_layers)
    tokens = encoder_attention.feed_forward_tokens(encoder_attention.effective(attention, source), source)
    unused = encoder_attention.unused_global_tokens(attention, layer, shape.encoder_layers)
    return found + encoder_attention.Products(_feed_forward(shape, batch * tokens, shape.encoder_ffn),
                                              no_gradient=_feed_forward(shape, batch * unused, shape.encoder_ffn))


def _encoder(shape: ModelShape, batch: int, source: int) -> encoder_attention.Products:
    total = encoder_attention.Products(shape.router_layers[0] * _router(shape, batch * source))
    for layer in range(shape.encoder_layers):
        total += _encoder_layer(shape, batch, source, layer)
    return total


def encoder_pass(shape: ModelShape, batch: int, source: int) -> int:
    return _encoder(shape, batch, source).forward


def decoder_block(shape: ModelShape, batch: int, target: int, source: int) -> int:
    """Teacher forcing: the whole target at once under the causal mask (the masked scores are computed too)."""
    inner = shape.decoder_inner
    return attention(shape, batch, target, target, inner) + attention(shape, batch, target, source, inner) + \
        _feed_forward(shape, batch * target, shape.decoder_ffn)


def _decoder_pass(shape: ModelShape, batch: int, target: int, source: int) -> int:
    return shape.decoder_layers * decoder_block(shape, batch, target, source) + \
        shape.router_layers[1] * _router(shape, batch * target)


def head(shape: ModelShape, rows: int) -> int:
    return 2 * rows * shape.d_model * shape.vocab


def decoder_step(shape: ModelShape, rows: int, position: int, source: int) -> int:
    """One generated token at 0-based `position`: it attends to position + 1 cached keys and to the source; the
    cross-attention keys and values come from the cache (see cross_projection for the step that fills it)."""
    inner = shape.decoder_inner
    per_block = attention(shape, rows, 1, position + 1, inner, new_keys=1) + \
        attention(shape, rows, 1, source, inner, new_keys=0) + _feed_forward(shape, rows, shape.decoder_ffn)
    return shape.decoder_layers * per_block + shape.router_layers[1] * _router(shape, rows) + head(shape, rows)


def cross_projection(shape: ModelShape, rows: int, source: int) -> int:
    """The first step projects the encoder output to the cross-attention keys and values, once for the run."""
    return shape.decoder_layers * 2 * _projections(shape, rows * source, shape.decoder_inner)


def generate(shape: ModelShape, batch: int, source: int, target: int, beams: int) -> int:
    """A whole generate(): the encoder once for the batch, then `target` decoder steps over batch × beams rows."""
    rows = batch * beams
    steps = sum(decoder_step(shape, rows, position, source) for position in range(target))
    return encoder_pass(shape, batch, source) + cross_projection(shape, rows, source) + steps


def training_forward(shape: ModelShape, batch: int, source: int, target: int) -> int:
    return encoder_pass(shape, batch, source) + _decoder_pass(shape, batch, target, source) + \
        head(shape, batch * target)


def training_step(shape: ModelShape, batch: int, source: int, target: int, checkpointing: bool) -> int:
    encoder = _encoder(shape, batch, source)
    forward = training_forward(shape, batch, source, target)
    backward = 2 * forward - (2 * encoder.forward - encoder.backward)
    recompute = 0
    if checkpointing:
        recompute = encoder.forward + _decoder_pass(shape, batch, target, source)
        if shape.pre_norm and shape.dropout <= 0:
            recompute -= _not_recomputed(shape, batch, source, target)
    return forward + backward + recompute


def _not_recomputed(shape: ModelShape, batch: int, source: int, target: int) -> int:
    """torch's non-reentrant checkpoint stops recomputing once the last saved tensor is back: a pre-norm block without
    dropout saves nothing after the input of its last feed-forward projection, so that projection is not run again
    (PEGASUS-X's last one is its global tokens'). A mixture-of-experts layer scales each expert's output by its
    router weight, which saves it: those layers run whole."""
    last = encoder_attention.last_feed_forward_tokens(
        encoder_attention.effective(shape.encoder_attention, source), source)
    dense = (shape.encoder_layers - shape.router_layers[0], shape.decoder_layers - shape.router_layers[1])
    return 2 * shape.d_model * batch * (dense[0] * last * shape.encoder_ffn + dense[1] * target * shape.decoder_ffn)
