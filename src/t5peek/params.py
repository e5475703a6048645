"""`t5peek params`: exact parameter counts, broken down by component, layer or type, and memory per dtype.

Counts come from the checkpoint's safetensors headers (no torch, no weights) for the families whose tying
rules t5peek knows, and from the model built on the meta device otherwise. Either way a tensor tied to
another is counted once, exactly as `model.num_parameters()` does after transformers loads the checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from t5peek import anatomy, families
from t5peek.checkpoint import CheckpointIndex
from t5peek.loading import untied_names

BYTES_PER_PARAM = {"float32": 4.0, "bfloat16/float16": 2.0, "int8": 1.0, "int4": 0.5}


@dataclass(frozen=True)
class Tensor:
    """One distinct parameter tensor, with the other names that share it."""

    name: str
    shape: tuple[int, ...]
    numel: int
    tied_names: tuple[str, ...] = ()

    @property
    def role(self) -> str:
        return anatomy.role_of(self.name)

    @property
    def stack(self) -> str:
        return anatomy.stack_of(self.name)

    @property
    def layer(self) -> int | None:
        return anatomy.layer_of(self.name)


@dataclass(frozen=True)
class ParamRow:
    label: str
    params: int
    percent: float
    blocks: int | None = None  # how many blocks the row sums over
    per_block: int | None = None
    note: str = ""


@dataclass(frozen=True)
class TiedGroup:
    stored_as: str
    shared_with: tuple[str, ...]
    params: int


@dataclass(frozen=True)
class ParamReport:
    model: str
    model_type: str
    total: int
    by: str
    rows: tuple[ParamRow, ...]
    memory_bytes: dict[str, int]
    stored_bytes: int | None
    stored_dtype: str | None
    tied: tuple[TiedGroup, ...]
    counted_from: str  # "safetensors headers", "meta model + headers", "config only"
    notes: tuple[str, ...] = ()
    trainable: int | None = None
    frozen: int | None = None
    encoder_layers: int = 0
    decoder_layers: int = 0
    tensors: int = 0
    unstored: tuple[str, ...] = field(default_factory=tuple)
    placement: object = None  # placement.Placement when --max-memory was given


def tensors_from_headers(model_type: str, raw_config: dict, checkpoint: CheckpointIndex) -> list[Tensor]:
    """The distinct parameters a checkpoint yields once transformers ties what it ties."""
    tied = anatomy.tied_weights(model_type, raw_config)
    stored = {name: t for name, t in checkpoint.tensors.items() if name.rpartition(".")[2] not in
              anatomy.STORED_BUFFERS and name not in anatomy.STORED_BUFFERS}
    kept_apart = untied_names(raw_config, checkpoint, tied)
    alias_of = {target: source for target, source in tied.items() if target not in kept_apart}
    groups: dict[str, list[str]] = {}
    for target, source in alias_of.items():
        groups.setdefault(source, []).append(target)
    tensors = []
    for name, info in stored.items():
        if name in alias_of and alias_of[name] in stored:
            continue  # counted once, under its source
        source = alias_of.get(name)
        if source is not None:
            # The source is absent and this target stands in for it (transformers swaps them).
            shared = (source, *(n for n in groups.get(source, []) if n != name))
        else:
            shared = tuple(groups.get(name, []))
        tensors.append(Tensor(name, info.shape, info.numel, tuple(sorted(shared))))
    return tensors


def tensors_from_model(model) -> list[Tensor]:
    """The distinct parameters of a (meta or real) model, tied ones grouped by tensor identity."""
    by_identity: dict[int, list[str]] = {}
    params = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        by_identity.setdefault(id(param), []).append(name)
        params[id(param)] = param
    tensors = []
    for key, names in by_identity.items():
        param = params[key]
        tensors.append(Tensor(names[0], tuple(param.shape), param.numel(), tuple(names[1:])))
    return tensors


def breakdown(tensors: list[Tensor], by: str) -> tuple[ParamRow, ...]:
    total = sum(t.numel for t in tensors) or 1
    if by == "type":
        sums: dict[str, int] = {}
        for tensor in tensors:
            sums[tensor.role] = sums.get(tensor.role, 0) + tensor.numel
        return tuple(ParamRow(role, sums[role], 100 * sums[role] / total)
                     for role in anatomy.ROLE_ORDER if role in sums)
    if by == "layer":
        return _by_layer(tensors, total)
    return _by_component(tensors, total)


def _by_component(tensors: list[Tensor], total: int) -> tuple[ParamRow, ...]:
    rows = []
    outside = [t for t in tensors if t.stack == "shared"]
    for role in anatomy.ROLE_ORDER:
        members = [t for t in outside if t.role == role]
        if members:
            count = sum(t.numel for t in members)
            rows.append(ParamRow(_outside_label(role, members), count, 100 * count / total,
                                 note=_tie_note(members)))
    for stack in ("encoder", "decoder"):
        members = [t for t in tensors if t.stack == stack]
        layers = sorted({t.layer for t in members if t.layer is not None})
        for role in anatomy.ROLE_ORDER:
            in_blocks = [t for t in members if t.role == role and t.layer is not None]
            if in_blocks:
                count = sum(t.numel for t in in_blocks)
                holders = sorted({t.layer for t in in_blocks})
                per_layer = {layer: sum(t.numel for t in in_blocks if t.layer == layer) for layer in holders}
                uniform = len(set(per_layer.values())) == 1
                note = _uneven_note(per_layer) if not uniform else _tie_note(in_blocks)
                if len(holders) < len(layers):
                    note = (f"only in block {', '.join(map(str, holders))}"
                            + (", shared by every block" if role == anatomy.POSITION else "")
                            + (f"; {note}" if note else ""))
                rows.append(ParamRow(f"{stack} {_role_label(role, in_blocks)}", count, 100 * count / total,
                                     blocks=len(holders),
                                     per_block=per_layer[holders[0]] if uniform else None, note=note))
        for role in anatomy.ROLE_ORDER:
            loose = [t for t in members if t.role == role and t.layer is None]
            if loose:
                count = sum(t.numel for t in loose)
                label = f"{stack} {_loose_label(role, loose)}"
                rows.append(ParamRow(label, count, 100 * count / total, note=_tie_note(loose)))
    return tuple(rows)


def _role_label(role: str, members: list[Tensor]) -> str:
    if role == anatomy.POSITION:
        if any("relative_attention_bias" in t.name for t in members):
            return "relative position bias"
        return "position embeddings"
    return role


def _loose_label(role: str, members: list[Tensor]) -> str:
    """Tensors of a stack that sit outside its blocks: the final norm, the embedding norm, ..."""
    if role == anatomy.NORM:
        names = [t.name for t in members]
        if all("embedding" in name for name in names):
            return "embedding norm"
        if any("embedding" in name for name in names):
            return "embedding and final norms"
        return "final norm"
    return _role_label(role, members)


def _outside_label(role: str, members: list[Tensor]) -> str:
    if role == anatomy.EMBEDDING:
        return "embeddings (shared)" if any(t.tied_names for t in members) else "embeddings"
    return _role_label(role, members)


def _tie_note(members: list[Tensor]) -> str:
    tied = [name.removesuffix(".weight") for t in members for name in t.tied_names]
    return ("tied: " + ", ".join(tied)) if tied else ""


def _uneven_note(per_layer: dict[int, int]) -> str:
    counts = list(per_layer.values())
    usual = max(set(counts), key=counts.count)
    odd = [f"block {layer}: {count:,}" for layer, count in per_layer.items() if count != usual]
    return f"{usual:,} per block, except " + "; ".join(odd)


def _by_layer(tensors: list[Tensor], total: int) -> tuple[ParamRow, ...]:
    rows = []
    outside = [t for t in tensors if t.stack == "shared"]
    if outside:
        count = sum(t.numel for t in outside)
        rows.append(ParamRow("embeddings and head", count, 100 * count / total, note=_tie_note(outside)))
    for stack in ("encoder", "decoder"):
        members = [t for t in tensors if t.stack == stack]
        for layer in sorted({t.layer for t in members if t.layer is not None}):
            in_layer = [t for t in members if t.layer == layer]
            count = sum(t.numel for t in in_layer)
            roles = {}
            for t in in_layer:
                roles[t.role] = roles.get(t.role, 0) + t.numel
            note = ", ".join(f"{role} {roles[role]:,}" for role in anatomy.ROLE_ORDER if role in roles)
            rows.append(ParamRow(f"{stack} block {layer}", count, 100 * count / total, note=note))
        loose = [t for t in members if t.layer is None]
        if loose:
            count = sum(t.numel for t in loose)
            rows.append(ParamRow(f"{stack} outside blocks", count, 100 * count / total,
                                 note=", ".join(sorted({t.role for t in loose}))))
    return tuple(rows)


def memory(total: int) -> dict[str, int]:
    return {dtype: math.ceil(total * size) for dtype, size in BYTES_PER_PARAM.items()}


def report(model: str, model_type: str, tensors: list[Tensor], by: str, counted_from: str,
           checkpoint: CheckpointIndex | None, notes: tuple[str, ...] = (), trainable: int | None = None,
           frozen: int | None = None, unstored: tuple[str, ...] = ()) -> ParamReport:
    total = sum(t.numel for t in tensors)
    tied = tuple(TiedGroup(t.name, t.tied_names, t.numel) for t in tensors if t.tied_names)
    encoder_layers = len({t.layer for t in tensors if t.stack == "encoder" and t.layer is not None})
    decoder_layers = len({t.layer for t in tensors if t.stack == "decoder" and t.layer is not None})
    has_headers = checkpoint is not None and bool(checkpoint.tensors)
    return ParamReport(
        model=model, model_type=model_type, total=total, by=by, rows=breakdown(tensors, by),
        memory_bytes=memory(total), stored_bytes=checkpoint.stored_bytes if has_headers else None,
        stored_dtype=checkpoint.main_dtype if has_headers else None, tied=tied, counted_from=counted_from,
        notes=notes, trainable=trainable, frozen=frozen, encoder_layers=encoder_layers,
        decoder_layers=decoder_layers, tensors=len(tensors), unstored=unstored)


def count(model: str, raw_config: dict, checkpoint: CheckpointIndex | None, by: str,
          meta_model_factory=None, loaded_model=None) -> ParamReport:
    """Choose the cheapest exact way to count, and build the report.

    `meta_model_factory()` builds the model on the meta device; it is only called when headers are not
    enough. `loaded_model`, when weights were loaded, gives trainable and frozen counts too.
    """
    model_type = raw_config["model_type"]
    has_headers = checkpoint is not None and checkpoint.format == "safetensors" and bool(checkpoint.tensors)
    notes: list[str] = []
    if loaded_model is not None:
        tensors = tensors_from_model(loaded_model)
        trainable = sum(p.numel() for p in loaded_model.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in loaded_model.parameters() if not p.requires_grad)
        return report(model, model_type, tensors, by, "loaded weights", checkpoint,
                      trainable=trainable, frozen=frozen)
    if has_headers and families.header_counted(model_type):
        tensors = tensors_from_headers(model_type, raw_config, checkpoint)
        return report(model, model_type, tensors, by, "safetensors headers", checkpoint)
    meta = meta_model_factory()
    tensors = tensors_from_model(meta)
    if has_headers:
        stored = set(checkpoint.tensors)
        import re

        ignored = [re.compile(p) for p in getattr(meta, "_keys_to_ignore_on_load_missing", None) or []]
        unstored = tuple(sorted(t.name for t in tensors if t.name not in stored
                                and not any(n in stored for n in t.tied_names)
                                and not any(p.search(t.name) for p in ignored)))
        if unstored:
            notes.append(f"{len(unstored)} parameter tensors are not in the checkpoint and would stay random")
        return report(model, model_type, tensors, by, "meta model, tying checked against headers",
                      checkpoint, tuple(notes), unstored=unstored)
    notes.append("no safetensors header could be read: counted from config.json alone (tie_word_embeddings "
                 f"{'false' if anatomy.head_declared_untied(raw_config) else 'true or unset'}), so tensors missing "
                 "from the checkpoint cannot be seen")
    return report(model, model_type, tensors, by, "config only", checkpoint, tuple(notes))
