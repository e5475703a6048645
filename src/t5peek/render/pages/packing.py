"""The JSON a page carries: a command's `--json` document, with its long runs of float32 numbers stored as
base64 of their little-endian float32 bytes, {"$float32": shape, "data": "..."}. The numbers t5peek's records hold
come from float32 tensors, so each is a float32 exactly: four bytes keep it exactly, where its decimal spelling
takes about twenty characters. `expand` (here, and its port in the page's script) gives back the document itself.
Lists of integers, of non-finite values (strings in t5peek's JSON) and of numbers that are not float32 stay as
they are."""

from __future__ import annotations

import base64
import math

import numpy as np

MARK = "$float32"
SHORTEST = 32  # a list of fewer numbers stays plain JSON: small, and readable in the page's source


def compact(value):
    """`value` (plain JSON data) with each long rectangular list of float32 numbers packed."""
    if isinstance(value, dict):
        return {key: compact(item) for key, item in value.items()}
    if isinstance(value, list):
        packed = _packed(value)
        return packed if packed is not None else [compact(item) for item in value]
    return value


def expand(value):
    """The inverse of `compact`."""
    if isinstance(value, dict):
        if set(value) == {MARK, "data"}:
            numbers = np.frombuffer(base64.b64decode(value["data"]), dtype="<f4").astype(np.float64)
            return numbers.reshape(value[MARK]).tolist() if value[MARK] else []
        return {key: expand(item) for key, item in value.items()}
    if isinstance(value, list):
        return [expand(item) for item in value]
    return value


def _packed(values: list) -> dict | None:
    shape = _shape(values)
    if shape is None or math.prod(shape) < SHORTEST:
        return None
    numbers = np.asarray(values, dtype=np.float64)
    single = numbers.astype("<f4")
    if not np.array_equal(single.astype(np.float64), numbers):  # not float32 numbers: they stay decimal
        return None
    return {MARK: list(shape), "data": base64.b64encode(single.tobytes()).decode("ascii")}


def _shape(values) -> tuple[int, ...] | None:
    """The shape of a rectangular nest of lists of floats (not ints, not bools), else None."""
    if not isinstance(values, list) or not values:
        return None
    if all(type(item) is float for item in values):
        return (len(values),)
    inner = [_shape(item) for item in values]
    if inner[0] is None or any(shape != inner[0] for shape in inner):
        return None
    return (len(values), *inner[0])
