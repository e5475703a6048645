"""The Tracer: forward pre-hooks and hooks on the planned modules, one TraceRecord per call, grouped in phases."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

from t5peek import anatomy
from t5peek.kinds import PhaseKind
from t5peek.probe.hooks import evaluating
from t5peek.trace.plan import hook_plan
from t5peek.trace.probes import _Describer, _output_names, _tensors_of, attention_weights, routing_of, tensor_stats
from t5peek.trace.records import Phase, TraceRecord


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
        self._eval: contextlib.ExitStack | None = None  # eval mode while tracing
        self._entries: list[_Entry] | None = None
        self._stack: list[_Entry] = []
        self._finished = 0
        self._cross_kv_calls = 0
        self.norm_first: bool | None = None  # in the first block, a norm ran before any linear layer (pre-norm)

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
            self._eval = contextlib.ExitStack()
            self._eval.enter_context(evaluating(self.model))  # no dropout while tracing
            for ref, path, role, names, weights_flag in plan.targets:
                module = ref()
                self._handles.append(module.register_forward_pre_hook(
                    self._pre_hook(path, role, names, weights_flag), with_kwargs=True))
                self._handles.append(module.register_forward_hook(self._post_hook(role)))
            for ref in plan.cross_kv:
                self._handles.append(ref().register_forward_hook(self._count_cross_kv))
            for ref, is_norm in plan.first_block:
                self._handles.append(ref().register_forward_pre_hook(self._first_in_block(is_norm)))
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
        restore, self._eval = self._eval, None
        if restore is not None:
            restore.close()
        self._stack.clear()

    @property
    def hook_count(self) -> int:
        return len(self._handles)

    # -- phases

    @contextlib.contextmanager
    def phase(self, name: str, kind: PhaseKind, step: int | None = None) -> Iterator[None]:
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

        def hook(module, _args, output):
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

    def _count_cross_kv(self, _module, _args, _output):
        self._cross_kv_calls += 1

    def _first_in_block(self, is_norm: bool):
        def hook(_module, _args):
            if self.norm_first is None:
                self.norm_first = is_norm

        return hook


def _freeze(entry: _Entry) -> TraceRecord:
    return TraceRecord(index=entry.index, module=entry.path, cls=entry.cls, role=entry.role, level=entry.level,
                       parent=entry.parent, input_shapes=entry.inputs, output_shapes=entry.outputs,
                       dtype=entry.dtype, device=entry.device, time_ms=entry.time, finished=entry.finished,
                       attention=entry.attention, stats=entry.stats, routing=entry.routing)
