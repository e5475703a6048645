"""The tensors autograd saves for backward during one training step, tensor by tensor, per block type.

The model of each sublayer follows what runs in transformers with eager attention (what `saved_tensors_hooks`
sees; parameters are not counted here, they are the weights):

- a norm saves its input and its statistics; T5's RMS norm also the normalized input before its weight, and
  in half precision the float32 copy it squares; its output is saved by the projections that read it;
- attention saves the queries, keys and values (as the copies matmul makes of their transposed views), the softmax
  output, the context before the output projection, and with dropout the mask and the dropped probabilities;
- the feed-forward saves what its activation needs (relu its output; gelu and silu their input and output; T5's
  gelu_new four intermediates, and the gate's product both factors);
- dropout with p > 0 saves a mask: 1 byte per element on CUDA (bool), the compute dtype on the CPU;
- the loss saves its log-softmax over the vocabulary and the labels; embeddings save their token ids.

With gradient checkpointing (transformers' non-reentrant checkpoint around each block) a block keeps only its inputs;
everything outside the blocks is saved as before, and backward recomputes one block at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from t5peek.budget.shapes import T5_STYLE, ModelShape

FLOAT32, INT64 = 4, 8


@dataclass(frozen=True)
class Dims:
    batch: int
    source: int
    target: int
    element: int  # bytes per element of the compute dtype
    mask: int  # bytes per element of a dropout mask


def _norm(shape: ModelShape, d: Dims, tokens: int) -> int:
    """A norm's saved tensors, its output (read by what follows) included."""
    rows = d.batch * tokens * shape.d_model
    if shape.style == T5_STYLE:  # input, [float32 copy], 1/rms, normalized, weight × normalized
        return rows * d.element * 3 + (rows * FLOAT32 if d.element != FLOAT32 else 0) + d.batch * tokens * FLOAT32
    return rows * d.element * 2 + 2 * d.batch * tokens * FLOAT32  # input, output, mean and rstd


def _dropout(p: float, d: Dims, elements: int, output_saved: bool = True) -> int:
    if p <= 0:
        return 0
    return elements * d.mask + (elements * d.element if output_saved else 0)


def attention(shape: ModelShape, d: Dims, queries: int, keys: int, heads: int) -> int:
    """One attention sublayer; a cross-attention's keys and values read the encoder output, counted once as the
    encoder stack's output."""
    inner, b, e = heads * shape.d_kv, d.batch, d.element
    probabilities = b * heads * queries * keys
    saved = _norm(shape, d, queries)
    saved += b * (queries + 2 * keys) * inner * e  # queries, keys, values
    saved += probabilities * e + _dropout(shape.attention_dropout, d, probabilities)
    saved += b * queries * inner * e  # the context before the output projection
    saved += _dropout(shape.dropout, d, b * queries * shape.d_model, output_saved=False)
    return saved


def feed_forward(shape: ModelShape, d: Dims, tokens: int, width: int) -> int:
    rows, e = d.batch * tokens * width, d.element
    if shape.gated:  # gelu_new: input, tanh, 1 + tanh, input / 2; then both factors of the gate
        kept = 6
    elif shape.activation == "relu":
        kept = 1
    else:
        kept = 2
    saved = _norm(shape, d, tokens) + kept * rows * e
    if shape.gated and shape.activation_dropout <= 0:
        saved += rows * e  # the gate's product, read by wo
    saved += _dropout(shape.activation_dropout, d, rows)
    saved += _dropout(shape.dropout, d, d.batch * tokens * shape.d_model, output_saved=False)
    return saved


def encoder_block(shape: ModelShape, d: Dims) -> int:
    return attention(shape, d, d.source, d.source, shape.heads) + \
        feed_forward(shape, d, d.source, shape.encoder_ffn)


def decoder_block(shape: ModelShape, d: Dims) -> int:
    return attention(shape, d, d.target, d.target, shape.decoder_heads) + \
        attention(shape, d, d.target, d.source, shape.decoder_heads) + \
        feed_forward(shape, d, d.target, shape.decoder_ffn)


