"""Where the decoder's residual stream can be read, family by family, and the head that turns it into logits.

T5 is pre-norm: each sublayer (`block.layer[i]`) returns `stream + sublayer(norm(stream))`, so its output is the
stream after it. BART and Marian are post-norm: a decoder layer writes `norm(stream + sublayer(stream))`, so the
stream after a sublayer is the output of that sublayer's LayerNorm. mBART, Pegasus, M2M-100 and Blenderbot are
pre-norm inside one module: the stream after self-attention is what the cross-attention's LayerNorm reads, the
stream after cross-attention is what the feed-forward's LayerNorm reads, and the layer's output follows the
feed-forward. In every family the embedding depth is what decoder layer 0 reads (after BART's
`layernorm_embedding`, after Marian's `embed_scale` and positions).

torch is imported inside functions only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t5peek import anatomy, families
from t5peek.errors import UnsupportedModel
from t5peek.probe.hooks import INPUT, OUTPUT, Hook

PRE_NORM, POST_NORM = families.PRE_NORM, families.POST_NORM
SUBLAYERS = (anatomy.SELF_ATTENTION, anatomy.CROSS_ATTENTION, anatomy.FEED_FORWARD)


def check_family(model_type: str | None, name: str, command: str = "lens") -> None:
    """Refuse (exit 2) a model whose decoder the lens, and the views that write into it, do not know how to read."""
    row = families.family(model_type)
    if row is not None and row.lens_norm:
        return
    known = ", ".join(families.lens_families())
    raise UnsupportedModel(f"t5peek {command} does not support {model_type or 'unknown'} models like '{name}': it "
                           f"reads the decoders of the T5 and BART families ({known}).")


@dataclass(frozen=True)
class Tap:
    """One depth of the stream: which module shows it, and whether as its input or its output."""

    layer: int | None  # decoder layer; None for the embedding
    sublayer: str  # anatomy.EMBEDDING, SELF_ATTENTION, CROSS_ATTENTION or FEED_FORWARD
    module: Any
    reads: str  # "input" or "output"

    @property
    def label(self) -> str:
        return self.sublayer if self.layer is None else f"{self.layer} {self.sublayer}"


@dataclass(frozen=True)
class Head:
    """What the model does to its final stream to get logits: norm, rescale, lm_head, bias."""

    norm: Any | None  # the decoder's final norm module, None when the last layer's own LayerNorm ends the stream
    rms: bool  # T5's norm: x / rms(x) * weight, no mean, no bias
    scale: float  # T5 with a tied head: d_model ** -0.5, else 1
    weight: Any  # lm_head.weight, (vocab, d_model)
    bias: Any | None  # final_logits_bias, (vocab,)
    description: str  # e.g. "final_layer_norm (RMS), then × d_model**-0.5, then lm_head"
    frozen: str  # how the final norm is linearised for direct logit attribution (when there is one)


@dataclass(frozen=True)
class Anatomy:
    """The decoder's readable depths and its head."""

    taps: tuple[Tap, ...]
    head: Head
    norm_placement: str  # PRE_NORM or POST_NORM
    decoder_layers: int


def read_anatomy(model, model_type: str) -> Anatomy:
    if families.is_t5_style(model_type):
        return _t5(model, model_type)
    return _bart(model, model_type)


def _t5(model, model_type: str) -> Anatomy:
    decoder = model.get_decoder()
    taps = [Tap(None, anatomy.EMBEDDING, decoder.block[0], "input")]
    for index, block in enumerate(decoder.block):
        taps += [Tap(index, sublayer, block.layer[n], "output") for n, sublayer in enumerate(SUBLAYERS)]
    config = model.config
    # transformers' own rule, family by family: T5 and LongT5 say scale_decoder_outputs (true unless config.json
    # says tie_word_embeddings=false); mT5 never rescales; umT5 rescales when tie_word_embeddings (always true)
    rule = families.family(model_type).rescale
    if rule == families.NEVER:
        rescale = False
    elif rule == families.SCALE_DECODER_OUTPUTS:
        rescale = bool(getattr(config, "scale_decoder_outputs", config.tie_word_embeddings))
    else:
        rescale = bool(config.tie_word_embeddings)
    scale = config.d_model ** -0.5 if rescale else 1.0
    description = "final_layer_norm (RMS), then " + ("× d_model**-0.5, then " if rescale else "") + "lm_head"
    head = Head(decoder.final_layer_norm, True, scale, model.get_output_embeddings().weight, None, description,
                "final_layer_norm with its 1/rms frozen at the final stream's value")
    return Anatomy(tuple(taps), head, PRE_NORM, len(decoder.block))


def _bart(model, model_type: str) -> Anatomy:
    decoder = model.get_decoder()
    placement = families.family(model_type).lens_norm
    taps = [Tap(None, anatomy.EMBEDDING, decoder.layers[0], "input")]
    for index, layer in enumerate(decoder.layers):
        if placement == POST_NORM:
            shown = ((layer.self_attn_layer_norm, "output"), (layer.encoder_attn_layer_norm, "output"),
                     (layer.final_layer_norm, "output"))
        else:
            shown = ((layer.encoder_attn_layer_norm, "input"), (layer.final_layer_norm, "input"), (layer, "output"))
        taps += [Tap(index, sublayer, module, reads) for sublayer, (module, reads) in zip(SUBLAYERS, shown)]
    norm_name = families.family(model_type).final_norm
    norm = getattr(decoder, norm_name) if norm_name else None
    bias = getattr(model, "final_logits_bias", None)
    description = (f"{norm_name}, then " if norm is not None else "") + "lm_head" + \
        (" + final_logits_bias" if bias is not None else "")
    frozen = (f"{norm_name} with its mean removal kept and its 1/std frozen at the final stream's value"
              if norm is not None else "")
    head = Head(norm, False, 1.0, model.get_output_embeddings().weight,
                None if bias is None else bias.reshape(-1), description, frozen)
    return Anatomy(tuple(taps), head, placement, len(decoder.layers))


class Recorder:
    """Keeps the stream at every tap during the model's own passes (no extra forward): install `hooks()` with
    `t5peek.probe.hooks.hooked`, then `take()` after each pass."""

    def __init__(self, taps: tuple[Tap, ...]):
        self.taps = taps
        self.seen: list = [None] * len(taps)

    def hooks(self) -> list[Hook]:
        return [Hook(tap.module, INPUT if tap.reads == "input" else OUTPUT, self._keeper(index), tap.label)
                for index, tap in enumerate(self.taps)]

    def _keeper(self, index: int):
        def keep(value, _call) -> None:
            self.seen[index] = value.detach()

        return keep

    def take(self):
        """The streams of the last pass, (depths, positions, d_model) in float32."""
        import torch

        missing = [self.taps[i].label for i, value in enumerate(self.seen) if value is None]
        if missing:
            raise UnsupportedModel(f"t5peek lens saw no stream at {', '.join(missing)}: this model's decoder does "
                                   "not run the way its family does.")
        stacked = torch.stack([value[0] for value in self.seen]).float()
        self.seen = [None] * len(self.taps)
        return stacked
