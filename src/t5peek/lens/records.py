"""The records of a lens run: frozen dataclasses of plain values (ids, token strings, floats)."""

from __future__ import annotations

from dataclasses import dataclass

from t5peek.kinds import View


@dataclass(frozen=True)
class LensCandidate:
    """One of the top tokens the stream at one depth points to, read through the model's head."""

    token_id: int
    token: str
    logit: float
    probability: float  # softmax over the whole vocabulary of this depth's logits


@dataclass(frozen=True)
class HeadPart:
    """What one attention head wrote into the chosen token's logit at one depth (--heads): its output through its
    slice of the output projection, then the same frozen path as its depth's push."""

    head: int
    contribution: float  # its output through its slice of the output projection, onto the logit
    sources: tuple[float, ...]  # per key: source token (cross) or decoder position 0..step (self); Σ + value_bias
    value_bias: float  # the value projection's bias (the weights sum to 1, so it comes from no key); 0 without one


@dataclass(frozen=True)
class WatchedToken:
    """A rival token (--watch) read at every depth of one step, beside the chosen one."""

    token_id: int
    token: str
    ranks: tuple[int, ...]  # 1-based rank at each depth
    probabilities: tuple[float, ...]  # probability at each depth


@dataclass(frozen=True)
class DepthReading:
    """The stream after one sublayer (or after the embedding) at one step, read through the model's own head."""

    depth: int  # 0: the embedding, then three per decoder layer
    layer: int | None  # the decoder layer; None for the embedding
    sublayer: str  # embedding, self-attention, cross-attention or feed-forward
    top_k: tuple[LensCandidate, ...]
    rank: int  # 1-based rank of the step's chosen token at this depth
    logit: float  # the chosen token's logit at this depth
    probability: float  # the chosen token's probability at this depth
    contribution: float  # direct logit attribution: what this depth's increment adds to the chosen token's logit
    heads: tuple[HeadPart, ...] | None = None  # --heads, attention depths: Σ + output_bias + norm_part = contribution
    output_bias: float | None = None  # the output projection's bias (0 without one)
    norm_part: float | None = None  # post-norm: what the sublayer's LayerNorm (1/std frozen) made of the stream it got


@dataclass(frozen=True)
class LensStep:
    """One decoder position: the token it read, the token chosen there, and every depth's reading."""

    step: int
    input_id: int  # the token the decoder read at this position
    input_token: str
    token_id: int  # the chosen token: the greedy choice, or the target token under teacher forcing
    token: str
    logit: float  # the chosen token's logit at the last depth: the model's own
    probability: float  # the chosen token's probability at the last depth (raw logits, before any processor)
    constant: float  # the head's bias terms in the logit (LayerNorm bias, final_logits_bias); 0 for T5
    settled_depth: int | None  # the first depth from which the chosen token stays top-1; None if it never does
    depths: tuple[DepthReading, ...]
    source_push: float = 0.0  # Σ of the cross-attention pushes: what came from the source
    prefix_push: float = 0.0  # Σ of the self-attention pushes: what came from the decoder's own prefix
    source_share: float | None = None  # max(source, 0) / (max(source, 0) + max(prefix, 0)); null: neither is > 0
    watch: tuple[WatchedToken, ...] = ()  # --watch: each rival token at every depth


@dataclass(frozen=True)
class LensRun:
    """The logit lens and the direct logit attribution of every step of one run."""

    model: str
    prompt: str
    target: str | None  # teacher forcing: the target text; null for greedy generation
    view: View
    model_type: str
    norm_placement: str  # pre-norm (T5, mBART, Pegasus) or post-norm (BART, Marian): what each depth's stream is
    head: str  # what turns a stream into logits, e.g. "final_layer_norm (RMS), then × d_model**-0.5, then lm_head"
    lens_method: str  # how each depth is read
    method: str  # how the chosen token's logit is split over the depths
    source_ids: tuple[int, ...]
    source_tokens: tuple[str, ...]
    decoder_layers: int
    depth_labels: tuple[str, ...]  # "embedding", "0 self-attention", ...: one per depth
    top_k: int
    steps: tuple[LensStep, ...]
    output_ids: tuple[int, ...]  # generation: what generate() returns, the decoder start token included
    output_text: str
    stop_reason: str
    lens_error: float  # max |lens at the last depth − the model's own logits|, every finite step, every token
    attribution_error: float  # max |Σ contributions + constant − the logit| over the finite steps
    nonfinite_from: int | None = None  # the first step whose logits are not finite (the errors leave such steps out)
    encoder_layers: int = 0  # layers of the encoder
    encoder_layer: int | None = None  # --encoder-layer: the encoder layer the decoder reads; null: the last
    encoder_read: str = ""  # what the decoder reads of the encoder
    heads_method: str | None = None  # --heads: how each attention depth's push is split over heads and keys
    heads_error: float | None = None  # --heads: max |Σ heads + output_bias + norm_part − the depth's push|
    notes: tuple[str, ...] = ()
