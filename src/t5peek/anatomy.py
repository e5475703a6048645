"""One table that maps each family's module and tensor names to roles, and the config keys each family uses.

T5 names its parts `SelfAttention`, `EncDecAttention`, `DenseReluDense`; BART names them `self_attn`,
`encoder_attn`, `fc1`/`fc2`. Both land in the same roles, so every command can speak one language.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import math
import re
from pathlib import Path

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
    return tuple(default if raw_config.get(key) is None else raw_config[key]
                 for key, default in RELATIVE_DEFAULTS.items())


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
               "decoder_heads": 4096, "d_ff": 1 << 20, "vocab_size": 1 << 24, "max_positions": 1 << 20,
               "decoder_max_positions": 1 << 20}
# Size keys views read besides those of CONFIG_KEYS, with the field whose bound they share.
_MORE_SIZES = {"d_kv": "d_model", "decoder_ffn_dim": "d_ff", "src_vocab_size": "vocab_size",
               "decoder_vocab_size": "vocab_size"}
_SIZE_BOUNDS = {**{key: SIZE_LIMITS[field] for field in SIZE_LIMITS for key in CONFIG_KEYS[field]},
                **{key: SIZE_LIMITS[field] for key, field in _MORE_SIZES.items()}}
# (buckets, max distance) of the relative position buckets transformers computes (T5's, and ProphetNet's).
_RELATIVE_PAIRS = (("relative_attention_num_buckets", "relative_attention_max_distance"),
                   ("num_buckets", "relative_max_distance"))
_EPSILONS = ("layer_norm_epsilon", "layer_norm_eps")  # float fields in transformers' config classes
_PROBABILITIES = ("dropout_rate", "dropout", "attention_dropout", "activation_dropout", "classifier_dropout",
                  "hidden_dropout_prob", "attention_probs_dropout_prob", "encoder_layerdrop", "decoder_layerdrop",
                  "moe_token_dropout")
_SWITCHES = ("tie_word_embeddings", "is_encoder_decoder", "is_gated_act", "scale_decoder_outputs")
_ACTIVATIONS = ("dense_act_fn", "activation_function", "hidden_act")  # names of transformers' ACT2FN
_DAMAGED = "The file is damaged or not a real model's config."


def check_sizes(raw: dict, name: str) -> None:
    """The values of config.json that transformers builds the model from and views compute with (sizes, dropout
    rates, norm epsilons, activations, switches), checked before anything is built from them: one that no real
    model has is a damaged or hostile file (BadCheckpoint), named with its field."""
    for prefix, part in (("", raw), ("encoder.", raw.get("encoder")), ("decoder.", raw.get("decoder"))):
        if isinstance(part, dict):
            _check_part(part, lambda key, value, rule, at=prefix: _refuse(name, at + key, value, rule))


def _check_part(part: dict, refuse) -> None:
    def field(key: str):
        return families.config_field(part, key)

    for key, limit in _SIZE_BOUNDS.items():
        value = field(key)
        if value is not None and not (_is_whole(value) and 0 < value <= limit):
            refuse(key, value, f"t5peek reads configs with a whole number from 1 to {limit:,} there")
    for key in _EPSILONS:
        value = field(key)
        if value is not None and not (isinstance(value, float) and math.isfinite(value) and value > 0):
            refuse(key, value, "the norms need a decimal number above 0 there")
    for key in _PROBABILITIES:
        value = field(key)
        if value is not None and not (_is_number(value) and 0 <= value <= 1):
            refuse(key, value, "a dropout probability is a number from 0 to 1")
    for key in _SWITCHES:
        value = field(key)
        if value is not None and not isinstance(value, bool):
            refuse(key, value, "it is true or false")
    for key in _ACTIVATIONS:
        value = field(key)
        if value is not None and not (isinstance(value, str) and value in activation_names()):
            refuse(key, value, "transformers knows no such activation")
    _check_feed_forward(field("feed_forward_proj"), refuse)
    for buckets_key, distance_key in _RELATIVE_PAIRS:
        _check_relative_positions(part, buckets_key, distance_key, refuse)


def _check_feed_forward(projection, refuse) -> None:
    """T5's feed_forward_proj, read as T5Config reads it: `gated-ACT` or `ACT`, ACT an activation transformers
    knows."""
    if projection is None:
        return
    parts = projection.split("-") if isinstance(projection, str) else []
    if not 1 <= len(parts) <= 2 or len(parts) == 2 and parts[0] != "gated":
        refuse("feed_forward_proj", projection, "transformers reads 'gated-ACT' or 'ACT' there, like 'gated-gelu' "
                                                "or 'relu'")
    elif parts[-1] not in activation_names():
        refuse("feed_forward_proj", projection, f"transformers knows no activation '{parts[-1]}'")


def _check_relative_positions(part: dict, buckets_key: str, distance_key: str, refuse) -> None:
    """Bucketed relative positions divide by log(max distance / exact buckets): both must leave room."""
    buckets, distance = part.get(buckets_key), part.get(distance_key)
    if buckets is None and distance is None:
        return
    buckets = RELATIVE_DEFAULTS["relative_attention_num_buckets"] if buckets is None else buckets
    distance = RELATIVE_DEFAULTS["relative_attention_max_distance"] if distance is None else distance
    if not _is_whole(buckets) or not 4 <= buckets <= 4096:
        refuse(buckets_key, buckets, "relative positions need a whole number of buckets from 4 to 4,096")
    if not _is_whole(distance) or not buckets // 2 < distance <= 1 << 24:
        refuse(distance_key, distance, f"relative positions need a whole max distance above half the "
                                       f"{buckets:,} buckets, up to {1 << 24:,}")


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _refuse(name: str, key: str, value, rule: str):
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise BadCheckpoint(f"config.json of '{name}' gives {key} = {shown}; {rule}.", hint=_DAMAGED)


@functools.cache
def activation_names() -> frozenset[str]:
    """The activation names transformers' ACT2FN maps, read from transformers' own source: importing
    transformers.activations imports torch, which config-only commands (info, params, budget) never load."""
    spec = importlib.util.find_spec("transformers")
    source = Path(spec.submodule_search_locations[0]) / "activations.py" if spec else None
    if source is not None and source.is_file():
        for node in ast.parse(source.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["ACT2CLS"] \
                    and isinstance(node.value, ast.Dict):
                return frozenset(key.value for key in node.value.keys if isinstance(key, ast.Constant))
    from transformers.activations import ACT2FN  # the table moved: ask transformers itself

    return frozenset(ACT2FN)
