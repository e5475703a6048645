"""The sizes a memory and compute budget needs, read from config.json and the safetensors headers only.

Depths, widths and heads come from `anatomy.config_value` (one lookup for every family); the parameter tensors come
from the same functions `t5peek params` counts with, so the totals agree (tied weights once).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from t5peek import anatomy, families, params, seq2seq
from t5peek.budget.encoder_attention import EncoderAttention, read as read_encoder_attention
from t5peek.checkpoint import CheckpointIndex

T5_STYLE, BART_STYLE = families.T5_STYLE, families.BART_STYLE
_EXPERT = re.compile(r"experts\.(?:expert_)?(\d+)\.")
_ROUTER = re.compile(r"\.router\.")


@dataclass(frozen=True)
class ModelShape:
    model_type: str
    style: str  # t5: RMS norms, no biases, relative bias; bart: LayerNorm, biases, position tables
    encoder_layers: int
    decoder_layers: int
    d_model: int
    heads: int
    decoder_heads: int
    d_kv: int  # per head
    encoder_ffn: int
    decoder_ffn: int
    vocab: int  # rows of the output head: the logits per token
    gated: bool  # two input projections in the feed-forward (flan-t5's gated-gelu)
    activation: str
    rescale_output: bool  # tied T5: the decoder output times d_model**-0.5 before lm_head
    relative_bias_everywhere: bool  # umT5: a relative bias in every block, not only the first
    dropout: float
    attention_dropout: float
    activation_dropout: float
    outer_norms: tuple[int, int]  # LayerNorms outside the blocks (embedding norm, final norm), encoder and decoder
    parameters: int  # as `t5peek params` counts them
    trainable: int  # what a real optimizer step updates: every parameter of a model from from_pretrained
    tensors: int  # trainable tensors
    factored_elements: int  # Adafactor's second moments: rows + columns of each matrix, every element of a vector
    expert_parameters: int
    experts: int
    experts_per_token: int
    measured: bool
    pre_norm: bool = False  # each sublayer normalises its input (x + f(norm(x))), as the lens reads the decoder
    encoder_attention: EncoderAttention = EncoderAttention()
    router_layers: tuple[int, int] = (0, 0)  # layers with a mixture-of-experts router, encoder and decoder

    @property
    def inner(self) -> int:
        return self.heads * self.d_kv

    @property
    def decoder_inner(self) -> int:
        return self.decoder_heads * self.d_kv


def parameter_tensors(raw: dict, checkpoint: CheckpointIndex | None, meta_model_factory) -> list[params.Tensor]:
    """The distinct parameters, found exactly as `t5peek params` finds them (headers when they are enough)."""
    model_type = raw["model_type"]
    if checkpoint is not None and checkpoint.format == "safetensors" and checkpoint.tensors and \
            families.header_counted(model_type):
        return params.tensors_from_headers(model_type, raw, checkpoint)
    return params.tensors_from_model(meta_model_factory())


def read_shape(raw: dict, tensors: list[params.Tensor]) -> ModelShape:
    model_type = raw["model_type"]
    row = families.family(model_type)
    style = T5_STYLE if families.is_t5_style(model_type) else BART_STYLE
    encoder, decoder = seq2seq.encoder_config(raw), seq2seq.decoder_config(raw)
    d_model = int(anatomy.config_value(encoder, "d_model"))
    heads = int(anatomy.config_value(encoder, "heads"))
    decoder_heads = int(anatomy.config_value(decoder, "decoder_heads") or heads)
    d_kv = int(families.config_field(raw, "d_kv") or d_model // heads) if style == T5_STYLE else d_model // heads
    encoder_ffn = int(anatomy.config_value(encoder, "d_ff"))
    decoder_ffn = int(decoder.get("decoder_ffn_dim") or anatomy.config_value(decoder, "d_ff"))
    layers = {stack: len({t.layer for t in tensors if t.stack == stack and t.layer is not None})
              for stack in ("encoder", "decoder")}
    if style == T5_STYLE:
        gated, activation = families.t5_feed_forward(raw)
    else:
        gated = False
        activation = str(families.config_field({**decoder, "model_type": model_type}, "activation_function")
                         or anatomy.config_value(decoder, "activation") or "gelu")
    head = next((t for t in tensors if t.role == anatomy.LM_HEAD and t.name.endswith("weight")), None) or \
        next((t for t in tensors if "lm_head.weight" in t.tied_names), None)
    vocab = head.shape[0] if head else int(anatomy.config_value(decoder, "vocab_size"))
    tied_head = head is not None and head.name != "lm_head.weight"
    experts = {int(m.group(1)) for t in tensors if (m := _EXPERT.search(t.name))}
    expert_parameters = sum(t.numel for t in tensors if t.role == anatomy.EXPERTS)
    outer = tuple(sum(1 for t in tensors if t.stack == stack and t.layer is None and t.role == anatomy.NORM
                      and t.name.endswith("weight")) for stack in ("encoder", "decoder"))
    # Every parameter trains, Marian's and Pegasus's sinusoidal position tables too: transformers (5.24) builds them
    # frozen, but a model from from_pretrained has them requiring gradients, and they get one (measured in
    # tests/test_budget_oracle.py with a real optimizer step).
    trained = tensors
    field = families.config_field
    dropout = field(raw, "dropout_rate") if style == T5_STYLE else field(raw, "dropout")
    encoder_layers = layers["encoder"] or int(anatomy.config_value(encoder, "encoder_layers"))
    routers = tuple(len({t.layer for t in tensors if t.stack == stack and _ROUTER.search(t.name)})
                    for stack in ("encoder", "decoder"))
    return ModelShape(
        model_type=model_type, style=style, encoder_layers=encoder_layers,
        decoder_layers=layers["decoder"] or int(anatomy.config_value(decoder, "decoder_layers")),
        d_model=d_model, heads=heads, decoder_heads=decoder_heads, d_kv=d_kv, encoder_ffn=encoder_ffn,
        decoder_ffn=decoder_ffn, vocab=vocab, gated=gated, activation=activation,
        rescale_output=style == T5_STYLE and bool(raw.get("scale_decoder_outputs", tied_head)),
        relative_bias_everywhere=bool(row and row.relative_bias_every_block),
        dropout=float(dropout or 0.0),
        attention_dropout=float((dropout if style == T5_STYLE else field(raw, "attention_dropout")) or 0.0),
        activation_dropout=float((dropout if style == T5_STYLE else field(raw, "activation_dropout")) or 0.0),
        outer_norms=outer,
        parameters=sum(t.numel for t in tensors), trainable=sum(t.numel for t in trained),
        tensors=len(trained), factored_elements=sum(_factored(t.shape) for t in trained),
        expert_parameters=expert_parameters,
        experts=len(experts), experts_per_token=(row.experts_per_token if row else 1) if experts else 0,
        measured=bool(row and row.budget_measured),
        pre_norm=style == T5_STYLE or bool(row and row.lens_norm == families.PRE_NORM),
        encoder_attention=read_encoder_attention(raw, encoder_layers), router_layers=routers)


def active_parameters(shape: ModelShape) -> int:
    """Parameters one token runs through: all but the experts its router does not pick."""
    if not shape.experts:
        return shape.parameters
    idle = shape.expert_parameters * (shape.experts - shape.experts_per_token) // shape.experts
    return shape.parameters - idle


def _factored(shape: tuple[int, ...]) -> int:
    """transformers' Adafactor keeps a row and a column statistic for a matrix (or stack of them), else a full copy."""
    if len(shape) < 2:
        return math.prod(shape)
    return math.prod(shape[:-1]) + math.prod(shape[:-2]) * shape[-1]
