"""Where an intervention reads or writes inside a model, family by family.

Activation patching restores one *site* from a clean run into a corrupted one. A site is one module's output at
one position: an encoder block's output (the encoder stream after that block), or what one decoder sublayer
writes into the stream (self-attention, cross-attention or the feed-forward, before it is added), or, for
`cross_kv`, the keys and values one decoder layer's cross-attention projects from the encoder output.

Head knockout changes the input of an attention's output projection (T5's `o`, BART's `out_proj`): the
concatenated head outputs, one slice of `head_size` values per head.

torch is imported inside functions only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t5peek import families
from t5peek.errors import UnsupportedModel
from t5peek.lens.stream import check_family  # noqa: F401 - the views that write into the model follow the lens

ENCODER, SELF_ATTENTION, CROSS_ATTENTION, FEED_FORWARD, CROSS_KV = (
    "encoder", "self_attention", "cross_attention", "feed_forward", "cross_kv")
DECODER_KINDS = (SELF_ATTENTION, CROSS_ATTENTION, FEED_FORWARD)
SITE_KINDS = (ENCODER, *DECODER_KINDS, CROSS_KV)

# the attention kinds of head knockout, as the user names them (--head KIND:L.H)
HEAD_KINDS = ("encoder", "self", "cross")


@dataclass(frozen=True)
class Attention:
    """One attention module: its output projection, its heads and their width."""

    module: Any
    output_projection: Any
    heads: int
    head_size: int


@dataclass(frozen=True)
class Sites:
    """The modules of one model that interventions read and write."""

    embedding: Any  # the encoder's token embedding (its output is what the encoder's first block reads, unscaled)
    encoder_blocks: tuple  # output[0]: the encoder stream after each block
    decoder: dict  # DECODER_KINDS -> per decoder layer, the module whose output is what that sublayer writes
    cross_kv: tuple  # per decoder layer: (key projection, value projection) of its cross-attention
    attention: dict  # HEAD_KINDS -> per layer, an Attention (a kind is missing where the family's differs)

    @property
    def encoder_layers(self) -> int:
        return len(self.encoder_blocks)

    @property
    def decoder_layers(self) -> int:
        return len(self.decoder[SELF_ATTENTION])


def find_sites(model, model_type: str, name: str, command: str) -> Sites:
    if families.is_t5_style(model_type):
        sites = _t5(model)
    else:
        sites = _bart(model)
    if sites is None:
        raise UnsupportedModel(f"t5peek {command} cannot find the layers of '{name}' ({model_type}): its modules "
                               "are not laid out as its family's are.")
    return sites


def _t5(model) -> Sites | None:
    encoder, decoder = model.get_encoder(), model.get_decoder()
    try:
        blocks = list(decoder.block)
        self_attention = tuple(block.layer[0].SelfAttention for block in blocks)
        cross_attention = tuple(block.layer[1].EncDecAttention for block in blocks)
        feed_forward = tuple(_t5_feed_forward(block.layer[-1]) for block in blocks)
    except (AttributeError, IndexError):
        return None
    attention = {"self": tuple(_t5_attention(a) for a in self_attention),
                 "cross": tuple(_t5_attention(a) for a in cross_attention)}
    encoder_attention = [getattr(block.layer[0], "SelfAttention", None) for block in encoder.block]
    if all(a is not None and hasattr(a, "o") for a in encoder_attention):  # not LongT5's local attention
        attention["encoder"] = tuple(_t5_attention(a) for a in encoder_attention)
    return Sites(encoder.embed_tokens, tuple(encoder.block),
                 {SELF_ATTENTION: self_attention, CROSS_ATTENTION: cross_attention, FEED_FORWARD: feed_forward},
                 tuple((a.k, a.v) for a in cross_attention), attention)


def _t5_feed_forward(layer):
    """T5's `DenseReluDense`; Switch Transformers' `mlp` (dense or routed to experts)."""
    for attribute in ("DenseReluDense", "mlp"):
        if hasattr(layer, attribute):
            return getattr(layer, attribute)
    raise AttributeError("no feed-forward")


def _t5_attention(module) -> Attention:
    return Attention(module, module.o, module.n_heads, module.key_value_proj_dim)


def _bart(model) -> Sites | None:
    encoder, decoder = model.get_encoder(), model.get_decoder()
    try:
        layers = list(decoder.layers)
        self_attention = tuple(layer.self_attn for layer in layers)
        cross_attention = tuple(layer.encoder_attn for layer in layers)
        feed_forward = tuple(layer.fc2 for layer in layers)
        kv = tuple((a.k_proj, a.v_proj) for a in cross_attention)
        encoder_blocks = tuple(encoder.layers)
    except AttributeError:
        return None
    attention = {"self": tuple(_bart_attention(a) for a in self_attention),
                 "cross": tuple(_bart_attention(a) for a in cross_attention)}
    encoder_attention = [getattr(layer, "self_attn", None) for layer in encoder_blocks]
    if all(a is not None and hasattr(a, "out_proj") and hasattr(a, "head_dim") for a in encoder_attention):
        attention["encoder"] = tuple(_bart_attention(a) for a in encoder_attention)
    return Sites(encoder.embed_tokens, encoder_blocks,
                 {SELF_ATTENTION: self_attention, CROSS_ATTENTION: cross_attention, FEED_FORWARD: feed_forward},
                 kv, attention)


def _bart_attention(module) -> Attention:
    return Attention(module, module.out_proj, module.num_heads, module.head_dim)
