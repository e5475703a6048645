"""`t5peek trace`: what runs inside an encoder-decoder, module by module, in the order it runs.

Forward pre-hooks and hooks are put on the modules chosen by `--depth`; each call becomes one TraceRecord
(path, class, input and output shapes, dtype, device, time, attention weight shape, optional statistics).
Hooks record shapes only: no tensor is copied or kept, and nothing synchronises unless stats are asked for.

Two views of the decoder, the two that learners mix up:
  teacher forcing (training)   the whole target goes in at once, shifted right by one, under a causal mask;
                               one forward pass scores every position against its label.
  generation (inference)       the encoder runs once; the decoder then runs once per new token (greedy here),
                               with a KV cache: self-attention keys/values grow by one position per step,
                               cross-attention keys/values are computed from the encoder output at step 0
                               and reused afterwards.

Depth counts modules from the model root the way `t5peek arch --depth` does: the root is 0, each module on
the path below it adds one, and ModuleList/ModuleDict containers add nothing (T5: encoder 1,
encoder.block.0 2, ....layer.0 3, ....layer.0.SelfAttention 4, ....SelfAttention.q 5; BART: model 1,
model.encoder 2, model.encoder.layers.0 3, ....self_attn 4, ....self_attn.q_proj 5).
Without a depth, the block view: the stacks, embeddings, final norms and head, each block, and beneath
each block its attention, feed-forward and norm sublayers.
"""

from __future__ import annotations

import contextlib
import inspect
import time
import weakref
from dataclasses import dataclass
from typing import Iterator

from t5peek import anatomy
from t5peek.seq2seq import decoder_start_id, eos_ids, new_cache, shift_right, token_strings

BLOCK = "block"
STACK = "stack"
MODEL = "model"

# Plain-language notes for learners, one per kind of stage (`--explain`).
EXPLANATIONS: dict[str, str] = {
    "embedding": "Embedding: each token id picks one learned row of d_model numbers; no context yet, the "
                 "same word gets the same vector in every sentence.",
    "position:relative": "Relative position bias (T5): no position vector is added to the tokens; a learned "
                         "number per head and distance bucket is added to the attention scores instead. "
                         "Block 0 computes it and the other blocks reuse it.",
    "position:learned": "Positional embedding: a learned vector per position (0, 1, 2, ...) is added to each "
                        "token's embedding so word order is visible; its size is the model's length limit.",
    "self-attention:encoder": "Self-attention (encoder): each token makes a query, key and value; its output "
                              "is a mix of all tokens' values, weighted by softmax(query·key) per head, so "
                              "every token sees the whole input.",
    "self-attention:decoder": "Masked self-attention (decoder): the same, but a causal mask lets position i see "
                              "only positions 0..i; in generation the earlier keys/values come from the cache.",
    "cross-attention": "Cross-attention: queries come from the decoder, keys and values from the encoder's "
                       "final output; this is where the output looks at the input.",
    "feed-forward": "Feed-forward: a two-layer MLP (d_model → d_ff → d_model) applied to each position on its "
                    "own; no information moves between tokens here.",
    "norm": "Layer norm: rescales each token's vector to a standard size (T5 uses RMSNorm, no mean and no "
            "bias); T5 normalises before each sublayer, BART after the residual add.",
    "residual": "Residual: a block adds each sublayer's output back to its input, x + sublayer(x), so it "
                "refines the vectors instead of replacing them; the shape never changes.",
    "lm_head": "LM head: maps each decoder position's vector to one score (logit) per vocabulary entry; "
               "softmax turns the scores into next-token probabilities.",
}

VIEW_NOTES = {
    "teacher-forcing": "Training view (teacher forcing): the decoder gets the whole target at once, shifted "
                       "right by one (start token + labels[:-1]); the causal mask keeps position i from "
                       "seeing label i and later; one pass scores every position.",
    "generation": "Inference view (greedy generation): the encoder runs once; the decoder runs once per new "
                  "token and is fed its own previous choice; earlier self-attention keys/values come from "
                  "the cache, cross-attention keys/values are computed once from the encoder output.",
}



# ---------------------------------------------------------------------------------------------- records


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


