"""The one rule for the dtype a run computes in, used alike by loading, the memory check, the device plan and
`t5peek budget`. No torch at import."""

from __future__ import annotations

ELEMENT_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}  # the dtypes t5peek computes in


def compute_dtype(asked: str, stored: str | None, device: str) -> str:
    """`asked` unless it is auto; auto keeps the stored dtype, except float16 on the CPU (slow, and T5 overflows
    in it) and anything t5peek does not compute in, which run in float32. `device` is a resolved one (cpu, cuda,
    mps), never auto."""
    if asked != "auto":
        return asked
    if stored in ELEMENT_BYTES and not (device == "cpu" and stored == "float16"):
        return stored
    return "float32"


def torch_dtype(name: str):
    import torch

    return getattr(torch, name)
