"""`t5peek info`: a one-screen summary of a model from its config.json and checkpoint headers (no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from t5peek import anatomy, families
from t5peek.checkpoint import CheckpointIndex
from t5peek.errors import T5PeekError
from t5peek.loading import ResolvedModel
from t5peek.loading import untied_names
from t5peek.params import ParamReport

# params.count's `counted_from` → how info says it
_COUNTED = {
    "safetensors headers": "exact, from the safetensors headers",
    "meta model, tying checked against headers": "exact, from the model built on the meta device, tying checked "
                                                 "against the safetensors headers",
    "config only": "from config.json alone (no safetensors header could be read)",
}


@dataclass(frozen=True)
class ModelInfo:
    model: str
    source: str  # bundled demo, local folder, Hub cache, Hub
    folder: str
    commit: str | None
    revision: str | None
    model_type: str
    family: str
    architecture: str | None
    encoder_layers: int | None
    decoder_layers: int | None
    d_model: int | None
    heads: int | None
    d_ff: int | None
    activation: str | None
    vocab_size: int | None
    max_positions: int | None  # rows of the encoder's absolute position table; null for relative positions
    decoder_max_positions: int | None  # rows of the decoder's absolute position table
    position_kind: str | None  # relative, learned or sinusoidal; null for a family t5peek does not know
    relative_buckets: int | None  # relative positions: buckets of distance (the last for all from the max distance)
    relative_max_distance: int | None
    head: str  # tied, untied, unknown
    head_note: str
    checkpoint_format: str  # safetensors, pickle, none
    checkpoint_files: int
    stored_dtype: str | None
    stored_bytes: int | None
    total: int | None
    total_note: str
    task_prefixes: dict[str, str] = field(default_factory=dict)
    placement: object = None  # placement.Placement when --max-memory was given


def summarize(resolved: ResolvedModel, raw: dict, checkpoint: CheckpointIndex, total: int | None,
              total_note: str) -> ModelInfo:
    model_type = raw["model_type"]
    architectures = raw.get("architectures") or []
    encoder_raw, decoder_raw = raw, raw
    if isinstance(raw.get("encoder"), dict) and isinstance(raw.get("decoder"), dict):
        encoder_raw, decoder_raw = raw["encoder"], raw["decoder"]  # EncoderDecoderModel (bert2bert, ...)
    decoder_layers = anatomy.config_value(decoder_raw, "decoder_layers")
    if families.is_t5_style(model_type):
        decoder_layers = raw.get("num_decoder_layers") or raw.get("num_layers")
    head, head_note = _head(model_type, raw, checkpoint)
    positions = _positions(model_type, encoder_raw, decoder_raw)
    return ModelInfo(
        model=resolved.name, source=resolved.source, folder=str(resolved.folder), commit=resolved.commit,
        revision=resolved.revision, model_type=model_type, family=families.style(model_type) or families.OTHER_STYLE,
        architecture=architectures[0] if architectures else None,
        encoder_layers=anatomy.config_value(encoder_raw, "encoder_layers"), decoder_layers=decoder_layers,
        d_model=anatomy.config_value(encoder_raw, "d_model"), heads=anatomy.config_value(encoder_raw, "heads"),
        d_ff=anatomy.config_value(encoder_raw, "d_ff"), activation=anatomy.config_value(encoder_raw, "activation"),
        vocab_size=anatomy.config_value(decoder_raw, "vocab_size"),
        **positions, head=head, head_note=head_note, checkpoint_format=checkpoint.format,
        checkpoint_files=len(checkpoint.files), stored_dtype=checkpoint.main_dtype or raw.get("torch_dtype")
        or raw.get("dtype"), stored_bytes=checkpoint.stored_bytes if checkpoint.tensors else None,
        total=total, total_note=total_note, task_prefixes=task_prefixes(raw),
    )


def total_of(count: Callable[[], ParamReport]) -> tuple[int | None, str]:
    """The total `t5peek params` reports (`count()` is its counting), and how it was counted."""
    try:
        report = count()
    except T5PeekError as exc:
        return None, f"cannot be counted: {exc.message}"
    return report.total, "; ".join((_COUNTED.get(report.counted_from, report.counted_from), *report.notes))


def _positions(model_type: str, encoder_raw: dict, decoder_raw: dict) -> dict:
    kind = families.position_kind(model_type)
    if kind == families.RELATIVE:
        buckets, distance = anatomy.relative_buckets(encoder_raw)
        return dict(max_positions=None, decoder_max_positions=None, position_kind=kind, relative_buckets=buckets,
                    relative_max_distance=distance)
    return dict(max_positions=anatomy.config_value(encoder_raw, "max_positions"),
                decoder_max_positions=anatomy.config_value(decoder_raw, "decoder_max_positions"),
                position_kind=kind, relative_buckets=None, relative_max_distance=None)


def task_prefixes(raw: dict) -> dict[str, str]:
    """task name → prompt prefix, from task_specific_params (e.g. 'translate English to German: ')."""
    params = raw.get("task_specific_params") or {}
    if not isinstance(params, dict):
        return {}
    return {task: str(p["prefix"]) for task, p in params.items() if isinstance(p, dict) and p.get("prefix")}


def _head(model_type: str, raw: dict, checkpoint: CheckpointIndex) -> tuple[str, str]:
    names = checkpoint.tensors
    head_name = "lm_head.weight"
    if not names:
        if anatomy.head_declared_untied(raw):
            return "untied", "config.json says tie_word_embeddings=false (no checkpoint header to confirm)"
        return "tied", "from config.json alone (no checkpoint header to confirm)"
    if head_name not in names:
        return "tied", "no lm_head.weight stored: the output head reuses the input embedding"

    tied = anatomy.tied_weights(model_type, raw) or {head_name: "model.shared.weight" if "model.shared.weight"
                                                     in names else "shared.weight"}
    if head_name in untied_names(raw, checkpoint, {head_name: tied.get(head_name, "shared.weight")}):
        return "untied", "lm_head.weight is stored with its own values"
    return "tied", "lm_head.weight is stored but equals the input embedding"
