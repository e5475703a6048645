"""What an encoder's self-attention computes when it is not every token against every token, read from config.json.

Each pattern follows transformers' eager code (5.24), matrix product by matrix product:

- LongT5 local (`local_radius`): queries in blocks of local_radius + 1 tokens, each block against itself and its two
  neighbours, the sequence zero-padded to whole blocks inside the attention only. Transient-global adds, per block,
  one side key per `global_block_size` tokens (source // global_block_size of them): their sums (one product with a
  one-hot matrix) pass a norm and the k and v projections.
- LED (`attention_window`, one per layer): the source is padded to a multiple of the largest window before the
  first layer and every layer runs on the padded length; scores are products of overlapping chunks of 2w tokens
  (w = window / 2), the context reads chunks of 3w values (the padding mask's chunked product has a width of one:
  torch runs it as a multiplication, not a matrix product).
  Global attention (only with a global_attention_mask, which generate() does not set) is not counted.
- BigBird (`block_size`, `num_random_blocks`): block-sparse only when the source is longer than
  (5 + 2 × num_random_blocks) blocks, else full attention (transformers switches the model to it); block-sparse runs
  on the source padded to whole blocks: the first and last query blocks see every key, the second and second-last
  4 + r blocks, the others 5 + r blocks (its masks are outer products, which torch runs as multiplications).
- PEGASUS-X (`block_size`, `num_global_tokens`, `stagger_local_blocks`): the source padded to whole blocks, plus
  the global tokens, through every projection and feed-forward; each block attends to itself and the global tokens,
  the global tokens to everything; every second layer (staggered) pads half a block on both sides for its attention.
  The last layer's global tokens are computed and never read: backward skips their branch.
"""

from __future__ import annotations

from dataclasses import dataclass

from t5peek import families
from t5peek.families import BLOCK_LOCAL, BLOCK_SPARSE, DENSE, GLOBAL_LOCAL, SLIDING_WINDOW


@dataclass(frozen=True)
class EncoderAttention:
    kind: str = DENSE
    block: int = 0  # LongT5: local_radius + 1; BigBird, PEGASUS-X: block_size
    windows: tuple[int, ...] = ()  # LED: attention_window of each layer
    global_block: int = 0  # LongT5 transient-global: global_block_size (0: local attention only)
    global_tokens: int = 0  # PEGASUS-X
    random_blocks: int = 0  # BigBird
    stagger: bool = False  # PEGASUS-X


def read(raw: dict, encoder_layers: int) -> EncoderAttention:
    row = families.family(raw.get("model_type"))
    kind = row.encoder_attention if row else DENSE
    field = families.config_field
    if kind == BLOCK_LOCAL:
        transient = field(raw, "encoder_attention_type") == "transient-global"
        return EncoderAttention(kind, block=int(field(raw, "local_radius")) + 1,
                                global_block=int(field(raw, "global_block_size")) if transient else 0)
    if kind == SLIDING_WINDOW:
        window = field(raw, "attention_window")
        windows = tuple(int(w) for w in window) if isinstance(window, (list, tuple)) else \
            (int(window),) * encoder_layers
        return EncoderAttention(kind, windows=windows)
    if kind == BLOCK_SPARSE:
        if field(raw, "attention_type") != "block_sparse":
            return EncoderAttention()
        return EncoderAttention(kind, block=int(field(raw, "block_size")),
                                random_blocks=int(field(raw, "num_random_blocks")))
    if kind == GLOBAL_LOCAL:
        return EncoderAttention(kind, block=int(field(raw, "block_size")),
                                global_tokens=int(field(raw, "num_global_tokens")),
                                stagger=bool(field(raw, "stagger_local_blocks")))
    return EncoderAttention()


