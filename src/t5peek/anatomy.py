"""One table that maps each family's module and tensor names to roles, and the config keys each family uses.

T5 names its parts `SelfAttention`, `EncDecAttention`, `DenseReluDense`; BART names them `self_attn`,
`encoder_attn`, `fc1`/`fc2`. Both land in the same roles, so every command can speak one language.
"""

from __future__ import annotations

import re

from t5peek import families
from t5peek.errors import BadCheckpoint, UnsupportedModel

EMBEDDING = "embedding"
POSITION = "position"
SELF_ATTENTION = "self-attention"
CROSS_ATTENTION = "cross-attention"
FEED_FORWARD = "feed-forward"
EXPERTS = "experts"  # the expert feed-forward networks of a mixture-of-experts layer (Switch Transformers)
ROUTER = "router"
NORM = "norm"
LM_HEAD = "lm_head"
OTHER = "other"

ROLE_ORDER = (EMBEDDING, POSITION, SELF_ATTENTION, CROSS_ATTENTION, FEED_FORWARD, EXPERTS, ROUTER, NORM, LM_HEAD,
              OTHER)

# First match wins: norms and position biases live inside attention modules, so they are tested first.
# BERT (EncoderDecoderModel's bert2bert) names its parts attention.self.query, attention.output.dense (self-attention),
# crossattention.* (cross-attention), intermediate.dense and output.dense (feed-forward), and its LM head
# cls.predictions.*, all of which the patterns below place.
_ROLE_PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    (LM_HEAD, re.compile(r"(^|\.)(lm_head|final_logits_bias|output_projection)(\.|$)|(^|\.)cls\.predictions(\.|$)")),
    (POSITION, re.compile(r"relative_attention_bias|embed_positions|position_embeddings|relative_pos_embeddings")),
    (NORM, re.compile(r"layer_norm|layernorm|LayerNorm|(^|\.)ln_?\w*(\.|$)|(^|\.)norm(\.|$)")),
    (ROUTER, re.compile(r"(^|\.)router(\.|$)")),
    (EXPERTS, re.compile(r"(^|\.)experts(\.|$)")),
    (CROSS_ATTENTION, re.compile(r"EncDecAttention|encoder_attn|crossattention|cross_attn|cross_attention")),
    (SELF_ATTENTION, re.compile(r"SelfAttention|self_attn|(^|\.)attention(\.|$)|(^|\.)attn(\.|$)")),
    (FEED_FORWARD, re.compile(r"DenseReluDense|(^|\.)(fc1|fc2|mlp|intermediate|output|ffn)(\.|$)")),
    (EMBEDDING, re.compile(r"(^|\.)(shared|embed_tokens|word_embeddings|embeddings|embed_global|ngram_embeddings)"
                           r"(\.|$)")),
)

_LAYER = re.compile(r"(?:^|\.)(?:block|layers|layer)\.(\d+)(?:\.|$)")


def role_of(name: str) -> str:
    """The role of a tensor or module, from its dotted name."""
    for role, pattern in _ROLE_PATTERNS:
        if pattern.search(name):
            return role
    return OTHER


def stack_of(name: str) -> str:
    """encoder, decoder, or shared (embeddings and head that sit outside both stacks).

    The outermost of the two names decides: EncoderDecoderModel's BERT decoder lives at `decoder.bert.encoder.layer.0`.
    """
    for part in name.split("."):
        if part in ("encoder", "decoder"):
            return part
    return "shared"


def layer_of(name: str) -> int | None:
    """The block index of a name inside a stack (`encoder.block.3...` → 3), None outside blocks."""
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


def check_supported(model_type: str | None, command: str, name: str) -> None:
    """Raise UnsupportedModel (exit 2) when `command` does not support this model_type yet."""
    found = families.family(model_type)
    reason = found.refused.get(command) if found else None
    if reason:
        raise UnsupportedModel(f"t5peek {command} does not support {model_type} models like '{name}' yet: {reason}.")


# transformers' defaults when config.json leaves them out (T5Config, MT5Config, UMT5Config, LongT5Config, ...)
RELATIVE_DEFAULTS = {"relative_attention_num_buckets": 32, "relative_attention_max_distance": 128}


def relative_buckets(raw_config: dict) -> tuple[int, int]:
    """(buckets, max distance) of a T5-family model's relative position bias."""
    return tuple(raw_config.get(key) or default for key, default in RELATIVE_DEFAULTS.items())