@dataclass(frozen=True)
class Phase:
    name: str
    kind: str  # "forward" (teacher forcing), "encoder", "step"
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
    view: str  # "teacher-forcing" or "generation"
    depth: int | None  # None: the block view
    attention_implementation: str
    dtype: str
    device: str
    prompt: str
    tokens: tuple[str, ...]
    input_ids: tuple[int, ...]
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

    def to_json(self) -> dict:
        """Plain values for --json; records name their class `class`."""
        from t5peek.output import to_jsonable

        data = to_jsonable(self)
        for phase in data["phases"]:
            phase["records"] = [_json_record(record) for record in phase["records"]]
        data.pop("explain")
        data["view_note"] = VIEW_NOTES[self.view]
        if self.explain:
            data["explanations"] = {key: EXPLANATIONS[key] for key in self.explanation_keys()}
        return data


def _json_record(record: dict) -> dict:
    order = ("index", "module", "cls", "role", "level", "parent", "input_shapes", "output_shapes", "attention",
             "routing", "dtype", "device", "time_ms", "finished", "stats")
    return {("class" if key == "cls" else key): record[key] for key in order}


def explanation_key(record: TraceRecord) -> str | None:
    """Which EXPLANATIONS entry describes this record, if any."""
    role = record.role
    if role == BLOCK:
        return "residual"
    if role == anatomy.POSITION:
        return "position:relative" if "relative_attention_bias" in record.module else "position:learned"
    if role == anatomy.SELF_ATTENTION:
        return "self-attention:" + ("decoder" if anatomy.stack_of(record.module) == "decoder" else "encoder")
    if role in (anatomy.EMBEDDING, anatomy.CROSS_ATTENTION, anatomy.FEED_FORWARD, anatomy.NORM, anatomy.LM_HEAD):
        return role
    return None


# ---------------------------------------------------------------------------------------------- module choice


def _is_container(module) -> bool:
    import torch

    return isinstance(module, (torch.nn.ModuleList, torch.nn.ModuleDict))


def module_levels(model) -> dict[str, tuple[object, int]]:
    """path → (module, level), with levels counted as `t5peek arch --depth` counts them."""
    levels: dict[str, tuple[object, int]] = {"": (model, 0)}
    seen = {id(model)}

    def walk(module, path: str, level: int) -> None:
        for name, child in module.named_children():
            if id(child) in seen:  # one module reachable under two names: hooked once, under the first
                continue
            seen.add(id(child))
            child_path = f"{path}.{name}" if path else name
            child_level = level + (0 if _is_container(child) else 1)
            levels[child_path] = (child, child_level)
            walk(child, child_path, child_level)

    walk(model, "", 0)
    return levels


def block_path(path: str) -> str | None:
    """The block a path lies in (`encoder.block.0.layer.1` → `encoder.block.0`), None outside blocks."""
    match = anatomy._LAYER.search(path)
    if not match:
        return None
    return path[:match.end()].rstrip(".")


_BLOCK_VIEW_ROLES = {anatomy.SELF_ATTENTION, anatomy.CROSS_ATTENTION, anatomy.FEED_FORWARD, anatomy.NORM,
                     anatomy.POSITION, anatomy.ROUTER}
_OUTSIDE_BLOCK_ROLES = {anatomy.EMBEDDING, anatomy.POSITION, anatomy.NORM, anatomy.LM_HEAD}


def select_modules(model, depth: int | None) -> dict[str, object]:
    """path → module to hook: those at most `depth` levels deep, or the block view when depth is None."""
    return {target[1]: target[0]() for target in hook_plan(model, depth).targets}


@dataclass(frozen=True)
class HookPlan:
    """Which modules to hook and how to label them; built once per model and depth, then reused.

    Modules are held by weak reference, so that a cached plan never keeps its model alive.
    """

    targets: tuple  # (weakref to the module, path, role, positional argument names, output_attentions position)
    cross_kv: tuple  # weakrefs to the cross-attention key/value projections, counted to show they run once
    fingerprint: tuple


_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_NAMES_BY_CLASS: dict[type, tuple[str, ...]] = {}
_KV_NAMES = {"k", "v", "k_proj", "v_proj", "key", "value"}


