"""What a checkpoint stores, read from safetensors headers only: names, shapes, dtypes, files and sizes.

Nothing here imports torch. A local header is a few KB at the start of each file; a Hub header is fetched
with huggingface_hub's header-only call.
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from t5peek.errors import BadCheckpoint, Refused

SAFETENSORS_SINGLE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_SINGLE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"

class SafetensorsDtype(NamedTuple):
    bits: int  # one element's size
    torch_name: str | None  # what torch calls it; None where torch has no such dtype


# Every dtype a safetensors header may name: the `Dtype` list safetensors (0.8) reads headers with. Any other name
# is corruption: safetensors refuses to open the file.
SAFETENSORS_DTYPES = {
    "BOOL": SafetensorsDtype(8, "bool"), "U8": SafetensorsDtype(8, "uint8"), "I8": SafetensorsDtype(8, "int8"),
    "F8_E5M2": SafetensorsDtype(8, "float8_e5m2"), "F8_E4M3": SafetensorsDtype(8, "float8_e4m3fn"),
    "F8_E8M0": SafetensorsDtype(8, "float8_e8m0fnu"), "F8_E4M3FNUZ": SafetensorsDtype(8, "float8_e4m3fnuz"),
    "F8_E5M2FNUZ": SafetensorsDtype(8, "float8_e5m2fnuz"), "F4": SafetensorsDtype(4, None),
    "F6_E2M3": SafetensorsDtype(6, None), "F6_E3M2": SafetensorsDtype(6, None), "I16": SafetensorsDtype(16, "int16"),
    "U16": SafetensorsDtype(16, "uint16"), "F16": SafetensorsDtype(16, "float16"),
    "BF16": SafetensorsDtype(16, "bfloat16"), "I32": SafetensorsDtype(32, "int32"),
    "U32": SafetensorsDtype(32, "uint32"), "F32": SafetensorsDtype(32, "float32"),
    "I64": SafetensorsDtype(64, "int64"), "U64": SafetensorsDtype(64, "uint64"),
    "F64": SafetensorsDtype(64, "float64"), "C64": SafetensorsDtype(64, "complex64"),
}
_ADDRESSABLE = 1 << 64  # safetensors counts offsets, elements and bits in 64-bit integers and refuses what overflows

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
            name = SAFETENSORS_DTYPES[tensor.dtype].torch_name or tensor.dtype.lower()
            counts[name] = counts.get(name, 0) + tensor.numel
        return counts

    @property
    def main_dtype(self) -> str | None:
        dtypes = self.dtypes
        return max(dtypes, key=dtypes.get) if dtypes else None


def inside_folder(folder: Path, relative: str, root: Path | None = None) -> Path:
    """The path of a weight file (or of a file named by a shard index), refusing names that escape the model
    folder, links that point out of it, and anything but a regular file: reading a FIFO waits forever.

    `root` is where links may point: the folder itself, or for a Hub snapshot the repo's cache folder.
    """
    if os.path.isabs(relative) or relative.startswith(("/", "\\")) or ".." in Path(relative).parts:
        raise Refused(f"The shard index names '{relative}', outside the model folder; refusing to read it.")
    path = folder / relative
    allowed = (root or folder).resolve()
    if path.exists():
        if allowed not in path.resolve().parents:
            raise Refused(f"The weight file '{relative}' is a link to a file outside the model folder; refusing "
                          "to read it.")
        if not path.is_file():
            raise _not_a_file(relative)
    return path


def _not_a_file(name: str) -> BadCheckpoint:
    return BadCheckpoint(f"The weight file '{name}' is not a regular file (a pipe, a device or a folder); refusing "
                         "to read it.", hint="Put the real file in the model folder.")


def read_safetensors_header(path: Path, file_label: str | None = None) -> dict[str, TensorInfo]:
    """Parse the JSON header of one safetensors file, checking it as safetensors itself does before any weight is
    read: a header safetensors would refuse is corruption here too, found before anything is counted or loaded."""
    label = file_label or path.name
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            raise _not_a_file(label)
        size = status.st_size
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
            header = _parse_json(handle.read(header_len), label)
    except FileNotFoundError:
        raise BadCheckpoint(f"{label} is listed but missing from the model folder.") from None
    tensors = _tensors_from_header(header, label, data_base=8 + header_len)
    check_layout(tensors.values(), label, data_base=8 + header_len)
    data_end = max((t.data_start + t.nbytes for t in tensors.values()), default=8 + header_len)
    if data_end > size:
        raise BadCheckpoint(f"{label} is truncated: its header announces {data_end:,} bytes but the file has "
                            f"{size:,}.", hint="Download the file again.")
    if data_end < size:
        raise BadCheckpoint(f"{label} holds {size - data_end:,} bytes after the data its header describes; "
                            "safetensors refuses such a file.", hint="The file is damaged; download it again.")
    return tensors


def _parse_json(raw: bytes, file: str):
    """The header as JSON, as strictly as safetensors reads it: UTF-8 text, no NaN or Infinity, no lone surrogate
    escapes."""
    def refuse(constant: str):
        raise ValueError(constant)

    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=refuse)
        json.dumps(header, ensure_ascii=False).encode("utf-8")  # lone surrogates (\ud800) do not encode
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeError and int digit limits are ValueErrors
        raise BadCheckpoint(f"{file} has a corrupt safetensors header (not valid UTF-8 JSON).") from None
    return header


def _tensors_from_header(header, file: str, data_base: int) -> dict[str, TensorInfo]:
    if not isinstance(header, dict):
        raise BadCheckpoint(f"{file} has a corrupt safetensors header (not a JSON object).")
    _check_metadata(header.get("__metadata__"), file)
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        problem = _entry_problem(entry)
        if problem:
            raise BadCheckpoint(f"{file} has a corrupt entry for tensor '{_shown(name)}' in its header: {problem}.",
                                hint="The file is damaged or was not written by safetensors; download it again.")
        start, end = entry["data_offsets"]
        tensors[name] = TensorInfo(name=name, shape=tuple(entry["shape"]), dtype=entry["dtype"], file=file,
                                   data_start=data_base + start, nbytes=end - start)
    return tensors


def _check_metadata(metadata, file: str) -> None:
    """`__metadata__` is optional; when there, safetensors reads it as a map of text to text."""
    if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str)
                                                                        for v in metadata.values())):
        raise BadCheckpoint(f"{file}: the header's __metadata__ is not a map of text to text.",
                            hint="The file is damaged or was not written by safetensors; download it again.")


def _entry_problem(entry) -> str | None:
    """What is wrong with one tensor's entry (dtype, shape, data_offsets), or None."""
    if not isinstance(entry, dict):
        return "it is not a JSON object"
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in SAFETENSORS_DTYPES:
        return f"the dtype {_shown_value(dtype)} is not one safetensors knows"
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        return f"the shape {_shown_value(shape)} is not a list of whole numbers"
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(v) for v in offsets):
        return f"the data_offsets {_shown_value(offsets)} are not two whole numbers"
    return None


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _ADDRESSABLE