# Tensors stored in checkpoints that are buffers, not parameters.
STORED_BUFFERS = {"final_logits_bias"}


def tied_weights(model_type: str, raw_config: dict) -> dict[str, str]:
    """target → source tensor names that transformers ties, for the header-counted families."""
    found = families.family(model_type)
    if found is None or not found.header_counted:
        return {}
    if found.style == families.T5_STYLE:
        # transformers 5 forces tie_word_embeddings=True for the whole T5 family; an untied lm_head is
        # kept apart only when the checkpoint stores different values for it.
        return {"encoder.embed_tokens.weight": "shared.weight", "decoder.embed_tokens.weight": "shared.weight",
                "lm_head.weight": "shared.weight"}
    if raw_config.get("tie_word_embeddings", True) is False:
        return {}
    base = found.embedding_base
    return {f"{base}.encoder.embed_tokens.weight": f"{base}.shared.weight",
            f"{base}.decoder.embed_tokens.weight": f"{base}.shared.weight",
            "lm_head.weight": f"{base}.shared.weight"}


def head_declared_untied(raw_config: dict) -> bool:
    """Whether config.json itself says the output head is not tied (T5 v1.1, flan-t5)."""
    return raw_config.get("tie_word_embeddings") is False


# Config keys differ between families; each summary field reads the first key present.
CONFIG_KEYS = {
    "encoder_layers": ("num_layers", "encoder_layers", "num_encoder_layers", "num_hidden_layers"),
    "decoder_layers": ("num_decoder_layers", "decoder_layers", "num_layers", "num_hidden_layers"),
    "d_model": ("d_model", "hidden_size"),
    "heads": ("num_heads", "encoder_attention_heads", "num_encoder_attention_heads", "num_attention_heads"),
    "decoder_heads": ("num_heads", "decoder_attention_heads", "num_decoder_attention_heads", "num_attention_heads"),
    "d_ff": ("d_ff", "encoder_ffn_dim", "intermediate_size"),
    "activation": ("feed_forward_proj", "activation_function", "hidden_act", "dense_act_fn"),
    "vocab_size": ("vocab_size", "tgt_vocab_size"),
    "max_positions": ("max_position_embeddings", "n_positions", "max_encoder_position_embeddings"),
    "decoder_max_positions": ("max_decoder_position_embeddings", "max_position_embeddings", "n_positions"),
}


def config_value(raw_config: dict, field: str):
    for key in CONFIG_KEYS[field]:
        value = raw_config.get(key)
        if value is not None:
            return value
    return None


# Far beyond any published encoder-decoder (flan-t5-xxl: 24 layers, d_model 4096, d_ff 10240, 64 heads), and
# small enough that building the model on the meta device stays quick. A config past them is damaged or hostile.
SIZE_LIMITS = {"encoder_layers": 1024, "decoder_layers": 1024, "d_model": 1 << 17, "heads": 4096,
               "decoder_heads": 4096, "d_ff": 1 << 20, "vocab_size": 1 << 24}


def check_sizes(raw: dict, name: str) -> None:
    """The sizes config.json gives, checked before anything is built from them."""
    for part in (raw, raw.get("encoder"), raw.get("decoder")):
        if not isinstance(part, dict):
            continue
        for field, limit in SIZE_LIMITS.items():
            value = config_value(part, field)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
                raise BadCheckpoint(f"config.json of '{name}' gives {field} = {value!r}; t5peek reads configs with "
                                    f"a whole number from 1 to {limit:,} there.",
                                    hint="The file is damaged or not a real model's config.")
        _check_relative_positions(part, name)


def _check_relative_positions(part: dict, name: str) -> None:
    """T5's bucketed relative positions divide by log(max distance / exact buckets): both must leave room."""
    if part.get("relative_attention_num_buckets") is None and part.get("relative_attention_max_distance") is None:
        return
    buckets, distance = relative_buckets(part)
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in (buckets, distance))
    if not whole or not 4 <= buckets <= 4096 or not buckets // 2 < distance <= 1 << 24:
        raise BadCheckpoint(f"config.json of '{name}' gives relative_attention_num_buckets = {buckets!r} and "
                            f"relative_attention_max_distance = {distance!r}; T5's relative positions need 4 to "
                            "4,096 buckets and a max distance above half the buckets.",
                            hint="The file is damaged or not a real model's config.")