def hook_plan(model, depth: int | None, modules: list | None = None) -> HookPlan:
    """The cached plan for this model and depth, rebuilt when the module tree changed."""
    fingerprint = tuple(map(id, model.modules() if modules is None else modules))
    plans = _PLANS.setdefault(model, {})
    plan = plans.get(depth)
    if plan is None or plan.fingerprint != fingerprint:
        plan = plans[depth] = _build_plan(model, depth, fingerprint)
    return plan


def _build_plan(model, depth: int | None, fingerprint: tuple) -> HookPlan:
    import torch

    levels = module_levels(model)
    roles = {path: anatomy.role_of(path) for path in levels}
    blocks = {b for b in map(block_path, levels) if b is not None}
    holders = set()  # the model and stacks: every module with a block below it
    for block in blocks:
        parts = block.split(".")
        holders.update(".".join(parts[:i]) for i in range(len(parts)))
    targets = []
    for path, (module, level) in levels.items():
        if _is_container(module):
            continue
        if depth is None and not _in_block_view(path, roles, blocks, holders):
            continue
        if depth is not None and level > depth:
            continue
        role = MODEL if path == "" else BLOCK if path in blocks else STACK if path in holders else roles[path]
        names = _positional_names(module)
        targets.append((weakref.ref(module), path, role, names, _weights_flag(module, role, names)))
    cross_kv = tuple(weakref.ref(module) for path, (module, _) in levels.items()
                     if path.rpartition(".")[2] in _KV_NAMES and roles[path] == anatomy.CROSS_ATTENTION
                     and isinstance(module, torch.nn.Linear))
    return HookPlan(tuple(targets), cross_kv, fingerprint)


def _weights_flag(module, role: str, names: tuple[str, ...]) -> int | None:
    """Where `output_attentions` sits among the positional arguments of an attention module that returns its weights
    only when asked (LED, LongT5's local and transient-global attention), or None for every other module.

    Those modules get output_attentions=True from the pre-hook, so that their weights exist to be measured; their
    callers ignore the extra output (the model's result is unchanged).
    """
    if role not in (anatomy.SELF_ATTENTION, anatomy.CROSS_ATTENTION):
        return None
    try:
        parameters = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return None
    if "output_attentions" not in parameters:
        return None
    return names.index("output_attentions") if "output_attentions" in names else len(names)


def _in_block_view(path: str, roles: dict, blocks: set, holders: set) -> bool:
    if path == "" or path in blocks or path in holders:
        return True
    role = roles[path]
    block = block_path(path)
    if role not in (_OUTSIDE_BLOCK_ROLES if block is None else _BLOCK_VIEW_ROLES):
        return False
    # The outermost module of its role: SelfAttention, not SelfAttention.q; BERT's cls.predictions (the LM head),
    # not cls.predictions.transform.dense.
    parent = path.rpartition(".")[0]
    while parent and parent != block:
        if roles.get(parent) == role:
            return False
        parent = parent.rpartition(".")[0]
    return True


# ---------------------------------------------------------------------------------------------- shapes


def _positional_names(module) -> tuple[str, ...]:
    """Names of forward's positional parameters, to label positional arguments (one lookup per class)."""
    cls = type(module)
    own = "forward" in vars(module)
    if not own and cls in _NAMES_BY_CLASS:
        return _NAMES_BY_CLASS[cls]
    try:
        parameters = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        names: tuple[str, ...] = ()
    else:
        names = tuple(p.name for p in parameters
                      if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD))
    if not own:
        _NAMES_BY_CLASS[cls] = names
    return names


_MAX_ENTRIES = 48
_MAX_NESTING = 3


class _Describer:
    """Walks call arguments and outputs, noting tensor shapes, caches, and the first tensor's dtype/device."""

    def __init__(self, tensor_type, cache_type, encdec_cache_type):
        self.tensor = tensor_type
        self.cache = cache_type
        self.encdec = encdec_cache_type

    def describe(self, value, name: str, into: dict, first: list, nesting: int = 0) -> None:
        if len(into) >= _MAX_ENTRIES:
            return
        if isinstance(value, self.tensor):
            into[name] = tuple(value.shape)
            if not first:
                first.append(value)
            return
        if value is None or isinstance(value, (bool, int, float, str)):
            return
        if self.cache is not None and isinstance(value, self.cache):
            into[name] = self.cache_shape(value)
            return
        if nesting >= _MAX_NESTING:
            return
        if isinstance(value, dict):  # dicts and ModelOutput (an OrderedDict of its non-None fields)
            for key, item in value.items():
                self.describe(item, f"{name}.{key}" if name else str(key), into, first, nesting + 1)
        elif isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                self.describe(item, f"{name}[{i}]", into, first, nesting + 1)

    def cache_shape(self, cache) -> CacheShape:
        if self.encdec is not None and isinstance(cache, self.encdec):
            return CacheShape(type(cache).__name__, _layer_shapes(cache.self_attention_cache),
                              _layer_shapes(cache.cross_attention_cache))
        return CacheShape(type(cache).__name__, _layer_shapes(cache))


