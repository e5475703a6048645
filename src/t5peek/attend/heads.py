"""Where one attention head lives, and the family facts its scores depend on.

T5-style models (t5, mt5, umt5, switch_transformers) name their projections q, k, v, o (no biases), do not scale
q · k, and add a learned bias per bucket of relative distance: the table sits in the first block of each stack and
is shared by the blocks above it (umt5 keeps one per block); cross-attention has none. BART-style models name them
q_proj, k_proj, v_proj, out_proj (with biases), multiply q · k by 1/sqrt(d_kv), and add no position bias: positions
were added to the embeddings before the first layer.

Nothing here imports torch at module level.
"""

from __future__ import annotations

from dataclasses import dataclass

from t5peek import anatomy, families
from t5peek.attend.records import AttentionKind
from t5peek.errors import UnsupportedModel, UsageError

def check_family(model_type: str | None, name: str) -> None:
    """Refuse (exit 2, one line) the families whose attention this view does not recompute."""
    row = families.family(model_type)
    if row is not None and row.attend_supported:
        return
    reason = (row and row.attend_refused) or "only T5-style and BART-style attention is recomputed"
    raise UnsupportedModel(f"t5peek attend does not support {model_type} models like '{name}': {reason}.",
                           hint="It reads the T5 family (t5, flan-t5, mt5, umt5, switch) and the BART family (bart, "
                                "mbart, marian, pegasus, m2m_100/nllb, blenderbot, plbart).")


@dataclass(frozen=True)
class Shape:
    """The sizes config.json gives for the chosen attention."""

    layers: int
    heads: int


def config_shape(raw: dict, kind: AttentionKind) -> Shape:
    stack = "encoder" if kind is AttentionKind.ENCODER_SELF else "decoder"
    layers = anatomy.config_value(raw, f"{stack}_layers")
    heads = anatomy.config_value(raw, "heads" if stack == "encoder" else "decoder_heads")
    return Shape(int(layers), int(heads))


def check_layer_and_head(raw: dict, name: str, kind: AttentionKind, layer: int | None, head: int) -> int:
    """The layer to show (the last when None), both checked against the config; errors name the valid range."""
    shape = config_shape(raw, kind)
    where = f"the {kind.stack} of '{name}'"
    if layer is None:
        layer = shape.layers - 1
    if not 0 <= layer < shape.layers:
        raise UsageError(f"--layer {layer} is out of range: {where} has layers 0 to {shape.layers - 1}.")
    if not 0 <= head < shape.heads:
        raise UsageError(f"--head {head} is out of range: the {kind} of '{name}' has heads 0 to {shape.heads - 1}.")
    return layer


@dataclass(frozen=True)
class HeadSite:
    """The attention module of the chosen layer, and the module whose table gives it a position bias."""

    name: str  # dotted module name
    module: object  # the attention module (T5Attention, BartAttention, ...)
    query: object  # its q / q_proj Linear
    key: object
    value: object
    output: object  # its o / out_proj Linear
    bias_table: object | None  # T5: the nn.Embedding of relative-position biases this attention adds


def locate(model, model_type: str, kind: AttentionKind, layer: int) -> HeadSite:
    """The attention module of `layer` in the encoder or decoder, by the family's own module names."""
    if families.is_t5_style(model_type):
        sublayer, attribute = (1, "EncDecAttention") if kind is AttentionKind.CROSS else (0, "SelfAttention")
        name = f"{kind.stack}.block.{layer}.layer.{sublayer}.{attribute}"
        module = model.get_submodule(name)
        bias_table = None
        if kind is not AttentionKind.CROSS:
            owner = module if module.has_relative_attention_bias else \
                model.get_submodule(f"{kind.stack}.block.0.layer.0.SelfAttention")
            bias_table = owner.relative_attention_bias
        return HeadSite(name, module, module.q, module.k, module.v, module.o, bias_table)
    block = f"{model.base_model_prefix}.{kind.stack}.layers.{layer}"
    attribute = "self_attn"
    if kind is AttentionKind.CROSS:  # nllb-moe names it cross_attention, the others encoder_attn
        attribute = "encoder_attn" if hasattr(model.get_submodule(block), "encoder_attn") else "cross_attention"
    module = model.get_submodule(f"{block}.{attribute}")
    return HeadSite(f"{block}.{attribute}", module, module.q_proj, module.k_proj, module.v_proj, module.out_proj,
                    None)


def scaling(model_type: str, d_kv: int) -> float:
    """What q · k is multiplied by before the softmax: T5 folds it into its initialisation and does not scale."""
    return 1.0 if families.is_t5_style(model_type) else d_kv ** -0.5


def relative_buckets(relative_positions, bidirectional: bool, buckets: int, max_distance: int):
    """T5's bucket of each relative position (key − query), a LongTensor like `relative_positions`.

    Half the buckets (a quarter each way when bidirectional) hold one distance each; the rest cover distances up to
    `max_distance` on a log scale, and everything farther shares the last bucket. A decoder (not bidirectional)
    only looks back: a key ahead of the query counts as distance 0. The float32 arithmetic is the model's own, so
    the boundaries of the log buckets fall where the model puts them.
    """
    import math

    import torch

    offset = torch.zeros_like(relative_positions)
    if bidirectional:
        buckets //= 2
        offset = (relative_positions > 0).to(torch.long) * buckets
        distance = relative_positions.abs()
    else:
        distance = -torch.clamp(relative_positions, max=0)
    exact = buckets // 2
    logarithmic = exact + (torch.log(distance.float() / exact) / math.log(max_distance / exact)
                           * (buckets - exact)).to(torch.long)
    logarithmic = torch.clamp(logarithmic, max=buckets - 1)
    return offset + torch.where(distance < exact, distance, logarithmic)
