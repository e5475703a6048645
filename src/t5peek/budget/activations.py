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
from t5peek.budget import encoder_attention
from t5peek.families import BLOCK_LOCAL, BLOCK_SPARSE, GLOBAL_LOCAL, SLIDING_WINDOW

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


def _attention(shape: ModelShape, d: Dims, tokens: int, queries: int, keys: int, probabilities: int,
               heads: int) -> int:
    """An attention sublayer over `tokens` positions per sequence whose products read `queries` and `keys` rows
    and whose softmax has `probabilities` elements per sequence (more than tokens × keys where it pads to blocks)."""
    inner, b, e = heads * shape.d_kv, d.batch, d.element
    saved = _norm(shape, d, tokens)
    saved += b * (queries + 2 * keys) * inner * e  # queries, keys, values
    saved += b * probabilities * e + _dropout(shape.attention_dropout, d, b * probabilities)
    saved += b * tokens * inner * e  # the context before the output projection
    saved += _dropout(shape.dropout, d, b * tokens * shape.d_model, output_saved=False)
    return saved


def attention(shape: ModelShape, d: Dims, queries: int, keys: int, heads: int) -> int:
    """One attention sublayer; a cross-attention's keys and values read the encoder output, counted once as the
    encoder stack's output."""
    return _attention(shape, d, queries, queries, keys, heads * queries * keys, heads)


