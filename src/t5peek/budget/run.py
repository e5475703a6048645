"""Run `t5peek budget` for a Session: config.json and the safetensors headers, never the weights.

`estimate_generate_peak` is the small pure entry point for a memory pre-check before loading: it needs only the
config dict and the checkpoint headers.
"""

from __future__ import annotations

from t5peek.budget import inference
from t5peek.budget.records import BudgetReport
from t5peek.budget.report import BudgetRequest, build, check_request
from t5peek.dtypes import ELEMENT_BYTES, compute_dtype
from t5peek.budget.shapes import parameter_tensors, read_shape
from t5peek.checkpoint import CheckpointIndex
from t5peek.params import Tensor


def run_budget(session, request: BudgetRequest, plan_memory: dict | None = None) -> BudgetReport:
    raw, checkpoint = session.config, session.checkpoint
    check_request(request, raw, session.name)
    shape = read_shape(raw, parameter_tensors(raw, checkpoint, lambda: session.meta_model))
    has_headers = bool(checkpoint.tensors)
    placement = session.plan_split(plan_memory) if plan_memory else None
    return build(session.name, shape, request, checkpoint.stored_bytes if has_headers else None,
                 checkpoint.main_dtype if has_headers else None, available_memory(request.device), placement)


def available_memory(device: str) -> tuple[int | None, str]:
    """Free memory where the model would run: the CPU's available RAM (MemAvailable, as loading's pre-check reads
    it), or with --device cuda the GPU's free memory when torch sees one."""
    from t5peek.placement import available_memory as free_on

    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return None, "cuda (no CUDA device visible)"
        return free_on("cuda"), f"cuda:{torch.cuda.current_device()} (free now)"
    return free_on("cpu"), "cpu (MemAvailable)"


def estimate_generate_peak(raw_config: dict, checkpoint: CheckpointIndex, source_tokens: int, new_tokens: int,
                           num_beams: int = 1, dtype: str = "float32", device: str = "cpu",
                           occlusion: bool = False) -> int:
    """Bytes a generate() of batch 1 peaks at: weights in `dtype`, encoder output, both caches, the logits and one
    layer's transient; with `occlusion`, at least the weights and one forward of --occlusion's re-scoring (a copy
    of the source per source token, the output teacher-forced). Headers only; for families counted on the meta
    model, every stored tensor counts once."""
    try:
        tensors = parameter_tensors(raw_config, checkpoint, _no_meta_model)
    except LookupError:
        tensors = [Tensor(name, info.shape, info.numel) for name, info in checkpoint.tensors.items()]
    shape = read_shape(raw_config, tensors)
    element = ELEMENT_BYTES[compute_dtype(dtype, checkpoint.main_dtype, device)]
    weights = shape.parameters * element
    peak = inference.budget(shape, weights, 1, source_tokens, new_tokens, num_beams, element).peak
    if occlusion:
        _rows, forward = inference.rescoring_batch(shape, source_tokens + 1, source_tokens, new_tokens, element)
        peak = max(peak, weights + forward)
    return peak


def _no_meta_model():
    raise LookupError("a pre-check builds no model")


__all__ = ["BudgetRequest", "run_budget", "estimate_generate_peak", "available_memory"]
