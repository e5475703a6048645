"""What a trace returns: frozen records of each module call, phase and decoder step, and their JSON form."""

from __future__ import annotations

from dataclasses import dataclass, fields

from t5peek.kinds import PhaseKind, View
from t5peek.trace.explain import EXPLANATIONS, VIEW_NOTES, explanation_key


@dataclass(frozen=True)
class TensorStats:
    """Statistics of one output tensor; mean, std and abs_max are over its finite values."""

    mean: float
    std: float
    abs_max: float
    nan: int
    inf: int

    @property
    def finite(self) -> bool:
        return self.nan == 0 and self.inf == 0


@dataclass(frozen=True)
class CacheLayerShape:
    layer: int
    keys: tuple[int, ...]  # [batch, heads, positions, head_dim]; () before the layer is filled
    values: tuple[int, ...]

    @property
    def length(self) -> int:
        return self.keys[-2] if len(self.keys) >= 2 else 0


@dataclass(frozen=True)
class CacheShape:
    """A KV cache at one moment: per-layer key/value shapes of its self- and cross-attention parts."""

    cls: str
    self_attention: tuple[CacheLayerShape, ...]
    cross_attention: tuple[CacheLayerShape, ...] = ()

    @property
    def self_lengths(self) -> tuple[int, ...]:
        return tuple(layer.length for layer in self.self_attention)

    @property
    def cross_lengths(self) -> tuple[int, ...]:
        return tuple(layer.length for layer in self.cross_attention)


@dataclass(frozen=True)
class AttentionShape:
    """The attention weights of one attention call.

    kind "self" or "cross": [batch, heads, query_len, key_len]. Encoders with sparse attention return their own
    layouts, kept as they are:
    "local" (LED's sliding window): [batch, query_len, heads, window + 1 (+ global tokens)];
    "local" (LongT5 local): [batch, blocks, heads, block_len, 3 * block_len];
    "transient-global" (LongT5): [batch, blocks, heads, block_len, 3 * block_len + global blocks].
    """

    kind: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Routing:
    """Where a mixture-of-experts router sent each token: one entry per token of the call.

    Top-1 routing (Switch Transformers) fills `experts`; top-2 routing (NLLB-MoE) adds each token's second expert.
    """

    num_experts: int
    experts: tuple[int, ...]  # the (first) expert of each token; -1 when that expert was full (token dropped)
    probabilities: tuple[float, ...]  # the router's weight for that expert
    second: tuple[int, ...] = ()  # top-2 routing: the second expert of each token, -1 when none

    def counts(self) -> tuple[int, ...]:
        """Tokens per expert (a token sent to two experts counts for both)."""
        chosen = self.experts + self.second
        return tuple(sum(1 for e in chosen if e == expert) for expert in range(self.num_experts))


@dataclass(frozen=True)
class TraceRecord:
    index: int  # execution order within its phase (by start: a parent comes before its children)
    module: str  # dotted path from the model root ("" is the root)
    cls: str
    role: str  # anatomy role, or block / stack / model
    level: int  # nesting among the records shown (0 = outermost)
    parent: int | None  # index of the enclosing record
    input_shapes: dict  # name → shape (tuple of ints) or CacheShape
    output_shapes: dict
    dtype: str | None  # of the first output tensor
    device: str | None
    time_ms: float  # wall time of the call (host side: no device synchronisation)
    finished: int  # global completion order, across phases
    attention: AttentionShape | None = None
    stats: dict | None = None  # output name → TensorStats, with --stats
    routing: Routing | None = None  # mixture-of-experts routers: the expert each token went to

    def json_fields(self) -> dict:
        """In the order a reader scans a record: where it is, what went in and out, then how it ran."""
        order = ("index", "module", "cls", "role", "level", "parent", "input_shapes", "output_shapes", "attention",
                 "routing", "dtype", "device", "time_ms", "finished", "stats")
        return {("class" if key == "cls" else key): getattr(self, key) for key in order}


@dataclass(frozen=True)
class Phase:
    name: str
    kind: PhaseKind
    records: tuple[TraceRecord, ...]
    time_ms: float
    cross_kv_projections: int  # calls of the cross-attention key/value projections during this phase
    step: int | None = None


@dataclass(frozen=True)
class DecodeStep:
    step: int
    input_id: int  # the one token fed in this step
    input_token: str
    position: int  # its position = self-attention cache length before the step
    self_cache_before: tuple[int, ...]  # cached positions per decoder layer
    self_cache_after: tuple[int, ...]
    cross_cache: tuple[int, ...]  # encoder positions cached per layer for cross-attention
    cross_kv_projections: int  # 0 after step 0: the cached cross keys/values were reused
    next_id: int
    next_token: str
    next_probability: float
    eos: bool


@dataclass(frozen=True)
class NonFinite:
    phase: str
    module: str
    cls: str
    output: str
    nan: int
    inf: int


@dataclass(frozen=True)
class TraceReport:
    model: str
    model_class: str
    view: View
    depth: int | None  # None: the block view
    attention_implementation: str
    dtype: str
    device: str
    prompt: str
    source_tokens: tuple[str, ...]
    source_ids: tuple[int, ...]
    phases: tuple[Phase, ...]
    target: str | None = None
    labels: tuple[int, ...] = ()
    label_tokens: tuple[str, ...] = ()
    decoder_input_ids: tuple[int, ...] = ()
    decoder_input_tokens: tuple[str, ...] = ()
    predicted_ids: tuple[int, ...] = ()  # teacher forcing: argmax at each position
    predicted_tokens: tuple[str, ...] = ()
    loss: float | None = None
    steps: tuple[DecodeStep, ...] = ()
    generated_ids: tuple[int, ...] = ()
    generated_text: str | None = None
    stats: bool = False
    first_nonfinite: NonFinite | None = None
    explain: bool = False
    notes: tuple[str, ...] = ()

    def explanation_keys(self) -> list[str]:
        """The kinds of stage that appear in this trace, in the order they first run."""
        keys: list[str] = []
        for phase in self.phases:
            for record in phase.records:
                key = explanation_key(record)
                if key and key not in keys:
                    keys.append(key)
        return keys

    def json_fields(self) -> dict:
        """The `trace --json` document: the explanations (with --explain) and the view's note added."""
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "explain"}
        shown["view_note"] = VIEW_NOTES[self.view]
        if self.explain:
            shown["explanations"] = {key: EXPLANATIONS[key] for key in self.explanation_keys()}
        return shown