def _block_local(shape: ModelShape, d: Dims) -> tuple[int, int, int]:
    """LongT5's blocks: (blocks, block length, side keys per block)."""
    att = shape.encoder_attention
    return -(-d.source // att.block), att.block, d.source // att.global_block if att.global_block else 0


def encoder_self_attention(shape: ModelShape, d: Dims) -> int:
    if shape.encoder_attention.kind == BLOCK_LOCAL:
        # each block's queries against its 3-block window and the side keys; transient-global also keeps the
        # one-hot matrix that sums the blocks (as the compute dtype) and the norm of the sums
        blocks, length, side = _block_local(shape, d)
        keys = 3 * length + side
        return _attention(shape, d, d.source, blocks * length, blocks * keys, shape.heads * blocks * length * keys,
                          shape.heads) + d.batch * d.source * side * d.element + _norm(shape, d, side)
    return attention(shape, d, d.source, d.source, shape.heads)


def _encoder_bias_buckets(shape: ModelShape, d: Dims) -> int:
    """T5's relative position buckets of the encoder (int64), read by its bias embedding: one per query and key;
    LongT5's per position in a block and its window, plus transient-global's per token and side key."""
    if shape.encoder_attention.kind == BLOCK_LOCAL:
        _blocks, length, side = _block_local(shape, d)
        return (length * 3 * length + d.batch * d.source * side) * INT64
    return d.source * d.source * INT64


def _encoder_position_bias(shape: ModelShape, d: Dims) -> int:
    """The position bias every encoder block reads (with the padding mask folded in where the pattern does)."""
    if shape.encoder_attention.kind == BLOCK_LOCAL:
        blocks, length, side = _block_local(shape, d)
        return d.batch * blocks * shape.heads * length * (3 * length + side) * d.element
    return shape.heads * d.source * d.source * d.element


def feed_forward(shape: ModelShape, d: Dims, tokens: int, width: int) -> int:
    rows, e = d.batch * tokens * width, d.element
    if shape.gated:  # gelu_new: input, tanh, 1 + tanh, input / 2; then both factors of the gate
        kept = 6
    elif shape.activation == "gelu_new":  # its four intermediates and its output
        kept = 5
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


def _sliding_window(shape: ModelShape, d: Dims, tokens: int, layer: int) -> int:
    """LED's attention over the padded `tokens`: the three projections each copy their transposed input, the
    queries and keys as overlapping chunks of 2w, the values as chunks of 3w, the probabilities as a band of 2w + 1
    and again laid out per chunk (3w + 2 wide), two boolean masks of the band's corners, the context."""
    w, b, e, heads = shape.encoder_attention.windows[layer] // 2, d.batch, d.element, shape.heads
    inner, chunks = shape.inner, tokens // w
    band = b * tokens * heads * (2 * w + 1)
    saved = _norm(shape, d, tokens) + 2 * b * tokens * shape.d_model * e
    saved += 2 * b * (chunks - 1) * 2 * w * inner * e + b * chunks * 3 * w * inner * e  # queries, keys, values
    saved += 2 * b * w * heads * (w + 1)  # the band's corner masks, bool
    saved += band * e + _dropout(shape.attention_dropout, d, band)
    saved += b * heads * chunks * w * (3 * w + 2) * e + b * tokens * inner * e
    saved += _dropout(shape.dropout, d, b * tokens * shape.d_model, output_saved=False)
    return saved


def _block_sparse(shape: ModelShape, d: Dims, tokens: int) -> int:
    """BigBird's block-sparse attention over the padded `tokens` (n blocks of bs, r random blocks), part by part as
    transformers saves them: the blocked keys and values (read by the random blocks' gather, with its int64
    indices); the first and last query blocks against every key; the second and second-last against 4 + r blocks;
    the n - 4 middle blocks against 3 sliding, r random and the 2 global blocks, their queries copied for each of
    the four products; no attention dropout."""
    att, b, e = shape.encoder_attention, d.batch, d.element
    bs, r, n, d_kv, heads = att.block, att.random_blocks, tokens // att.block, shape.d_kv, shape.heads
    per_head = 2 * tokens * d_kv  # blocked keys and values
    per_head += 2 * (2 * tokens * d_kv + bs * d_kv + bs * tokens)  # first and last: keys, values, queries, probs
    per_head += 2 * (2 * (4 + r) * bs * d_kv + bs * d_kv + bs * (4 + r) * bs)  # second and second-last
    per_head += (n - 4) * (2 * 3 * bs * d_kv + 2 * r * bs * d_kv + 4 * bs * d_kv + bs * (5 + r) * bs) + \
        4 * bs * d_kv  # the middle blocks, and the global blocks' keys and values they read
    saved = _norm(shape, d, tokens) + b * heads * per_head * e + b * tokens * shape.inner * e
    saved += (b * heads * (n - 2) * r + (n - 4) * 3) * INT64  # the gather's and the probabilities' scatter indices
    return saved + _dropout(shape.dropout, d, b * tokens * shape.d_model, output_saved=False)


def _global_local(shape: ModelShape, d: Dims, tokens: int, layer: int) -> int:
    """PEGASUS-X's layer over the padded `tokens` and its global tokens: both norms, the global tokens' queries
    against every key (global and local, concatenated), each block against itself and the global keys, both
    output projections and both feed-forwards. A staggered layer projects a copy padded by half a block each side."""
    att, b, e, heads, inner = shape.encoder_attention, d.batch, d.element, shape.heads, shape.inner
    g, staggered = att.global_tokens, tokens + (att.block if att.stagger and layer % 2 == 1 else 0)
    norm_input = _norm(shape, d, tokens) - b * tokens * shape.d_model * e
    global_probabilities = b * heads * g * (g + staggered)
    local_probabilities = b * heads * staggered * (g + att.block)
    saved = norm_input + b * staggered * shape.d_model * e + _norm(shape, d, g)
    saved += 2 * b * (g + staggered) * inner * e + 3 * b * g * inner * e  # concatenated keys, values; global q k v
    saved += 3 * b * staggered * inner * e  # local queries, keys, values
    for probabilities in (global_probabilities, local_probabilities):
        saved += probabilities * e + _dropout(shape.attention_dropout, d, probabilities)
    saved += b * (g + staggered) * inner * e  # the contexts before the output projection
    saved += _dropout(shape.dropout, d, b * (g + tokens) * shape.d_model, output_saved=False)
    return saved + feed_forward(shape, d, g, shape.encoder_ffn)


def encoder_block(shape: ModelShape, d: Dims, layer: int = 0) -> int:
    attention_kind = encoder_attention.effective(shape.encoder_attention, d.source)
    tokens = encoder_attention.layer_tokens(attention_kind, d.source)
    if attention_kind.kind == SLIDING_WINDOW:
        mixing = _sliding_window(shape, d, tokens, layer)
    elif attention_kind.kind == GLOBAL_LOCAL:
        mixing = _global_local(shape, d, tokens, layer)
    elif attention_kind.kind == BLOCK_SPARSE:
        mixing = _block_sparse(shape, d, tokens)
    else:
        mixing = encoder_self_attention(shape, d)
    return mixing + feed_forward(shape, d, tokens, shape.encoder_ffn)


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


def stack_edges(shape: ModelShape, d: Dims, tokens: int, outer_norms: int, bias_buckets: int) -> int:
    """Outside a stack's blocks: token ids, embedding dropout, position indices, outer norms, the stack output."""
    rows = d.batch * tokens * shape.d_model
    saved = d.batch * tokens * INT64 + _dropout(shape.dropout, d, rows, output_saved=False)
    if shape.style == T5_STYLE:
        saved += bias_buckets
    else:
        saved += tokens * INT64  # learned or sinusoidal position ids (small)
    saved += outer_norms * _outer_norm(shape, d, tokens)
    saved += rows * d.element + _dropout(shape.dropout if shape.style == T5_STYLE else 0, d, rows, False)
    return saved


def _encoder_edges(shape: ModelShape, d: Dims) -> int:
    """The encoder's stack edges. Where it pads the source, PEGASUS-X slices the padding off before its final norm,
    which keeps the padded input; LED and BigBird norm on the padded length and slice after, and with more than one
    sequence the slice is not contiguous: each decoder layer's cross-attention key and value projections copy it."""
    attention = encoder_attention.effective(shape.encoder_attention, d.source)
    tokens, buckets = encoder_attention.layer_tokens(attention, d.source), _encoder_bias_buckets(shape, d)
    row = d.batch * shape.d_model * d.element
    if tokens == d.source:
        return stack_edges(shape, d, d.source, shape.outer_norms[0], buckets)
    if attention.kind == GLOBAL_LOCAL:
        return stack_edges(shape, d, d.source, shape.outer_norms[0], buckets) + (tokens - d.source) * row
    sliced = 2 * shape.decoder_layers * d.source * row if d.batch > 1 else tokens * row
    return stack_edges(shape, d, tokens, shape.outer_norms[0], buckets) - tokens * row + sliced


def loss(shape: ModelShape, d: Dims) -> int:
    """Cross-entropy over the vocabulary: its log-softmax (the logits themselves are not kept) and the labels."""
    return d.batch * d.target * (shape.vocab * d.element + INT64)


@dataclass(frozen=True)
class ActivationBudget:
    encoder_block: int  # the largest block, saved without checkpointing
    encoder_blocks: int  # every encoder block (they differ where the attention pattern changes from layer to layer)
    decoder_block: int
    outside: int  # embeddings, outer norms, stack outputs, loss
    checkpointed_encoder_block: int  # what one block keeps under checkpointing: its inputs
    checkpointed_decoder_block: int
    total: int
    total_checkpointed: int
    recompute_peak: int  # the largest block backward recomputes under checkpointing


def saved_for_backward(shape: ModelShape, d: Dims) -> ActivationBudget:
    blocks = [encoder_block(shape, d, layer) for layer in range(shape.encoder_layers)]
    enc, dec = max(blocks, default=0), decoder_block(shape, d)
    bias_layers = (shape.encoder_layers, shape.decoder_layers) if shape.relative_bias_everywhere else (1, 1)
    outside = _encoder_edges(shape, d) + \
        stack_edges(shape, d, d.target, shape.outer_norms[1], d.target * d.target * INT64) + loss(shape, d)
    extra_bias = 0
    if shape.style == T5_STYLE:
        extra_bias = ((bias_layers[0] - 1) * d.source * d.source + (bias_layers[1] - 1) * d.target * d.target) * INT64
    total = sum(blocks) + shape.decoder_layers * dec + outside + extra_bias
    held_enc, held_dec = _checkpoint_inputs(shape, d)
    checkpointed = outside + shape.encoder_layers * held_enc + shape.decoder_layers * held_dec + \
        _checkpoint_shared(shape, d) + _sliced_output_checkpointed(shape, d)
    return ActivationBudget(enc, sum(blocks), dec, outside, held_enc, held_dec, total, checkpointed, max(enc, dec))


def _checkpoint_inputs(shape: ModelShape, d: Dims) -> tuple[int, int]:
    """Each checkpointed block keeps its hidden-state input (padded where the encoder pads; PEGASUS-X's global
    tokens too)."""
    attention = encoder_attention.effective(shape.encoder_attention, d.source)
    row = d.batch * shape.d_model * d.element
    return (encoder_attention.feed_forward_tokens(attention, d.source) * row, d.target * row)


def _sliced_output_checkpointed(shape: ModelShape, d: Dims) -> int:
    """Under checkpointing, the cross-attention copies of a sliced encoder output are made inside the decoder's
    checkpointed blocks: what stays is the padded output they read, once."""
    attention = encoder_attention.effective(shape.encoder_attention, d.source)
    tokens = encoder_attention.layer_tokens(attention, d.source)
    if tokens == d.source or attention.kind == GLOBAL_LOCAL or d.batch == 1:
        return 0
    row = d.batch * shape.d_model * d.element
    return tokens * row - 2 * shape.decoder_layers * d.source * row


def _checkpoint_shared(shape: ModelShape, d: Dims) -> int:
    """Tensors every checkpointed block of a stack reads, kept once: T5's position biases (and the zero bias of the
    cross-attention, made to require grad under checkpointing), the decoder's causal mask."""
    e, b = d.element, d.batch
    held = b * d.target * d.target * e  # the causal mask, as an additive float tensor
    if shape.style == T5_STYLE:
        held += _encoder_position_bias(shape, d) + shape.decoder_heads * d.target * (d.target + d.source) * e
    return held