def _layer_shapes(cache) -> tuple[CacheLayerShape, ...]:
    shapes = []
    for i, layer in enumerate(getattr(cache, "layers", ()) or ()):
        keys = getattr(layer, "keys", None)
        values = getattr(layer, "values", None)
        shapes.append(CacheLayerShape(i, tuple(keys.shape) if hasattr(keys, "shape") else (),
                                      tuple(values.shape) if hasattr(values, "shape") else ()))
    return tuple(shapes)


def _output_names(module, role: str, output: tuple, weights_at: int | None = None) -> list[str]:
    """Readable names for the items of a tuple output, where the family's code says what they are."""
    n = len(output)
    cls = type(module).__name__
    if weights_at is not None:
        names = [f"[{i}]" for i in range(n)]
        names[0] = "output"
        names[weights_at] = "weights"
        if weights_at == 2 and _relative_position_module(module):
            names[1] = "position_bias"
        for i in range(1, n):
            if names[i].startswith("[") and _is_cache(output[i]):
                names[i] = "past_key_values"
        if weights_at == 1 and n == 3 and _is_weights(output[2]) and _sliding_window(module):
            names[2] = "global_weights"  # LED with global tokens: [batch, heads, global tokens, sequence]
        if weights_at == 2 and isinstance(output[2], dict):
            names[1] = "global_states"  # Pegasus-X's global tokens
        return names
    if role == anatomy.ROUTER and n == 3:
        return ["dispatch", "probability", "router_logits"]
    if n == 3 and cls.endswith(("LayerSelfAttention", "LayerCrossAttention")):
        return ["hidden_states", "position_bias", "weights"]
    if n == 3 and cls.endswith("Block") and hasattr(module, "layer"):
        return ["hidden_states", "position_bias", "cross_position_bias"]
    return [f"[{i}]" for i in range(n)]


def _is_weights(value) -> bool:
    return hasattr(value, "dim") and value.dim() == 4


def _is_cache(value) -> bool:
    return hasattr(value, "get_seq_length") or hasattr(value, "self_attention_cache")


def _relative_position_module(module) -> bool:
    """T5-style attention, whose outputs are (output, position_bias, weights)."""
    return hasattr(module, "has_relative_attention_bias")


def _sliding_window(module) -> bool:
    """LED / Longformer encoder attention (a sliding window, plus optional global tokens)."""
    return hasattr(module, "longformer_self_attn") or hasattr(module, "one_sided_attn_window_size")


def attention_weights(module, role: str, output: tuple) -> tuple[int, AttentionShape] | None:
    """Which item of an attention module's tuple output holds its weights, and their kind and shape.

    T5-style modules return (output, position_bias, weights), umT5's (output, weights); the others (BART, BERT, LED,
    ...) return (output, weights, ...). A module that computed no weights (sdpa, or not asked) returns None there.
    """
    relative = hasattr(module, "block_len") or (_relative_position_module(module) and len(output) >= 3)
    index = 2 if relative else 1
    if len(output) <= index:
        return None
    weights = output[index]
    if isinstance(output[-1], dict) and hasattr(output[-1].get("local"), "dim"):
        # Pegasus-X: (output, global tokens' states, {"global": [batch, heads, globals, globals + seq],
        # "local": [batch, heads, blocks, block, globals + block]}); its block-local weights stand for it
        return len(output) - 1, AttentionShape("local", tuple(output[-1]["local"].shape))
    if not hasattr(weights, "dim"):
        return None
    if hasattr(module, "block_len") and weights.dim() == 5:  # LongT5: [batch, blocks, heads, block, keys]
        kind = "transient-global" if hasattr(module, "global_block_size") else "local"
        return index, AttentionShape(kind, tuple(weights.shape))
    if weights.dim() != 4:
        return None
    if _sliding_window(module):  # LED: [batch, query, heads, window + 1 (+ global)]
        return index, AttentionShape("local", tuple(weights.shape))
    kind = "cross" if role == anatomy.CROSS_ATTENTION else "self"
    return index, AttentionShape(kind, tuple(weights.shape))


