"""Models bigger than one device: parse --max-memory and say how accelerate would split a model.

t5peek does no sharding of its own: the plan is accelerate's `infer_auto_device_map`, computed on the
meta-device model, so `info` and `params` can show it without loading a single weight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from t5peek.checkpoint import CheckpointIndex
from t5peek.errors import NotEnoughMemory, UsageError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20,
          "gib": 2**30, "tib": 2**40}


@dataclass(frozen=True)
class DeviceShare:
    device: str  # "0", "cpu", "disk"
    modules: tuple[str, ...]
    bytes: int


@dataclass(frozen=True)
class Placement:
    max_memory: dict[str, int]
    shares: tuple[DeviceShare, ...]


def parse_size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"'{text}' is not a memory size (write e.g. 500MB, 2GiB).")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "").lower()])


def parse_max_memory(values: list[str] | None) -> dict[str | int, int] | None:
    """['0=10GiB', 'cpu=2GB'] → {0: 10737418240, 'cpu': 2000000000}; 'disk' is unbounded."""
    if not values:
        return None
    memory: dict[str | int, int] = {}
    for value in values:
        for item in value.split(","):
            device, sep, size = item.partition("=")
            device = device.strip().lower()
            if not sep or not device:
                raise UsageError(f"--max-memory '{item}' should look like cpu=2GiB, 0=10GiB or disk=100GB.")
            if not (device.isdigit() or device in ("cpu", "disk", "mps")):
                raise UsageError(f"--max-memory names an unknown device '{device}' (use a GPU index, cpu or disk).")
            memory[int(device) if device.isdigit() else device] = parse_size(size)
    memory.setdefault("disk", 2**62)
    return memory


def normalize_max_memory(memory: dict | None) -> dict[str | int, int] | None:
    """{0: "10GiB", "cpu": 2_000_000_000} (the Python API's form) → the same as parse_max_memory gives."""
    if not memory:
        return None
    return parse_max_memory([f"{device}={size if isinstance(size, str) else int(size)}"
                             for device, size in memory.items()])


def plan(meta_model, max_memory: dict[str | int, int], dtype=None) -> Placement:
    """accelerate's split of the model over the given memory, grouped by device."""
    try:
        from accelerate import infer_auto_device_map
    except ImportError:
        raise UsageError("--max-memory needs accelerate: pip install accelerate") from None
    no_split = list(getattr(meta_model, "_no_split_modules", None) or [])
    device_map = infer_auto_device_map(meta_model, max_memory=dict(max_memory), no_split_module_classes=no_split,
                                       dtype=dtype)
    sizes = _module_sizes(meta_model, dtype)
    grouped: dict[str, list[str]] = {}
    for module, device in device_map.items():
        grouped.setdefault(str(device), []).append(module or "(whole model)")
    order = sorted(grouped, key=lambda d: (not d.isdigit(), d != "cpu", d))
    shares = tuple(DeviceShare(device, tuple(grouped[device]),
                               sum(sizes.get("" if m == "(whole model)" else m, 0) for m in grouped[device]))
                   for device in order)
    return Placement({str(k): v for k, v in max_memory.items()}, shares)


def _module_sizes(model, dtype) -> dict[str, int]:
    from accelerate.utils import compute_module_sizes

    return dict(compute_module_sizes(model, dtype=dtype))


def device_map_kwargs(device_map: str | None, max_memory: dict | None, offload_folder) -> dict:
    """Arguments for from_pretrained's big-model loading; `offload_folder()` makes the folder, only when needed."""
    if device_map is None and max_memory is None:
        return {}
    if device_map is not None and device_map not in ("auto", "balanced", "balanced_low_0", "sequential"):
        raise UsageError(f"--device-map '{device_map}' is not one of auto, balanced, balanced_low_0, sequential.")
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise UsageError("--device-map and --max-memory need accelerate: pip install accelerate") from None
    if max_memory is not None:
        check_devices(max_memory)
    kwargs: dict = {"device_map": device_map or "auto", "offload_folder": offload_folder()}
    if max_memory is not None:
        kwargs["max_memory"] = {k: v for k, v in max_memory.items()}
    return kwargs


def check_devices(max_memory: dict) -> None:
    """Every device --max-memory names for loading must be on this machine (planning a split, as info and params
    do, may name any)."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for device in max_memory:
        if isinstance(device, int) and device >= gpus:
            have = f"has GPUs 0 to {gpus - 1}" if gpus > 1 else "has only GPU 0" if gpus else "has no CUDA GPU"
            raise UsageError(f"--max-memory names GPU {device}, but this machine {have}.",
                             hint="Name only the devices this machine has (cpu, disk, a GPU index), or leave "
                                  "--max-memory out.")
        if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UsageError("--max-memory names mps, but Apple's MPS is not available on this machine.",
                             hint="Name only the devices this machine has (cpu, disk, a GPU index).")


# ---------------------------------------------------------------- will the weights fit?


def available_memory(device: str) -> int | None:
    """Bytes free for weights on the device, or None when it cannot be told."""
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def weights_bytes(checkpoint: CheckpointIndex, torch_dtype) -> int:
    """Bytes the weights take once loaded in `torch_dtype` (stored elements × element size)."""
    import torch

    element = torch.empty((), dtype=torch_dtype).element_size()
    return sum(t.numel for t in checkpoint.tensors.values()) * element if checkpoint.tensors else 0


def check_memory(name: str, checkpoint: CheckpointIndex, torch_dtype, device: str, run_peak: int | None = None,
                 run_what: str = "") -> None:
    """Refuse to start a load that cannot fit, before any weight is read. `run_peak` is what the run about to
    start peaks at, weights included (t5peek.budget's estimate), described by `run_what`."""
    weights = weights_bytes(checkpoint, torch_dtype)
    needed = max(weights or 0, run_peak or 0)
    free = available_memory(device)
    if free is None or not needed or needed <= free:
        return
    gib = 1024 ** 3
    if run_peak and weights and run_peak > weights:
        raise NotEnoughMemory(f"'{name}' needs about {needed / gib:.1f} GiB: {weights / gib:.1f} GiB for its weights "
                              f"and {(run_peak - weights) / gib:.1f} GiB for the caches and activations of "
                              f"{run_what}, but only {free / gib:.1f} GiB is free on {device}.",
                              hint="Try a shorter prompt, fewer new tokens or beams, --dtype bfloat16, or "
                              "--skip-memory-check to try anyway; `t5peek budget` shows where the memory goes.")
    raise NotEnoughMemory(f"'{name}' needs about {needed / gib:.1f} GiB for its weights, but only "
                          f"{free / gib:.1f} GiB is free on {device}.",
                          hint="Try --dtype bfloat16, a smaller model, or --skip-memory-check to try anyway.")
