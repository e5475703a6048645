"""What a checkpoint stores, read from safetensors headers only: names, shapes, dtypes, files and sizes.

Nothing here imports torch. A local header is a few KB at the start of each file; a Hub header is fetched
with huggingface_hub's header-only call.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from t5peek.errors import BadCheckpoint, Refused

SAFETENSORS_SINGLE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_SINGLE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"

DTYPE_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
               "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
               "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}

_LFS_POINTER_PREFIX = b"version https://git-lfs"
_MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str  # safetensors code: F32, BF16, ...
    file: str  # file name inside the model folder
    data_start: int  # absolute byte offset of the data in the file
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class CheckpointIndex:
    """The tensors a checkpoint stores. `format` is safetensors, pickle or none."""

    format: str
    files: tuple[str, ...] = ()
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    where: str = "local"  # local, hub
    folder: Path | None = None

    @property
    def stored_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    @property
    def dtypes(self) -> dict[str, int]:
        """Stored dtype name → number of elements stored in it."""
        counts: dict[str, int] = {}
        for tensor in self.tensors.values():
            name = DTYPE_NAMES.get(tensor.dtype, tensor.dtype.lower())
            counts[name] = counts.get(name, 0) + tensor.numel
        return counts

    @property
    def main_dtype(self) -> str | None:
        dtypes = self.dtypes
        return max(dtypes, key=dtypes.get) if dtypes else None


def inside_folder(folder: Path, relative: str, root: Path | None = None) -> Path:
    """The path of a file named by an index, refusing names that escape the model folder.

    `root` is where links may point: the folder itself, or for a Hub snapshot the repo's cache folder.
    """
    if os.path.isabs(relative) or relative.startswith(("/", "\\")) or ".." in Path(relative).parts:
        raise Refused(f"The shard index names '{relative}', outside the model folder; refusing to read it.")
    path = folder / relative
    allowed = (root or folder).resolve()
    if path.exists() and allowed not in path.resolve().parents:
        raise Refused(f"The shard '{relative}' is a link to a file outside the model folder; refusing to read it.")
    return path


def read_safetensors_header(path: Path, file_label: str | None = None) -> dict[str, TensorInfo]:
    """Parse the JSON header of one safetensors file, checking that the data it announces is really there."""
    label = file_label or path.name
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            if head.startswith(_LFS_POINTER_PREFIX[:8]) and handle.read(64).startswith(_LFS_POINTER_PREFIX[8:]):
                raise BadCheckpoint(f"{label} is a git-lfs pointer file, not the weights.",
                                    hint="Run `git lfs pull` in the model folder to fetch the real files.")
            if len(head) < 8:
                raise BadCheckpoint(f"{label} is truncated: it is too short to be a safetensors file.")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > _MAX_HEADER_BYTES or 8 + header_len > size:
                raise BadCheckpoint(f"{label} is truncated or not a safetensors file (bad header length).")
            header = json.loads(handle.read(header_len))
    except FileNotFoundError:
        raise BadCheckpoint(f"{label} is listed but missing from the model folder.") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadCheckpoint(f"{label} has a corrupt safetensors header.") from None
    tensors = _tensors_from_header(header, label, data_base=8 + header_len)
    data_end = max((t.data_start + t.nbytes for t in tensors.values()), default=8 + header_len)
    if data_end > size:
        raise BadCheckpoint(f"{label} is truncated: its header announces {data_end:,} bytes but the file has "
                            f"{size:,}.", hint="Download the file again.")
    return tensors


def _tensors_from_header(header: dict, file: str, data_base: int) -> dict[str, TensorInfo]:
    if not isinstance(header, dict):
        raise BadCheckpoint(f"{file} has a corrupt safetensors header.")
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = entry["data_offsets"]
            tensors[name] = TensorInfo(name=name, shape=tuple(int(d) for d in entry["shape"]), dtype=entry["dtype"],
                                       file=file, data_start=data_base + int(start), nbytes=int(end) - int(start))
        except (KeyError, TypeError, ValueError):
            raise BadCheckpoint(f"{file} has a corrupt entry for tensor '{name}' in its header.") from None
    return tensors


def weights_present(folder: Path) -> bool:
    """Whether the folder holds weight files: every shard of its index, or a single file.

    A Hub snapshot may hold a shard index without its shards (the header-only call downloads it).
    """
    index_path = folder / SAFETENSORS_INDEX
    if index_path.is_file():
        try:
            shards = set(_read_weight_map(index_path).values())
        except BadCheckpoint:
            return True  # let the reader report it
        return all((folder / shard).is_file() for shard in shards)
    return any(folder.glob("*.safetensors")) or any((folder / name).is_file() for name in (PICKLE_INDEX,
                                                                                           PICKLE_SINGLE))


def read_local_checkpoint(folder: Path, root: Path | None = None) -> CheckpointIndex:
    """Index the weights of a local model folder without reading their data."""
    index_path = folder / SAFETENSORS_INDEX
    if index_path.is_file():
        weight_map = _read_weight_map(index_path)
        tensors: dict[str, TensorInfo] = {}
        files = tuple(sorted(set(weight_map.values())))
        for file in files:
            tensors.update(read_safetensors_header(inside_folder(folder, file, root), file))
        missing = sorted(name for name, file in weight_map.items() if name not in tensors)
        if missing:
            raise BadCheckpoint(f"The shard index lists {len(missing)} tensors its shards do not hold, "
                                f"e.g. {', '.join(missing[:3])}.")
        return CheckpointIndex("safetensors", files, tensors, "local", folder)
    single = folder / SAFETENSORS_SINGLE
    if single.is_file():
        path = inside_folder(folder, SAFETENSORS_SINGLE, root)
        return CheckpointIndex("safetensors", (SAFETENSORS_SINGLE,), read_safetensors_header(path), "local", folder)
    others = sorted(p.name for p in folder.glob("*.safetensors"))
    if others:
        tensors = {}
        for file in others:
            tensors.update(read_safetensors_header(inside_folder(folder, file, root)))
        return CheckpointIndex("safetensors", tuple(others), tensors, "local", folder)
    pickles = [name for name in (PICKLE_INDEX, PICKLE_SINGLE) if (folder / name).is_file()]
    if pickles:
        return CheckpointIndex("pickle", tuple(pickles), {}, "local", folder)
    return CheckpointIndex("none", (), {}, "local", folder)


def _read_weight_map(index_path: Path) -> dict[str, str]:
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise BadCheckpoint(f"{index_path.name} is not a valid shard index.") from None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise BadCheckpoint(f"{index_path.name} is not a valid shard index.")
    return weight_map


def checkpoint_from_hub(metadata) -> CheckpointIndex:
    """Index a Hub repository's safetensors weights from huggingface_hub's parsed headers."""
    tensors: dict[str, TensorInfo] = {}
    for file, file_meta in metadata.files_metadata.items():
        for name, info in file_meta.tensors.items():
            start, end = info.data_offsets
            tensors[name] = TensorInfo(name, tuple(info.shape), info.dtype, file, start, end - start)
    return CheckpointIndex("safetensors", tuple(sorted(metadata.files_metadata)), tensors, "hub", None)


def same_stored_values(index: CheckpointIndex, first: str, second: str, window: int = 4096) -> bool | None:
    """Whether two stored tensors hold the same values, judged from a few windows of their bytes.

    Returns None when the data cannot be read (Hub headers, sparse benchmark files are read as zeros).
    """
    a, b = index.tensors[first], index.tensors[second]
    if a.nbytes != b.nbytes or a.dtype != b.dtype:
        return False
    if index.folder is None:
        return None
    offsets = sorted({0, max(0, a.nbytes // 2 - window // 2), max(0, a.nbytes - window)})
    try:
        with open(index.folder / a.file, "rb") as fa, open(index.folder / b.file, "rb") as fb:
            for offset in offsets:
                fa.seek(a.data_start + offset)
                fb.seek(b.data_start + offset)
                if fa.read(window) != fb.read(window):
                    return False
    except OSError:
        return None
    return True
