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

    def json_fields(self, head_attention: bool = False) -> dict:
        """The model and prompt first; the per-head attention only for the HTML report."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)
                 if f.name not in ("model", "prompt") and (head_attention or f.name != "head_attention")}
        return {"model": self.model, "prompt": self.prompt, **shown}
