"""What a trace returns: frozen records of each module call, phase and decoder step, and their JSON form; how the
calls of a phase nest and compare (identical blocks, what changed since the step before, cross keys/values read from
the cache)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from t5peek import anatomy
from t5peek.kinds import PhaseKind, View
from t5peek.trace.compare import Comparison
from t5peek.trace.explain import VIEW_NOTES, BlockDesign, explanation, explanation_key
from t5peek.trace.plan import KV_NAMES, MODEL, STACK


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

    @property
    def leaf(self) -> str:
        """The module's own name (`SelfAttention`, `q`); a numbered one keeps its list's name (`block.3`)."""
        if not self.module:
            return self.cls
        head, _, name = self.module.rpartition(".")
        return f"{head.rpartition('.')[2]}.{name}" if name.isdigit() and head else name

    def look(self) -> tuple:
        """What a reader sees of the call apart from where and when it ran: class, shapes, attention, dtype, device,
        stats, routing. Below the model and its stacks a KV cache counts by its class: each block gets the one cache,
        filled up to the block before it."""
        whole = self.role in (MODEL, STACK)

        def shapes(values: dict) -> tuple:
            return tuple((name, shape.cls if isinstance(shape, CacheShape) and not whole else shape)
                         for name, shape in values.items())

        return (self.cls, shapes(self.input_shapes), shapes(self.output_shapes), self.attention, self.dtype,
                self.device, tuple((self.stats or {}).items()), self.routing)

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

    def children(self) -> dict[int | None, list[TraceRecord]]:
        """Each record's index (None for the outermost records) → the records called inside it, in order."""
        found: dict[int | None, list[TraceRecord]] = {}
        for record in self.records:
            found.setdefault(record.parent, []).append(record)
        return found

    def subtree(self, record: TraceRecord) -> tuple[TraceRecord, ...]:
        """The record and every record called inside it (they follow it, one level deeper or more)."""
        start = record.index if self.records[record.index:record.index + 1] == (record,) else self.records.index(record)
        end = next((i for i in range(start + 1, len(self.records)) if self.records[i].level <= record.level),
                   len(self.records))
        return self.records[start:end]

    def signature(self, record: TraceRecord) -> tuple:
        """The looks of a record and of everything inside it, by path relative to it: equal for identical blocks."""
        return tuple((r.module[len(record.module):], r.look()) for r in self.subtree(record))

    def runs(self, records: list[TraceRecord]) -> list[list[TraceRecord]]:
        """`records` (siblings, in order) grouped in runs of numbered ones (block.1, block.2, ...) that look the same
        inside and out, as `t5peek arch` collapses repeated blocks."""
        runs: list[list[TraceRecord]] = []
        for record in records:
            head, _, number = record.module.rpartition(".")
            if (runs and number.isdigit() and runs[-1][0].module.rpartition(".")[0] == head
                    and self.signature(runs[-1][0]) == self.signature(record)):
                runs[-1].append(record)
            else:
                runs.append([record])
        return runs

    def changed_since(self, earlier: Phase) -> set[int]:
        """Indices of the records that look different from the same module's call in `earlier` (or had none)."""
        looks: dict[str, list[tuple]] = {}
        for record in earlier.records:
            looks.setdefault(record.module, []).append(record.look())
        seen: dict[str, int] = {}
        changed = set()
        for record in self.records:
            n = seen[record.module] = seen.get(record.module, -1) + 1
            before = looks.get(record.module, [])
            if n >= len(before) or before[n] != record.look():
                changed.add(record.index)
        return changed

    def with_ancestors(self, indices) -> set[int]:
        """The given record indices and those of the records they were called in."""
        parents = {record.index: record.parent for record in self.records}
        found: set[int] = set()
        for index in indices:
            while index is not None and index not in found:
                found.add(index)
                index = parents.get(index)
        return found

    def cached_projections(self, first_step: Phase) -> dict[int, tuple[list[str], set[str]]]:
        """Cross-attention records whose key/value projections ran in `first_step` and not here (they read the cache
        instead): index → (their names, the names of the inner modules that came after them in `first_step`)."""
        earlier, now = first_step._inner_names(), self._inner_names()
        found = {}
        for record in self.records:
            names = earlier.get(record.module, []) if record.role == anatomy.CROSS_ATTENTION else []
            missing = [name for name in names if name in KV_NAMES and name not in now.get(record.module, [])]
            if missing and record.module in now:
                found[record.index] = (missing, set(names[max(map(names.index, missing)) + 1:]))
        return found

    def _inner_names(self) -> dict[str, list[str]]:
        """Module path → the names of the modules called inside its first call, in order."""
        first: dict[str, int] = {}
        for record in self.records:
            first.setdefault(record.module, record.index)
        by_index = {record.index: record for record in self.records}
        names: dict[str, list[str]] = {}
        for record in self.records:
            parent = by_index.get(record.parent)
            if parent is not None and first[parent.module] == parent.index:
                names.setdefault(parent.module, []).append(record.leaf)
        return names


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
    decoder_input_ids: tuple[int, ...] = ()  # teacher forcing: the labels shifted right, decoder start token first
    decoder_input_tokens: tuple[str, ...] = ()
    predicted_ids: tuple[int, ...] = ()  # teacher forcing: argmax at each position
    predicted_tokens: tuple[str, ...] = ()
    loss: float | None = None
    steps: tuple[DecodeStep, ...] = ()
    generated_ids: tuple[int, ...] = ()  # generation: the tokens chosen, decoder start token not included
    generated_text: str | None = None
    stats: bool = False
    first_nonfinite: NonFinite | None = None
    explain: bool = False
    notes: tuple[str, ...] = ()
    design: BlockDesign | None = None
    comparison: Comparison | None = None  # with --compare: teacher forcing against cached steps, free-running greedy

    def tokens_of(self, phase: Phase, record: TraceRecord) -> tuple[str, ...]:
        """The tokens a record's call ran on: the prompt in the encoder, the fed token(s) in the decoder."""
        if anatomy.stack_of(record.module) == "encoder":
            return self.source_tokens
        if phase.kind == PhaseKind.STEP:
            step = next((s for s in self.steps if s.step == phase.step), None)
            return (step.input_token,) if step is not None else ()
        return self.decoder_input_tokens if phase.kind == PhaseKind.FORWARD else ()

    def explanation_keys(self) -> list[str]:
        """The kinds of stage that appear in this trace, in the order they first run."""
        keys: list[str] = []
        for phase in self.phases:
            for record in phase.records:
                key = explanation_key(record.role, record.module)
                if key and key not in keys:
                    keys.append(key)
        return keys

    def json_fields(self) -> dict:
        """The `trace --json` document: the explanations (with --explain) and the view's note added."""
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "explain"}
        shown["view_note"] = VIEW_NOTES[self.view]
        if self.explain:
            shown["explanations"] = {key: explanation(key, self.design) for key in self.explanation_keys()}
        return shown