def _outer_norm(shape: ModelShape, d: Dims, tokens: int) -> int:
    """A norm outside the blocks, without its output (the stack output or the first block's input)."""
    rows = d.batch * tokens * shape.d_model
    if shape.style == T5_STYLE:
        return 2 * rows * d.element + (rows * FLOAT32 if d.element != FLOAT32 else 0) + d.batch * tokens * FLOAT32
    return rows * d.element + 2 * d.batch * tokens * FLOAT32


def stack_edges(shape: ModelShape, d: Dims, tokens: int, outer_norms: int, keys_for_bias: int) -> int:
    """Outside a stack's blocks: token ids, embedding dropout, position indices, outer norms, the stack output."""
    rows = d.batch * tokens * shape.d_model
    saved = d.batch * tokens * INT64 + _dropout(shape.dropout, d, rows, output_saved=False)
    if shape.style == T5_STYLE:
        saved += tokens * keys_for_bias * INT64  # relative position buckets, read by the bias embedding
    else:
        saved += tokens * INT64  # learned or sinusoidal position ids (small)
    saved += outer_norms * _outer_norm(shape, d, tokens)
    saved += rows * d.element + _dropout(shape.dropout if shape.style == T5_STYLE else 0, d, rows, False)
    return saved


def loss(shape: ModelShape, d: Dims) -> int:
    """Cross-entropy over the vocabulary: its log-softmax (the logits themselves are not kept) and the labels."""
    return d.batch * d.target * (shape.vocab * d.element + INT64)


@dataclass(frozen=True)
class ActivationBudget:
    encoder_block: int  # one block, saved without checkpointing
    decoder_block: int
    outside: int  # embeddings, outer norms, stack outputs, loss
    checkpointed_encoder_block: int  # what one block keeps under checkpointing: its inputs
    checkpointed_decoder_block: int
    total: int
    total_checkpointed: int
    recompute_peak: int  # the largest block backward recomputes under checkpointing


def saved_for_backward(shape: ModelShape, d: Dims) -> ActivationBudget:
    enc, dec = encoder_block(shape, d), decoder_block(shape, d)
    bias_layers = (shape.encoder_layers, shape.decoder_layers) if shape.relative_bias_everywhere else (1, 1)
    outside = stack_edges(shape, d, d.source, shape.outer_norms[0], d.source) + \
        stack_edges(shape, d, d.target, shape.outer_norms[1], d.target) + loss(shape, d)
    extra_bias = 0
    if shape.style == T5_STYLE:
        extra_bias = ((bias_layers[0] - 1) * d.source * d.source + (bias_layers[1] - 1) * d.target * d.target) * INT64
    total = shape.encoder_layers * enc + shape.decoder_layers * dec + outside + extra_bias
    held_enc, held_dec = _checkpoint_inputs(shape, d)
    checkpointed = outside + shape.encoder_layers * held_enc + shape.decoder_layers * held_dec + \
        _checkpoint_shared(shape, d)
    return ActivationBudget(enc, dec, outside, held_enc, held_dec, total, checkpointed, max(enc, dec))


def _checkpoint_inputs(shape: ModelShape, d: Dims) -> tuple[int, int]:
    """Each checkpointed block keeps its hidden-state input."""
    return (d.batch * d.source * shape.d_model * d.element, d.batch * d.target * shape.d_model * d.element)


def _checkpoint_shared(shape: ModelShape, d: Dims) -> int:
    """Tensors every checkpointed block of a stack reads, kept once: T5's position biases (and the zero bias of the
    cross-attention, made to require grad under checkpointing), the decoder's causal mask."""
    e, b = d.element, d.batch
    held = b * d.target * d.target * e  # the causal mask, as an additive float tensor
    if shape.style == T5_STYLE:
        held += shape.heads * d.source * d.source * e + shape.decoder_heads * d.target * (d.target + d.source) * e
    return held