def _shown(name: str) -> str:
    return name if len(name) <= 80 and name.isprintable() else repr(name[:80])


def _shown_value(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bits(tensor: TensorInfo) -> int | None:
    """The bits a tensor's data takes, counted as safetensors counts them (dimension by dimension, then times the
    element size, in 64-bit integers); None when that overflows, which safetensors refuses."""
    count = 1
    for dimension in tensor.shape:
        count *= dimension
        if count >= _ADDRESSABLE:
            return None
    bits = count * SAFETENSORS_DTYPES[tensor.dtype].bits
    return bits if bits < _ADDRESSABLE else None


def check_layout(tensors, file: str, data_base: int = 0) -> None:
    """The header must describe the data it sits on: each tensor's byte range holds exactly its shape in its dtype
    (sub-byte dtypes filling whole bytes), and the ranges follow each other from the start of the data, without gap
    or overlap (as safetensors itself requires). A header that lies is corruption, never a parameter count."""
    position = data_base
    for tensor in sorted(tensors, key=lambda t: (t.data_start, t.nbytes)):
        element_bits = SAFETENSORS_DTYPES[tensor.dtype].bits
        if tensor.nbytes < 0 or any(d < 0 for d in tensor.shape):
            raise BadCheckpoint(f"{file}: the header gives tensor '{_shown(tensor.name)}' a negative size.")
        if tensor.nbytes * 8 != tensor.numel * element_bits:
            raise BadCheckpoint(f"{file}: the header gives tensor '{_shown(tensor.name)}' the shape "
                                f"{list(tensor.shape)} in {tensor.dtype} over {tensor.nbytes:,} bytes; they do not "
                                "match.",
                                hint="The file is damaged or was not written by safetensors; download it again.")
        if _bits(tensor) is None:
            raise BadCheckpoint(f"{file}: the header gives tensor '{_shown(tensor.name)}' the shape "
                                f"{list(tensor.shape)}, too large to count in 64 bits; safetensors refuses it.",
                                hint="The file is damaged or was not written by safetensors; download it again.")
        if tensor.data_start != position:
            raise BadCheckpoint(f"{file}: the header's byte ranges overlap or leave gaps (at tensor "
                                f"'{_shown(tensor.name)}').", hint="The file is damaged; download it again.")
        position += tensor.nbytes


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
        weight_map = _read_weight_map(inside_folder(folder, SAFETENSORS_INDEX, root))
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
    if (folder / PICKLE_INDEX).is_file():
        shards = sorted(set(_read_weight_map(inside_folder(folder, PICKLE_INDEX, root)).values()))
        for shard in shards:
            inside_folder(folder, shard, root)  # the same path rules as for safetensors shards
        return CheckpointIndex("pickle", (PICKLE_INDEX, *shards), {}, "local", folder)
    if os.path.lexists(folder / PICKLE_SINGLE):
        inside_folder(folder, PICKLE_SINGLE, root)
        return CheckpointIndex("pickle", (PICKLE_SINGLE,), {}, "local", folder)
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
    """Index a Hub repository's safetensors weights from huggingface_hub's parsed headers, checked as local
    headers are (huggingface_hub keeps whatever dtype and __metadata__ a header names)."""
    tensors: dict[str, TensorInfo] = {}
    for file, file_meta in metadata.files_metadata.items():
        header = {name: {"dtype": info.dtype, "shape": info.shape, "data_offsets": list(info.data_offsets)}
                  for name, info in file_meta.tensors.items()}
        _check_metadata(file_meta.metadata, file)
        in_file = _tensors_from_header(header, file, data_base=0)
        check_layout(in_file.values(), file)
        tensors.update(in_file)
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