def routing_of(output) -> Routing | None:
    """The expert each token went to, from a mixture-of-experts router's output.

    Switch Transformers' router returns (dispatch mask [batch, tokens, experts] one-hot, zero where the chosen expert
    was already full; probability of the chosen expert [batch, tokens, 1]; router logits). NLLB-MoE's top-2 router
    returns (first-expert mask [tokens, experts]; combine weights [tokens, experts], non-zero for both experts;
    router logits). Batch item 0 is read; a few numbers per token are copied to the host.
    """
    if not isinstance(output, tuple) or len(output) < 2:
        return None
    dispatch, probability = output[0], output[1]
    if not (hasattr(dispatch, "dim") and hasattr(probability, "dim")) or dispatch.dim() not in (2, 3):
        return None
    if dispatch.dim() == 3:
        dispatch = dispatch[0]
        probability = probability[0]
    num_experts = int(dispatch.shape[-1])
    chosen = dispatch.argmax(dim=-1)
    chosen = chosen.masked_fill(dispatch.sum(dim=-1) == 0, -1)
    second = None
    if probability.shape[-1] == num_experts and num_experts > 1:  # combine weights: one column per expert
        weights = probability.float()
        probability = weights.gather(-1, chosen.clamp(min=0).unsqueeze(-1)) * (chosen >= 0).unsqueeze(-1)
        others = weights.scatter(-1, chosen.clamp(min=0).unsqueeze(-1), 0.0)
        best, index = others.max(dim=-1)
        second = index.masked_fill(best <= 0, -1)
    probability = probability.reshape(-1).float()
    if probability.numel() != chosen.numel():
        return None
    return Routing(num_experts, tuple(int(e) for e in chosen.tolist()),
                   tuple(float(p) for p in probability.tolist()),
                   tuple(int(e) for e in second.tolist()) if second is not None else ())


def tensor_stats(tensors: dict) -> dict[str, TensorStats]:
    """mean/std/abs-max over finite values and NaN/inf counts, one device sync for all of them."""
    import torch

    names, rows = [], []
    for name, tensor in tensors.items():
        if not tensor.is_floating_point() or tensor.numel() == 0:
            continue
        values = tensor.detach().float()
        finite = torch.isfinite(values)
        count = finite.sum()
        zeroed = torch.where(finite, values, torch.zeros((), device=values.device))
        mean = zeroed.sum() / count.clamp(min=1)
        centred = torch.where(finite, values - mean, torch.zeros((), device=values.device))
        std = (centred.square().sum() / (count - 1).clamp(min=1)).sqrt()
        rows.append(torch.stack([mean, std, zeroed.abs().max(), torch.isnan(values).sum().float(),
                                 torch.isinf(values).sum().float()]))
        names.append(name)
    if not rows:
        return {}
    table = torch.stack(rows).cpu().tolist()
    return {name: TensorStats(row[0], row[1], row[2], int(row[3]), int(row[4])) for name, row in zip(names, table)}


# ---------------------------------------------------------------------------------------------- hooks


class _Entry:
    """A record while its module runs (mutable; frozen into a TraceRecord when its phase ends)."""

    __slots__ = ("module_id", "path", "cls", "role", "level", "parent", "inputs", "outputs", "dtype", "device",
                 "start", "time", "finished", "attention", "stats", "index", "routing")


