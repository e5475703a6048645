"""One way to listen inside a running model, and to write into it.

A `Hook` names a module and a point of it: its input (the hidden states it is called with) or its output (the
first thing it returns). Its function sees that tensor, and the whole call, and may return a tensor to put in its
place: that is how a view reads the residual stream, patches an activation from another run, or zeroes one head's
slice before the output projection (`zero_heads`). `hooked(model, hooks)` installs them for the length of a `with`
block in eval mode and always takes them off again, and gives back each module's train/eval mode, also when the
block ends in an exception or Ctrl-C.

Nothing here imports torch at module level.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

INPUT, OUTPUT = "input", "output"


@dataclass
class Call:
    """One call of a hooked module, as the function of a Hook sees it."""

    args: tuple
    kwargs: dict
    output: Any = None  # at OUTPUT: what the module returned


@dataclass(frozen=True)
class Hook:
    """`fn(value, call)` at the INPUT or OUTPUT of `module`; what it returns (if not None) replaces `value`."""

    module: Any
    at: str
    fn: Callable[[Any, Call], Any]
    name: str = field(default="", compare=False)


@contextlib.contextmanager
def evaluating(model) -> Iterator[None]:
    """Eval mode (no dropout) inside the block; the modules that were training are put back after it."""
    training = [module for module in model.modules() if module.training]
    for module in training:
        module.training = False
    try:
        yield
    finally:
        for module in training:
            module.training = True


@contextlib.contextmanager
def hooked(model, hooks: list[Hook] | tuple[Hook, ...]) -> Iterator[None]:
    """`hooks` installed on `model`'s modules, in eval mode, for the length of the block."""
    handles = []
    with evaluating(model):
        try:
            for hook in hooks:
                if hook.at == INPUT:
                    handles.append(hook.module.register_forward_pre_hook(_before(hook.fn), with_kwargs=True))
                elif hook.at == OUTPUT:
                    handles.append(hook.module.register_forward_hook(_after(hook.fn), with_kwargs=True))
                else:
                    raise ValueError(f"a hook reads a module's {INPUT} or {OUTPUT}, not {hook.at!r}")
            yield
        finally:
            for handle in handles:
                handle.remove()


def _before(fn: Callable):
    def hook(_module, args, kwargs):
        from_args = bool(args)
        value = args[0] if from_args else kwargs.get("hidden_states")
        replaced = fn(value, Call(args, kwargs))
        if replaced is None:
            return None
        if from_args:
            return (replaced, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": replaced}

    return hook


def _after(fn: Callable):
    def hook(_module, args, kwargs, output):
        value = output[0] if isinstance(output, (tuple, list)) or _is_model_output(output) else output
        replaced = fn(value, Call(args, kwargs, output))
        if replaced is None:
            return None
        if isinstance(output, tuple):
            return (replaced, *output[1:])
        if isinstance(output, list):
            return [replaced, *output[1:]]
        if _is_model_output(output):
            output[next(iter(output.keys()))] = replaced
            return output
        return replaced

    return hook


def _is_model_output(value) -> bool:
    return hasattr(value, "keys") and hasattr(value, "to_tuple")


def zero_heads(heads: list[int] | tuple[int, ...], head_size: int) -> Callable[[Any, Call], Any]:
    """A function for the INPUT of an attention's output projection (T5's `o`, BART's `out_proj`) that zeroes
    the given heads' slices of the concatenated head outputs: the heads are knocked out, the rest untouched."""

    def zero(value, _call):
        value = value.clone()
        for head in heads:
            value[..., head * head_size:(head + 1) * head_size] = 0
        return value

    return zero


def keep(into: list) -> Callable[[Any, Call], None]:
    """A function that appends each value it sees (detached) to `into` and changes nothing."""

    def append(value, _call):
        into.append(value.detach())

    return append
