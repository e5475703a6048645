"""What is true of each model family, in one table: the only module that names model types.

One row per `model_type` that t5peek knows. A view asks this table (`family(model_type)`, or the helpers below)
and never spells a model type itself, so adding a family or a view means adding a row or a column here.
Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The two layouts every view follows. T5-style: RMS norms, no biases, q·k unscaled, a relative position bias,
# modules named SelfAttention/EncDecAttention/DenseReluDense. BART-style: LayerNorm, biases, q·k scaled by
# 1/sqrt(d_kv), positions added to the embeddings, modules named self_attn/encoder_attn/fc1/fc2.
T5_STYLE, BART_STYLE, OTHER_STYLE, COMPOSITE_STYLE = "t5", "bart", "other", "composite"

# How a model knows where each token is. T5-style attention adds a learned bias per bucket of relative distance
# (no table of positions, so no position limit); the others add one vector per absolute position, from a learned
# table or fixed sinusoids.
RELATIVE, LEARNED, SINUSOIDAL = "relative", "learned", "sinusoidal"

# Where a decoder layer normalises: its sublayer's input (x + f(norm(x))) or the residual sum (norm(x + f(x))).
PRE_NORM, POST_NORM = "pre-norm", "post-norm"

# How a T5-style decoder output is scaled before lm_head (transformers' own rule, family by family): never (mT5),
# by d_model**-0.5 when config.scale_decoder_outputs says so (true unless tie_word_embeddings is false: T5,
# LongT5), or whenever the embeddings are tied (umT5, Switch).
NEVER, SCALE_DECODER_OUTPUTS, WHEN_TIED = "never", "scale_decoder_outputs", "when tied"

# What the encoder's self-attention computes (budget counts each one's matrix products and saved tensors): every token
# against every token; LongT5's blocks of local_radius + 1 tokens against their block and its two neighbours (with
# transient-global side keys when encoder_attention_type says so); LED's sliding window over chunks; BigBird's
# block-sparse pattern (full attention when the source is too short for it); PEGASUS-X's blocks plus global tokens.
DENSE, BLOCK_LOCAL, SLIDING_WINDOW, BLOCK_SPARSE, GLOBAL_LOCAL = (
    "dense", "block-local", "sliding-window", "block-sparse", "global-local")

_PARALLEL_STREAMS = "ProphetNet's decoder predicts n future tokens in parallel streams, which {} does not follow"


@dataclass(frozen=True)
class Family:
    model_type: str
    style: str  # T5_STYLE, BART_STYLE, OTHER_STYLE or COMPOSITE_STYLE
    positions: str | None  # RELATIVE, LEARNED or SINUSOIDAL
    # where the shared embedding lives when parameters are counted from headers alone: "" (T5-style, at the top),
    # "model" or "led" (BART-style); None: counted on the meta model instead
    embedding_base: str | None = None
    lens_norm: str | None = None  # PRE_NORM or POST_NORM: the lens reads this decoder; None: it does not
    final_norm: str | None = None  # the BART-style decoder's norm after its last layer, when it has one
    rescale: str = NEVER  # T5-style only: NEVER, SCALE_DECODER_OUTPUTS or WHEN_TIED
    attend_refused: str | None = None  # why `attend` does not recompute this family's attention
    encoder_attention: str = DENSE  # DENSE, BLOCK_LOCAL, SLIDING_WINDOW, BLOCK_SPARSE or GLOBAL_LOCAL
    relative_bias_every_block: bool = False  # umT5: a relative bias table in every block, not only the first
    experts_per_token: int = 1  # mixture of experts: how many experts transformers' router sends a token to
    budget_measured: bool = False  # every budget row checked against measurement (tests/test_budget_oracle.py)
    refused: dict[str, str] = field(default_factory=dict)  # command → why it does not support this family
    # config.json fields a view reads, with the value transformers' config class gives them when the file leaves
    # them out (checked against the classes in tests/test_family_defaults.py)
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def header_counted(self) -> bool:
        return self.embedding_base is not None

    @property
    def attend_supported(self) -> bool:
        return self.style in (T5_STYLE, BART_STYLE) and self.attend_refused is None


_T5_DEFAULTS = {"dropout_rate": 0.1, "d_kv": 64, "feed_forward_proj": "relu"}
_GATED_GELU = {"feed_forward_proj": "gated-gelu"}
_BART_DEFAULTS = {"dropout": 0.1, "attention_dropout": 0.0, "activation_dropout": 0.0, "activation_function": "gelu"}


def _t5(model_type: str, rescale: str, defaults: dict | None = None, **facts) -> Family:
    return Family(model_type, T5_STYLE, RELATIVE, embedding_base="", lens_norm=PRE_NORM, rescale=rescale,
                  defaults={**_T5_DEFAULTS, **(defaults or {})}, **facts)


def _bart(model_type: str, positions: str, defaults: dict | None = None, **facts) -> Family:
    return Family(model_type, BART_STYLE, positions, defaults={**_BART_DEFAULTS, **(defaults or {})}, **facts)


_ROWS = (
    _t5("t5", SCALE_DECODER_OUTPUTS, budget_measured=True),
    _t5("mt5", NEVER, _GATED_GELU),
    _t5("umt5", WHEN_TIED, _GATED_GELU, relative_bias_every_block=True),
    _t5("longt5", SCALE_DECODER_OUTPUTS, {"local_radius": 127, "global_block_size": 16,
                                          "encoder_attention_type": "local"}, encoder_attention=BLOCK_LOCAL,
        attend_refused="its encoder attends within local windows (and transient global blocks), not to every token"),
    Family("switch_transformers", T5_STYLE, RELATIVE, embedding_base="", lens_norm=PRE_NORM, rescale=WHEN_TIED,
           experts_per_token=1, defaults={"dropout_rate": 0.1, "d_kv": 64, "dense_act_fn": "relu"}),
    _bart("bart", LEARNED, embedding_base="model", lens_norm=POST_NORM, budget_measured=True),
    _bart("mbart", LEARNED, embedding_base="model", lens_norm=PRE_NORM, final_norm="layer_norm"),
    _bart("marian", SINUSOIDAL, lens_norm=POST_NORM, budget_measured=True),
    _bart("pegasus", SINUSOIDAL, embedding_base="model", lens_norm=PRE_NORM, final_norm="layer_norm"),
    _bart("m2m_100", SINUSOIDAL, {"attention_dropout": 0.1, "activation_function": "relu"}, embedding_base="model",
          lens_norm=PRE_NORM, final_norm="layer_norm"),
    _bart("blenderbot", LEARNED, embedding_base="model", lens_norm=PRE_NORM, final_norm="layer_norm"),
    _bart("blenderbot-small", LEARNED, lens_norm=POST_NORM),
    _bart("led", LEARNED, {"attention_window": 512}, embedding_base="led", lens_norm=POST_NORM,
          encoder_attention=SLIDING_WINDOW,
          attend_refused="its encoder attends within a sliding window (Longformer attention), not to every token"),
    _bart("plbart", LEARNED, {"attention_dropout": 0.1}, embedding_base="model", lens_norm=POST_NORM),
    _bart("mvp", LEARNED, lens_norm=POST_NORM, attend_refused="its attention can prepend learned prompt keys and "
                                                               "values"),
    _bart("pegasus_x", SINUSOIDAL, {"block_size": 512, "num_global_tokens": 32, "stagger_local_blocks": True},
          lens_norm=PRE_NORM, final_norm="layer_norm", encoder_attention=GLOBAL_LOCAL,
          attend_refused="its encoder attends within blocks plus global tokens, not to every token"),
    _bart("bigbird_pegasus", LEARNED, {"activation_function": "gelu_new", "attention_type": "block_sparse",
                                       "block_size": 64, "num_random_blocks": 3}, lens_norm=PRE_NORM,
          final_norm="layernorm_embedding", encoder_attention=BLOCK_SPARSE,
          attend_refused="its encoder's block-sparse attention is not one softmax over every token"),
    _bart("nllb-moe", SINUSOIDAL, {"attention_dropout": 0.1, "activation_function": "relu"}, experts_per_token=2),
    Family("fsmt", OTHER_STYLE, SINUSOIDAL, defaults={**_BART_DEFAULTS, "activation_function": "relu"}),
    Family("prophetnet", OTHER_STYLE, LEARNED,
           defaults={**_BART_DEFAULTS, "attention_dropout": 0.1, "activation_dropout": 0.1},
           attend_refused="its decoder predicts n future tokens in parallel streams",
           refused={"trace": _PARALLEL_STREAMS.format("the step-by-step trace"),
                    "generate": _PARALLEL_STREAMS.format("step-by-step decoding")}),
    Family("encoder-decoder", COMPOSITE_STYLE, LEARNED),
)

FAMILIES: dict[str, Family] = {row.model_type: row for row in _ROWS}


def family(model_type: str | None) -> Family | None:
    """The row of `model_type`, or None for a model type t5peek does not know."""
    return FAMILIES.get(model_type or "")


def style(model_type: str | None) -> str | None:
    found = family(model_type)
    return found.style if found else None


def is_t5_style(model_type: str | None) -> bool:
    return style(model_type) == T5_STYLE


def is_bart_style(model_type: str | None) -> bool:
    return style(model_type) == BART_STYLE


def position_kind(model_type: str | None) -> str | None:
    """relative, learned or sinusoidal; None for a model type t5peek does not know."""
    found = family(model_type)
    return found.positions if found else None


def config_field(raw: dict, key: str):
    """`key` of config.json, or the value transformers gives it when the file leaves it out (None: no default)."""
    value = raw.get(key)
    if value is not None:
        return value
    found = family(raw.get("model_type"))
    return found.defaults.get(key) if found else None


def t5_feed_forward(raw: dict) -> tuple[bool, str]:
    """(gated, activation) of a T5-style feed-forward, by transformers' rule: T5Config derives both from
    feed_forward_proj ("gated-gelu" means gelu_new), whatever dense_act_fn config.json holds; Switch Transformers
    names its dense_act_fn and has no gate."""
    projection = config_field(raw, "feed_forward_proj")
    if projection is None:
        return False, str(config_field(raw, "dense_act_fn"))
    parts = str(projection).split("-")
    return parts[0] == "gated", "gelu_new" if projection == "gated-gelu" else parts[-1]


def header_counted(model_type: str | None) -> bool:
    """Whether `t5peek params` counts this family from the safetensors headers alone (else on the meta model)."""
    found = family(model_type)
    return bool(found and found.header_counted)


def lens_families() -> tuple[str, ...]:
    return tuple(sorted(name for name, row in FAMILIES.items() if row.lens_norm))