class Tracer:
    """Hooks on the chosen modules for the length of a `with` block; always removed, modes always restored.

    >>> with Tracer(model, depth=None) as tracer:
    ...     with tracer.phase("encoder", "encoder"):
    ...         model.get_encoder()(input_ids=ids)
    >>> tracer.phases
    """

    def __init__(self, model, depth: int | None = None, stats: bool = False):
        self.model = model
        self.depth = depth
        self.stats = stats
        self.phases: list[Phase] = []
        self._handles: list = []
        self._modes: list = []  # the modules that were in training mode
        self._entries: list[_Entry] | None = None
        self._stack: list[_Entry] = []
        self._finished = 0
        self._cross_kv_calls = 0

    # -- context manager

    def __enter__(self) -> "Tracer":
        import torch

        try:
            from transformers.cache_utils import Cache, EncoderDecoderCache
        except ImportError:  # pragma: no cover - transformers always has them in 5.x
            Cache = EncoderDecoderCache = None
        self._describer = _Describer(torch.Tensor, Cache, EncoderDecoderCache)
        try:
            modules = list(self.model.modules())
            plan = hook_plan(self.model, self.depth, modules)
            # eval mode for the trace (no dropout); only the modules that were training are touched and put back.
            self._modes = [module for module in modules if module.training]
            for module in self._modes:
                module.training = False
            for ref, path, role, names, weights_flag in plan.targets:
                module = ref()
                self._handles.append(module.register_forward_pre_hook(
                    self._pre_hook(path, role, names, weights_flag), with_kwargs=True))
                self._handles.append(module.register_forward_hook(self._post_hook(role)))
            for ref in plan.cross_kv:
                self._handles.append(ref().register_forward_hook(self._count_cross_kv))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> bool:
        self.close()
        return False

    def close(self) -> None:
        """Remove every hook this tracer added and put each module's train/eval flag back."""
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()
        modes, self._modes = self._modes, []
        for module in modes:
            module.training = True
        self._stack.clear()

    @property
    def hook_count(self) -> int:
        return len(self._handles)

    # -- phases

    @contextlib.contextmanager
    def phase(self, name: str, kind: str, step: int | None = None) -> Iterator[None]:
        """Collect the records of the calls made inside this block as one Phase."""
        self._entries, self._stack = [], []
        kv_before = self._cross_kv_calls
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = (time.perf_counter() - start) * 1000
            entries, self._entries = self._entries, None
        self.phases.append(Phase(name, kind, tuple(_freeze(e) for e in entries if e.time is not None),
                                 elapsed, self._cross_kv_calls - kv_before, step))

    # -- the hooks themselves: shapes and times only

    def _pre_hook(self, path: str, role: str, names: tuple[str, ...], weights_flag: int | None = None):
        describe = None
        cls = None

        def hook(module, args, kwargs):
            nonlocal describe, cls
            entries = self._entries
            if entries is None:  # a call outside any phase: not ours to record
                return None
            if describe is None:
                describe = self._describer.describe
                cls = type(module).__name__
            entry = _Entry()
            entry.module_id = id(module)
            entry.path = path
            entry.cls = cls
            entry.role = role
            stack = self._stack
            entry.parent = stack[-1].index if stack else None
            entry.level = len(stack)
            entry.index = len(entries)
            inputs: dict = {}
            first: list = []
            for i, value in enumerate(args):
                describe(value, names[i] if i < len(names) else f"args[{i}]", inputs, first)
            for key, value in kwargs.items():
                describe(value, key, inputs, first)
            entry.inputs = inputs
            entry.time = None
            entry.attention = None
            entry.stats = None
            entry.routing = None
            entries.append(entry)
            stack.append(entry)
            if weights_flag is not None and len(args) <= weights_flag and not kwargs.get("output_attentions"):
                kwargs = dict(kwargs, output_attentions=True)
                entry.start = time.perf_counter()
                return args, kwargs
            entry.start = time.perf_counter()
            return None

        return hook

    def _post_hook(self, role: str):
        is_attention = role in (anatomy.SELF_ATTENTION, anatomy.CROSS_ATTENTION)
        is_router = role == anatomy.ROUTER

        def hook(module, args, output):
            end = time.perf_counter()
            stack = self._stack
            if self._entries is None or not stack:
                return None
            module_id = id(module)
            entry = stack.pop()
            while entry.module_id != module_id and stack:  # a call that raised inside: drop it
                entry = stack.pop()
            if entry.module_id != module_id:
                return None
            entry.time = (end - entry.start) * 1000
            outputs: dict = {}
            first: list = []
            tensors: dict = {}
            if isinstance(output, tuple) and not hasattr(output, "keys"):
                found = attention_weights(module, role, output) if is_attention else None
                names = _output_names(module, role, output, found[0] if found else None)
                for name, value in zip(names, output):
                    self._describer.describe(value, name, outputs, first)
                    if self.stats and hasattr(value, "is_floating_point"):
                        tensors[name] = value
                if found is not None:
                    entry.attention = found[1]
                if is_router:
                    entry.routing = routing_of(output)
            else:
                self._describer.describe(output, "output" if hasattr(output, "shape") else "", outputs, first)
                if self.stats:
                    tensors = _tensors_of(output)
            entry.outputs = outputs
            if first:
                entry.dtype = str(first[0].dtype).removeprefix("torch.")
                entry.device = str(first[0].device)
            else:
                entry.dtype = entry.device = None
            if self.stats and tensors:
                entry.stats = tensor_stats(tensors)
            entry.finished = self._finished
            self._finished += 1
            return None

        return hook

    def _count_cross_kv(self, module, args, output):
        self._cross_kv_calls += 1


