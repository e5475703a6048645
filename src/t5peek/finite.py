"""Where a run's numbers stop being finite (a model whose numbers overflowed: float16, or huge weights), said in the
one sentence `generate` says of its scores, by every view of its own numbers: `lens` of its logits, `attend` of its
decoding and its head, `trace --compare` of its two paths, `generate --occlusion` of its re-scoring."""

from __future__ import annotations

import math

NAN = "NaN"
RULED_OUT = "all -inf (every token was ruled out)"


def scores_state(top_score: float) -> str | None:
    """What leaves nothing to choose from in a row of scores, told by its highest: NaN, or every token ruled out
    (torch.topk puts a NaN first); None when there is a choice."""
    if math.isnan(top_score):
        return NAN
    if top_score == -math.inf:
        return RULED_OUT
    return None


def row_states(values) -> list[str | None]:
    """For each row of a tensor (..., n), flattened: NaN where a value is NaN, else inf / -inf / inf and -inf where
    one is infinite, None where every value is finite. One transfer."""
    import torch

    flags = torch.stack([torch.isnan(values).any(-1), torch.isposinf(values).any(-1),
                         torch.isneginf(values).any(-1)], dim=-1).reshape(-1, 3).tolist()
    return [_state(*row) for row in flags]


def tensor_state(values) -> str | None:
    """`row_states` of a whole tensor, as one row."""
    return row_states(values.reshape(1, -1))[0]


def tensor_states(tensors) -> list[str | None]:
    """`tensor_state` of each tensor (of any shapes, on one device), in one transfer."""
    import torch

    flags = torch.stack([torch.stack([torch.isnan(t).any(), torch.isposinf(t).any(), torch.isneginf(t).any()])
                         for t in tensors]).tolist()
    return [_state(*row) for row in flags]


def value_state(value: float) -> str | None:
    """NaN, inf or -inf for one float; None when it is finite."""
    return _state(math.isnan(value), value == math.inf, value == -math.inf)


def _state(nan: bool, positive: bool, negative: bool) -> str | None:
    if nan:
        return NAN
    infinite = [name for name, present in (("inf", positive), ("-inf", negative)) if present]
    return " and ".join(infinite) or None


def first(states) -> tuple[int, str] | None:
    """(index, state) of the first state that is not None."""
    return next(((index, state) for index, state in enumerate(states) if state is not None), None)


def from_step(step: int, numbers: str, state: str, consequence: str, unit: str = "step") -> str:
    """The sentence of the finding: 'From step 0 on the scores are NaN; the choices are arbitrary.'"""
    return f"From {unit} {step} on the {numbers} are {state}; {consequence}."


def largest(values) -> float:
    """The largest of `values`; NaN when one is NaN (max() keeps whichever comes first) or when there is none."""
    values = list(values)
    if not values or any(math.isnan(value) for value in values):
        return math.nan
    return max(values)
