"""The records of a decoding run: frozen dataclasses of plain values (ids, token strings, floats).

`DecodePlan` is known before the first step; each step is a `Step` (greedy search, sampling, and the path of a
beam search's output) or a `BeamStep` (every running beam of a beam-search step); `DecodeRun` is the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from t5peek.kinds import Rule, Strategy


@dataclass(frozen=True)
class Candidate:
    """One possible next token. `score` is what generate() reports in `output_scores` (the logit after the
    logits processors; for beam search a log-probability); `probability` is softmax(score) over the vocabulary."""

    token_id: int
    token: str
    logit: float
    score: float
    probability: float


@dataclass(frozen=True)
class LayerFocus:
    """The source token one decoder layer attended to most (cross-attention, mean over heads)."""

    layer: int
    source_index: int
    source_token: str
    weight: float


@dataclass(frozen=True)
class Step:
    """One decoding step of the final output: the decoder input so far, the next-token candidates, the choice,
    and where the decoder looked in the source."""

    step: int
    input_ids: tuple[int, ...]
    input_tokens: tuple[str, ...]
    token_id: int
    token: str
    rule: Rule
    chosen: Candidate
    chosen_rank: int | None  # 1-based rank of the chosen token among the top-k, None when outside it
    top_k: tuple[Candidate, ...]
    cross_attention: tuple[float, ...]  # layer `DecodeRun.layer`, mean of heads, one weight per source token
    layers: tuple[LayerFocus, ...]  # every decoder layer's strongest source token
    beam: int | None = None  # beam search: the running beam this step of the output extended
    self_attention: tuple[float, ...] | None = None  # --self: layer `DecodeRun.layer`, mean of heads, step + 1 keys

    def json_fields(self) -> dict:
        """Every field; `self_attention` only when it was asked for (--self), so the default JSON is unchanged."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "self_attention" or self.self_attention is not None}


@dataclass(frozen=True)
class BeamRow:
    """A running beam at the start of a beam-search step."""

    beam: int
    input_ids: tuple[int, ...]
    input_tokens: tuple[str, ...]
    score: float  # cumulative log-probability so far
    top_k: tuple[Candidate, ...]
    focus: LayerFocus  # strongest source token at the shown layer


@dataclass(frozen=True)
class BeamChoice:
    """A continuation kept after a beam-search step: beam `parent` extended by `token`."""

    beam: int
    parent: int
    token_id: int
    token: str
    step_score: float  # this token's log-probability after the processors (generate()'s output_scores)
    score: float  # cumulative log-probability


@dataclass(frozen=True)
class BeamHypothesis:
    """A sequence that finished at this step and entered the list of best finished hypotheses."""

    parent: int
    ids: tuple[int, ...]
    text: str
    score: float  # cumulative log-probability / length ** length_penalty


@dataclass(frozen=True)
class BeamStep:
    """One beam-search step: the running beams, the continuations kept, and the hypotheses that finished."""

    step: int
    beams: tuple[BeamRow, ...]
    next_beams: tuple[BeamChoice, ...]
    finished: tuple[BeamHypothesis, ...]


@dataclass(frozen=True)
class EncoderSelfAttention:
    """How each source token attended to the others, in one encoder layer (mean of heads)."""

    layer: int  # the encoder layer shown: --layer (the last one when not given, or when the encoder is shallower)
    encoder_layers: int
    heads: int
    weights: tuple[tuple[float, ...], ...]  # [query source token][key source token], each row sums to 1


@dataclass(frozen=True)
class OcclusionRow:
    """One generated token: the source token whose occlusion lowers its probability most, and the one the
    decoder attended to most."""

    step: int
    token_id: int
    token: str
    probability: float  # p(token | full source), teacher-forced, softmax of the raw logits (no processors)
    occlusion_index: int | None  # the source token whose replacement by the pad token drops it most
    occlusion_token: str | None
    drop: float | None  # probability - p(token | source with that token replaced); negative: it rose
    attention_index: int | None  # the source token with the highest cross-attention weight (mean of heads)
    attention_token: str | None
    attention_weight: float | None
    agree: bool  # both name the same source token


@dataclass(frozen=True)
class Occlusion:
    """Attention beside occlusion: each source token in turn replaced by the pad token, the same output re-scored
    teacher-forced (one pass per source token, batched)."""

    pad_token_id: int
    pad_token: str
    layer: int  # the decoder layer whose cross-attention gives the attention argmax
    occluded: tuple[bool, ...]  # per source token: replaced in turn (special tokens such as </s> are kept)
    drops: tuple[tuple[float | None, ...], ...]  # [step][source token]: p(full) - p(occluded); null: not occluded
    rows: tuple[OcclusionRow, ...]
    agree: int  # steps where occlusion and attention name the same source token
    total: int  # steps compared: those whose probability is finite
    notes: tuple[str, ...] = ()  # from which step the probabilities are not finite, in generate's words


@dataclass(frozen=True)
class SettingValue:
    """A generation setting's value and where it came from."""

    value: Any
    source: str  # command line, task_specific_params.<task>, generation_config, default, ...


@dataclass(frozen=True)
class DecodePlan:
    """What a run is about to do: known before the first step (streamed as the header)."""

    strategy: Strategy
    settings: dict[str, SettingValue]
    processors: tuple[str, ...]  # the logits processors in use, in order
    source_ids: tuple[int, ...]
    source_tokens: tuple[str, ...]
    layer: int
    decoder_layers: int
    heads: int
    top_k: int


@dataclass(frozen=True)
class Forced:
    """generate --force STEP=TOKEN: the token put in at one step, and what the model had chosen there."""

    step: int
    token_id: int
    token: str
    original_token_id: int
    original_token: str
    original_tokens: tuple[str, ...]  # the original output, token by token (original_ids spelled)


@dataclass(frozen=True)
class DecodeRun(DecodePlan):
    """The plan, and what came of it."""

    steps: tuple[Step, ...]
    output_ids: tuple[int, ...]  # what generate() returns, decoder start token included
    output_text: str
    stop_reason: str
    beam_steps: tuple[BeamStep, ...] = ()
    sequence_score: float | None = None  # beam search: the length-normalised score of the output
    # [step][layer][head][source token], kept only when DecodeSettings.keep_heads (the HTML report)
    head_attention: tuple | None = None
    notes: tuple[str, ...] = ()
    model: str = ""  # the MODEL as named
    prompt: str = ""
    encoder_self_attention: EncoderSelfAttention | None = None  # --self
    # [layer][head][query][key] and [step][layer][head][key], kept with the heads (the HTML report)
    encoder_head_attention: tuple | None = None
    decoder_head_attention: tuple | None = None
    occlusion: Occlusion | None = None  # --occlusion
    forced: Forced | None = None  # --force: this run is the branch, and the original run is kept below
    original_ids: tuple[int, ...] | None = None
    original_text: str | None = None

    def json_fields(self, head_attention: bool = False) -> dict:
        """The model and prompt first; the per-head attention only for the HTML report; the views of --self,
        --occlusion and --force only when asked for, so that the default document is unchanged."""
        heads = ("head_attention", "encoder_head_attention", "decoder_head_attention")
        optional = ("encoder_self_attention", "occlusion", "forced", "original_ids", "original_text")
        shown = {f.name: getattr(self, f.name) for f in fields(self)
                 if f.name not in ("model", "prompt") and (head_attention or f.name not in heads)
                 and (f.name not in optional or getattr(self, f.name) is not None)}
        return {"model": self.model, "prompt": self.prompt, **shown}
