"""Which modules to hook for a `--depth` (or the block view), and how to label them: the cached hook plan."""

from __future__ import annotations

import inspect
import weakref
from dataclasses import dataclass

from t5peek import anatomy

BLOCK = "block"
STACK = "stack"
MODEL = "model"


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
    # (weakref, is it a norm) for the norms and linear layers of the first block: whichever runs first says whether
    # the model normalises before its sublayers (pre-norm) or after them
    first_block: tuple = ()


_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_NAMES_BY_CLASS: dict[type, tuple[str, ...]] = {}
KV_NAMES = {"k", "v", "k_proj", "v_proj", "key", "value"}


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
                     if path.rpartition(".")[2] in KV_NAMES and roles[path] == anatomy.CROSS_ATTENTION
                     and isinstance(module, torch.nn.Linear))
    first = next((path for path in levels if path in blocks), None)
    first_block = tuple((weakref.ref(module), roles[path] == anatomy.NORM) for path, (module, _) in levels.items()
                        if first and path.startswith(first + ".")
                        and (roles[path] == anatomy.NORM or isinstance(module, torch.nn.Linear)))
    return HookPlan(tuple(targets), cross_kv, fingerprint, first_block)


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