def _whole(length: int, multiple: int) -> int:
    return -(-length // multiple) * multiple


def effective(attention: EncoderAttention, source: int) -> EncoderAttention:
    """The pattern that runs at this source length: BigBird's short sources get full attention."""
    if attention.kind == BLOCK_SPARSE and source <= (5 + 2 * attention.random_blocks) * attention.block:
        return EncoderAttention()
    return attention


def layer_tokens(attention: EncoderAttention, source: int) -> int:
    """How many token positions each encoder layer's projections and feed-forward run over."""
    if attention.kind == SLIDING_WINDOW:
        return _whole(source, max(attention.windows))
    if attention.kind in (BLOCK_SPARSE, GLOBAL_LOCAL):
        return _whole(source, attention.block)
    return source


def feed_forward_tokens(attention: EncoderAttention, source: int) -> int:
    """Token positions through one encoder feed-forward: PEGASUS-X's global tokens go through it too."""
    return layer_tokens(attention, source) + attention.global_tokens


def last_feed_forward_tokens(attention: EncoderAttention, source: int) -> int:
    """Token positions through the last feed-forward projection of an encoder layer: PEGASUS-X runs its global
    tokens' feed-forward after the others'."""
    return attention.global_tokens if attention.kind == GLOBAL_LOCAL else layer_tokens(attention, source)


@dataclass(frozen=True)
class Products:
    """Matrix-product FLOPs: all of them; those of products with one input that needs no gradient (backward runs one
    product for them, not two); those whose output never reaches the loss (backward runs none)."""
    forward: int
    one_gradient: int = 0
    no_gradient: int = 0

    def __add__(self, other: Products) -> Products:
        return Products(self.forward + other.forward, self.one_gradient + other.one_gradient,
                        self.no_gradient + other.no_gradient)

    @property
    def backward(self) -> int:
        return 2 * self.forward - self.one_gradient - 2 * self.no_gradient


def unused_global_tokens(attention: EncoderAttention, layer: int, layers: int) -> int:
    """PEGASUS-X's last layer updates its global tokens, and nothing reads them: no gradient reaches that branch."""
    return attention.global_tokens if attention.kind == GLOBAL_LOCAL and layer == layers - 1 else 0


def products(attention: EncoderAttention, d_model: int, heads: int, d_kv: int, batch: int, source: int,
             layer: int, layers: int) -> Products:
    """One encoder self-attention sublayer: projections, scores, context (and what else the pattern runs)."""
    inner = heads * d_kv
    attention = effective(attention, source)
    tokens = layer_tokens(attention, source)

    def project(rows: int, count: int) -> int:
        return count * 2 * rows * d_model * inner

    def scores_and_context(queries: int, keys: int) -> int:  # summed over every query row of the batch and heads
        return 2 * 2 * batch * heads * queries * keys * d_kv

    if attention.kind == BLOCK_LOCAL:
        block = attention.block
        blocks = -(-source // block)
        side = source // attention.global_block if attention.global_block else 0
        found = Products(project(batch * source, 4) + scores_and_context(blocks * block, 3 * block + side))
        if attention.global_block:
            # the side keys and values; the block sums: hidden states times a one-hot matrix that needs no gradient
            found += Products(project(batch * side, 2) + 2 * batch * source * d_model * side,
                              one_gradient=2 * batch * source * d_model * side)
        return found
    if attention.kind == SLIDING_WINDOW:
        w = attention.windows[layer] // 2
        chunks = tokens // w - 1
        scores = 2 * batch * heads * chunks * (2 * w) ** 2 * d_kv
        context = 2 * batch * heads * (tokens // w) * w * 3 * w * d_kv
        return Products(project(batch * tokens, 4) + scores + context)
    if attention.kind == BLOCK_SPARSE:
        block, r, blocks = attention.block, attention.random_blocks, tokens // attention.block
        keys = 2 * block * tokens + 2 * block * (4 + r) * block + (blocks - 4) * block * (5 + r) * block
        return Products(project(batch * tokens, 4) + 2 * 2 * batch * heads * keys * d_kv)
    if attention.kind == GLOBAL_LOCAL:
        staggered = tokens + (attention.block if attention.stagger and layer % 2 == 1 else 0)
        g = attention.global_tokens
        found = Products(project(batch * (staggered + g), 4) + scores_and_context(g, g + staggered) +
                         scores_and_context(staggered, g + attention.block))
        unused = unused_global_tokens(attention, layer, layers)  # their query and output projections, attention
        return found + Products(0, no_gradient=project(batch * unused, 2) + scores_and_context(unused, g + staggered))
    return Products(project(batch * source, 4) + scores_and_context(source, source))


def scores(attention: EncoderAttention, heads: int, source: int) -> int:
    """Attention scores of one sequence in the encoder layer that computes the most (the pattern's softmax input;
    LED's chunked product, which is larger than its band)."""
    attention = effective(attention, source)
    tokens = layer_tokens(attention, source)
    if attention.kind == BLOCK_LOCAL:
        blocks, side = -(-source // attention.block), source // attention.global_block if attention.global_block else 0
        return heads * blocks * attention.block * (3 * attention.block + side)
    if attention.kind == SLIDING_WINDOW:
        w = max(attention.windows) // 2
        return heads * (tokens // w - 1) * (2 * w) ** 2
    if attention.kind == BLOCK_SPARSE:
        bs, r, n = attention.block, attention.random_blocks, tokens // attention.block
        return heads * bs * (2 * tokens + 2 * (4 + r) * bs + (n - 4) * (5 + r) * bs)
    if attention.kind == GLOBAL_LOCAL:
        staggered, g = tokens + (attention.block if attention.stagger else 0), attention.global_tokens
        return heads * (g * (g + staggered) + staggered * (g + attention.block))
    return heads * source * source