def _tensors_of(output) -> dict:
    """The tensors directly inside an output (a tensor, or a ModelOutput's fields), for --stats."""
    if hasattr(output, "shape") and hasattr(output, "is_floating_point"):
        return {"output": output}
    if isinstance(output, dict):
        return {k: v for k, v in output.items() if hasattr(v, "is_floating_point")}
    return {}


def _freeze(entry: _Entry) -> TraceRecord:
    return TraceRecord(index=entry.index, module=entry.path, cls=entry.cls, role=entry.role, level=entry.level,
                       parent=entry.parent, input_shapes=entry.inputs, output_shapes=entry.outputs,
                       dtype=entry.dtype, device=entry.device, time_ms=entry.time, finished=entry.finished,
                       attention=entry.attention, stats=entry.stats, routing=entry.routing)


# ---------------------------------------------------------------------------------------------- the two views


def trace_forward(model, input_ids, attention_mask=None, *, depth: int | None = None, target_ids=None,
                  steps: int = 3, stats: bool = False, tokenizer=None, model_name: str | None = None,
                  prompt: str = "", target: str | None = None, explain: bool = False,
                  stop_at_eos: bool = True, global_attention_mask=None) -> TraceReport:
    """Run the model under hooks and return what ran.

    With `target_ids` (the labels, shape [1, T]): teacher forcing, one forward pass of encoder and decoder.
    Without: the encoder once, then up to `steps` greedy decoder steps with a KV cache.
    Usable without the CLI (benchmarks call it directly); the model should be loaded with eager attention
    for attention weight shapes to exist. `stop_at_eos=False` runs all `steps` even past end-of-sequence.
    `global_attention_mask` (LED only, shape [1, S], 1 = global) gives those tokens global attention in the encoder;
    the encoder's attention records then hold the global weights too.
    """
    import torch

    anatomy.check_supported(getattr(model.config, "model_type", None), "trace", model_name or type(model).__name__)
    if depth is not None and depth < 0:
        raise ValueError("depth must be 0 or more")
    if steps < 0:
        raise ValueError("steps must be 0 or more")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    attn_impl = str(getattr(model.config, "_attn_implementation", None) or "default")
    notes: list[str] = []
    if attn_impl != "eager":
        notes.append(f"attention runs as '{attn_impl}', which returns no attention weights: load the model with "
                     "attn_implementation='eager' to see their shapes.")
    param = next(model.parameters(), None)
    dtype = str(param.dtype).removeprefix("torch.") if param is not None else "?"
    device = str(param.device) if param is not None else "?"
    extra: dict = {}
    encoder_extra = {} if global_attention_mask is None else {"global_attention_mask": global_attention_mask}
    with Tracer(model, depth=depth, stats=stats) as tracer, torch.no_grad():
        if target_ids is not None:
            extra = _teacher_forcing(model, tracer, input_ids, attention_mask, target_ids, tokenizer, encoder_extra)
        else:
            extra = _generation(model, tracer, input_ids, attention_mask, steps, tokenizer, stop_at_eos,
                                encoder_extra)
            if steps and len(extra["steps"]) < steps:
                notes.append(f"generation stopped at the end-of-sequence token after {len(extra['steps'])} "
                             f"step(s) of {steps} asked.")
    first_bad = _first_nonfinite(tracer.phases) if stats else None
    ids = [int(i) for i in input_ids[0].tolist()]
    return TraceReport(model=model_name or type(model).__name__, model_class=type(model).__name__,
                       view="teacher-forcing" if target_ids is not None else "generation", depth=depth,
                       attention_implementation=attn_impl, dtype=dtype, device=device, prompt=prompt,
                       tokens=token_strings(tokenizer, ids), input_ids=tuple(ids), phases=tuple(tracer.phases),
                       target=target, stats=stats, first_nonfinite=first_bad, explain=explain,
                       notes=tuple(notes), **extra)


