"""The records of the intervention views: frozen dataclasses of plain values (ids, token strings, floats)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PatchedSite:
    """One site restored alone from the clean run into the corrupted one, and the score it gave."""

    kind: str  # encoder, self_attention, cross_attention, feed_forward or cross_kv
    layer: int
    position: int | None  # source position (encoder), decoder position (sublayers); null for cross_kv (all at once)
    logit: float  # the score (of --metric) with this site restored
    restored: float | None  # (logit - corrupted) / (clean - corrupted); null when clean and corrupted are equal


@dataclass(frozen=True)
class PatchRun:
    """Activation patching of one decoder position: which sites carry what the corruption took away."""

    model: str
    prompt: str
    corrupt: str | None  # the corrupted source text, or null with --noise
    noise: tuple[int, int] | None  # [I, J): source tokens I..J-1 got Gaussian noise
    noise_std: float | None  # the noise's standard deviation (3 × the embedding's)
    seed: int | None
    source_tokens: tuple[str, ...]
    corrupted_tokens: tuple[str, ...]
    output_ids: tuple[int, ...]  # the clean run's greedy output, as generate() returns it (start token included)
    output_tokens: tuple[str, ...]
    position: int  # the decoder position explained: reads output_ids[:position + 1], predicts output_ids[position + 1]
    token_id: int  # the clean token at that position
    token: str
    corrupted_token_id: int  # the corrupted run's choice there (its runner-up when that is the clean token)
    corrupted_token: str
    metric: str  # logit, prob or logit-diff
    clean: float  # the score of the clean run
    corrupted: float  # the score of the corrupted run (nothing restored)
    encoder_layers: int
    decoder_layers: int
    sites: tuple[PatchedSite, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class KnockedHead:
    kind: str  # encoder, self or cross
    layer: int
    head: int

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.layer}.{self.head}"


@dataclass(frozen=True)
class KnockoutStep:
    """One position of the original output, teacher-forced: its token's logit with and without the heads."""

    position: int  # reads original_ids[:position + 1], predicts original_ids[position + 1]
    token_id: int
    token: str
    logit: float
    ablated_logit: float
    ablated_top_id: int  # what the ablated model would pick here, reading the original prefix
    ablated_top: str


@dataclass(frozen=True)
class SweepCell:
    """One head knocked out alone (--sweep)."""

    layer: int
    head: int
    mean_logit_change: float  # mean over the original output's positions of ablated - original logit
    output_changes: bool  # the free greedy output with this head knocked out differs from the original
    first_change: int | None


@dataclass(frozen=True)
class KnockoutRun:
    """Attention heads knocked out: what the model then gives each original token, and what it says freely."""

    model: str
    prompt: str
    mode: str  # zero or mean
    heads: tuple[KnockedHead, ...]
    source_tokens: tuple[str, ...]
    original_ids: tuple[int, ...]  # greedy output, start token included (generate()'s convention)
    original_tokens: tuple[str, ...]
    original_text: str
    ablated_ids: tuple[int, ...]  # greedy output with the heads knocked out
    ablated_tokens: tuple[str, ...]
    ablated_text: str
    first_change: int | None  # the first position whose token differs (or where one output ends); null if none
    steps: tuple[KnockoutStep, ...]
    sweep_kind: str | None = None  # --sweep KIND: every head of that kind, one at a time
    sweep: tuple[SweepCell, ...] = ()
    notes: tuple[str, ...] = ()
