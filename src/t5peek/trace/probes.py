"""What the hooks read off a call: argument and output shapes (through tuples, ModelOutputs and KV caches),
attention weight shapes, mixture-of-experts routing and, with --stats, output statistics."""

from __future__ import annotations

from t5peek import anatomy
from t5peek.trace.records import AttentionShape, CacheLayerShape, CacheShape, Routing, TensorStats

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


def _tensors_of(output) -> dict:
    """The tensors directly inside an output (a tensor, or a ModelOutput's fields), for --stats."""
    if hasattr(output, "shape") and hasattr(output, "is_floating_point"):
        return {"output": output}
    if isinstance(output, dict):
        return {k: v for k, v in output.items() if hasattr(v, "is_floating_point")}
    return {}