def _teacher_forcing(model, tracer: Tracer, input_ids, attention_mask, labels, tokenizer,
                     encoder_extra: dict | None = None) -> dict:
    import warnings

    decoder_input_ids = shift_right(model, labels)
    with tracer.phase("encoder + decoder, one forward pass (teacher forcing)", "forward"), warnings.catch_warnings():
        # EncoderDecoderModel warns whenever decoder_input_ids come with labels; here they are its own shift.
        warnings.filterwarnings("ignore", message="Version v4.12.0 introduces", category=FutureWarning)
        output = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                       labels=labels, use_cache=False, **(encoder_extra or {}))
    label_ids = [int(i) for i in labels[0].tolist()]
    dec_ids = [int(i) for i in decoder_input_ids[0].tolist()]
    predicted = [int(i) for i in output.logits[0].argmax(-1).tolist()]
    loss = output.loss
    return dict(labels=tuple(label_ids), label_tokens=token_strings(tokenizer, label_ids),
                decoder_input_ids=tuple(dec_ids), decoder_input_tokens=token_strings(tokenizer, dec_ids),
                predicted_ids=tuple(predicted), predicted_tokens=token_strings(tokenizer, predicted),
                loss=float(loss) if loss is not None else None)


def _generation(model, tracer: Tracer, input_ids, attention_mask, steps: int, tokenizer,
                stop_at_eos: bool = True, encoder_extra: dict | None = None) -> dict:
    import torch

    with tracer.phase("encoder, runs once", "encoder"):
        encoder_outputs = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask, return_dict=True,
                                              **(encoder_extra or {}))
    cache = new_cache()
    eos = eos_ids(model)
    next_id = decoder_start_id(model)
    device = input_ids.device
    decoded: list[DecodeStep] = []
    generated: list[int] = []
    for step in range(steps):
        before = _lengths(cache.self_attention_cache)
        phase_count = len(tracer.phases)
        fed = torch.tensor([[next_id]], device=device)
        with tracer.phase(f"decoder step {step}", "step", step=step):
            output = model(encoder_outputs=encoder_outputs, attention_mask=attention_mask, decoder_input_ids=fed,
                           past_key_values=cache, use_cache=True)
        cache = output.past_key_values if output.past_key_values is not None else cache
        probabilities = torch.softmax(output.logits[0, -1].float(), dim=-1)
        chosen = int(probabilities.argmax())
        kv_calls = tracer.phases[phase_count].cross_kv_projections
        decoded.append(DecodeStep(step=step, input_id=next_id, input_token=token_strings(tokenizer, [next_id])[0],
                                  position=before[0] if before else 0, self_cache_before=before,
                                  self_cache_after=_lengths(cache.self_attention_cache),
                                  cross_cache=_lengths(cache.cross_attention_cache), cross_kv_projections=kv_calls,
                                  next_id=chosen, next_token=token_strings(tokenizer, [chosen])[0],
                                  next_probability=float(probabilities[chosen]), eos=chosen in eos))
        generated.append(chosen)
        if stop_at_eos and chosen in eos:
            break
        next_id = chosen
    text = tokenizer.decode(generated, skip_special_tokens=True) if tokenizer is not None and generated else None
    return dict(steps=tuple(decoded), generated_ids=tuple(generated), generated_text=text)


def _lengths(cache) -> tuple[int, ...]:
    return tuple(layer.length for layer in _layer_shapes(cache))


def _first_nonfinite(phases) -> NonFinite | None:
    """The record whose output went non-finite first, by completion order (an inner module before its block)."""
    best = None
    for phase in phases:
        for record in phase.records:
            for name, stat in (record.stats or {}).items():
                if not stat.finite and (best is None or record.finished < best[0]):
                    best = (record.finished, NonFinite(phase.name, record.module, record.cls, name, stat.nan,
                                                       stat.inf))
    return best[1] if best else None
