"""`t5peek arch`: the module tree of the seq2seq LM, built on the meta device, repeated blocks collapsed.

Identical consecutive siblings collapse the way PyTorch's ModuleList repr does, `(1-11): 11 x T5Block`;
a block that differs from its run (T5's block 0 holds the relative position bias) says how.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from t5peek import anatomy


@dataclass(frozen=True)
class ModuleNode:
    name: str  # the child name under its parent, or "1-11" for a collapsed run
    path: str  # dotted path of the first module it stands for
    cls: str
    params: int  # distinct parameters in this subtree (one module of a run)
    shapes: dict[str, list[int]]  # the module's own parameters
    summary: str  # Linear(768 → 2048), Embedding(32128, 768), ...
    repeat: int = 1
    role: str = ""
    tied_to: dict[str, str] = field(default_factory=dict)  # own parameter → the name it is stored under
    # Without what is counted elsewhere, the children of a node add up to it.
    tied_params: int = 0  # of params, those tied to a name outside this subtree (and counted there)
    tied_sources: tuple[str, ...] = ()  # those names
    differs: str = ""  # how this block differs from its siblings
    children: tuple["ModuleNode", ...] = ()
    hidden_children: int = 0  # children cut by --depth

    @property
    def total_params(self) -> int:
        return self.params * self.repeat


@dataclass(frozen=True)
class ArchReport:
    model: str
    model_class: str
    total: int
    depth: int | None
    expanded: bool
    root: ModuleNode
    notes: tuple[str, ...] = ()


def build_tree(model, depth: int | None = None, expand: bool = False) -> ModuleNode:
    """Walk the module tree once, recording parameters by identity so tied weights count once."""
    owner: dict[int, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        owner.setdefault(id(param), name)
    return _node(model, "", type(model).__name__, owner, depth, expand, level=0)


def _node(module, path: str, name: str, owner: dict[int, str], depth: int | None, expand: bool,
          level: int) -> ModuleNode:
    own = dict(module.named_parameters(recurse=False))
    tied_to = {key: owner[id(p)] for key, p in own.items() if owner[id(p)] != _join(path, key)}
    children_modules = list(module.named_children())
    children: tuple[ModuleNode, ...] = ()
    hidden = 0
    if depth is None or level < depth:
        built = [_node(child, _join(path, child_name), child_name, owner, depth, expand,
                       level + (0 if _is_container(child) else 1))
                 for child_name, child in children_modules]
        signatures = [_signature(child) for _, child in children_modules]
        children = tuple(built if expand else _collapse(built, signatures, [c for _, c in children_modules]))
    else:
        hidden = len(children_modules)
    elsewhere = _stored_elsewhere(module, path, owner)
    return ModuleNode(
        name=name, path=path, cls=type(module).__name__, params=_distinct_params(module),
        shapes={key: list(p.shape) for key, p in own.items()}, summary=_summary(module),
        role=anatomy.role_of(path) if path else "", tied_to=tied_to,
        tied_params=sum(p.numel() for _, p in elsewhere), tied_sources=tuple(sorted({n for n, _ in elsewhere})),
        children=children, hidden_children=hidden)


def _stored_elsewhere(module, path: str, owner: dict[int, str]) -> list[tuple[str, object]]:
    """(stored name, parameter) of the subtree's parameters stored under a name outside it."""
    if not path:
        return []
    return [(owner[id(p)], p) for p in module.parameters() if not owner[id(p)].startswith(path + ".")]


def _is_container(module) -> bool:
    """ModuleList and ModuleDict only hold children; they do not count as a level of --depth."""
    import torch

    return isinstance(module, (torch.nn.ModuleList, torch.nn.ModuleDict))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _distinct_params(module) -> int:
    return sum(p.numel() for p in module.parameters())  # parameters() skips repeats of one tensor


def _signature(module) -> tuple:
    """Structure of a module: class and parameter names and shapes, recursively."""
    return (type(module).__name__,
            tuple((name, tuple(p.shape)) for name, p in module.named_parameters()),
            tuple(type(m).__name__ for m in module.modules()))


def _collapse(nodes: list[ModuleNode], signatures: list[tuple], modules: list) -> list[ModuleNode]:
    """Merge runs of identical consecutive siblings with numeric names, noting how odd ones differ."""
    if len(nodes) < 2 or not all(node.name.isdigit() for node in nodes):
        return nodes
    runs: list[list[int]] = []
    for index, signature in enumerate(signatures):
        if runs and signatures[runs[-1][0]] == signature:
            runs[-1].append(index)
        else:
            runs.append([index])
    largest = max(runs, key=lambda run: (len(run), run[0]))
    result = []
    for run in runs:
        first = nodes[run[0]]
        differs = ""
        if run is not largest and type(modules[run[0]]) is type(modules[largest[0]]):
            differs = _difference(modules[run[0]], modules[largest[0]], nodes[largest[0]].name,
                                  nodes[largest[-1]].name)
        if len(run) == 1:
            result.append(_replace(first, differs=differs))
        else:
            label = f"{first.name}-{nodes[run[-1]].name}"
            result.append(_replace(first, name=label, repeat=len(run), differs=differs))
    return result


def _difference(odd, usual, first: str, last: str) -> str:
    odd_params = {name: tuple(p.shape) for name, p in odd.named_parameters()}
    usual_params = {name: tuple(p.shape) for name, p in usual.named_parameters()}
    parts = []
    for name in sorted(odd_params.keys() - usual_params.keys()):
        parts.append(f"+ {name} {_shape(odd_params[name])}")
    for name in sorted(usual_params.keys() - odd_params.keys()):
        parts.append(f"- {name} {_shape(usual_params[name])}")
    for name in sorted(odd_params.keys() & usual_params.keys()):
        if odd_params[name] != usual_params[name]:
            parts.append(f"{name} {_shape(odd_params[name])} instead of {_shape(usual_params[name])}")
    if not parts:
        parts.append("a different inner structure")
    siblings = f"({first}-{last})" if first != last else f"({first})"
    return f"unlike {siblings}: " + "; ".join(parts)


def _shape(shape: tuple) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _replace(node: ModuleNode, **changes) -> ModuleNode:
    from dataclasses import replace

    return replace(node, **changes)


def _summary(module) -> str:
    """A one-line description of leaf modules: Linear(768 → 2048), Embedding(32128, 768), LayerNorm(768)."""
    cls = type(module).__name__
    weight = getattr(module, "weight", None)
    shape = tuple(weight.shape) if weight is not None and hasattr(weight, "shape") else None
    if hasattr(module, "in_features") and hasattr(module, "out_features"):
        bias = "" if getattr(module, "bias", None) is not None else ", no bias"
        return f"{cls}({module.in_features} → {module.out_features}{bias})"
    if hasattr(module, "num_embeddings") and hasattr(module, "embedding_dim"):
        return f"{cls}({module.num_embeddings}, {module.embedding_dim})"
    if shape is not None and len(shape) == 1 and "norm" in cls.lower():
        return f"{cls}({shape[0]})"
    if cls == "Dropout":
        return f"Dropout(p={getattr(module, 'p', '?')})"
    return ""


def describe(model, model_name: str, depth: int | None, expand: bool, notes: tuple[str, ...] = ()) -> ArchReport:
    root = build_tree(model, depth, expand)
    return ArchReport(model=model_name, model_class=type(model).__name__, total=root.params, depth=depth,
                      expanded=expand, root=root, notes=notes)
