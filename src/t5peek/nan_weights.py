"""Weights holding NaN or inf, refused by name as they load: such a checkpoint cannot produce anything meaningful
(t5peek.finite says where a run's own numbers stop being finite)."""

from __future__ import annotations

from t5peek.checkpoint import CheckpointIndex
from t5peek.errors import BadCheckpoint


def check_loaded(name: str, model) -> None:
    """Name the first weight holding NaN or inf: such a checkpoint cannot produce anything meaningful."""
    for param_name, param in model.named_parameters():
        if param.device.type == "meta":  # offloaded: checked by accelerate when it is brought in
            continue
        if param.is_floating_point():
            _refuse_non_finite(name, param_name, param)


def _refuse_non_finite(name: str, tensor_name: str, values) -> None:
    import torch

    if not bool(torch.isfinite(values).all()):
        kind = "NaN" if bool(torch.isnan(values).any()) else "inf"
        raise BadCheckpoint(f"The weight {tensor_name} of '{name}' contains {kind} values.",
                            hint="The checkpoint is corrupt or was saved after a diverged training run.")


def check_stored(name: str, checkpoint: CheckpointIndex, chunk_bytes: int = 8 << 20) -> None:
    """The same check, on the files: plain reads in small chunks, so the model's memory-mapped
    weights are not all paged into this process just to be checked."""
    import torch

    dtypes = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
    buffer = bytearray(chunk_bytes)
    by_file: dict[str, list] = {}
    for tensor in checkpoint.tensors.values():
        if tensor.dtype in dtypes:
            by_file.setdefault(tensor.file, []).append(tensor)
    for file, tensors in by_file.items():
        with open(checkpoint.folder / file, "rb") as handle:
            for tensor in sorted(tensors, key=lambda t: t.data_start):
                dtype = dtypes[tensor.dtype]
                step = chunk_bytes - chunk_bytes % torch.empty((), dtype=dtype).element_size()
                handle.seek(tensor.data_start)
                left = tensor.nbytes
                while left > 0:
                    count = handle.readinto(memoryview(buffer)[:min(step, left)])
                    if not count:
                        raise BadCheckpoint(f"{file} is truncated inside tensor {tensor.name}.")
                    values = torch.frombuffer(buffer, dtype=dtype, count=count // dtype.itemsize)
                    _refuse_non_finite(name, tensor.name, values)
                    left -= count
