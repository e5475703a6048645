"""`t5peek trace`: what runs inside an encoder-decoder, module by module, in the order it runs.

Forward pre-hooks and hooks are put on the modules chosen by `--depth`; each call becomes one TraceRecord
(path, class, input and output shapes, dtype, device, time, attention weight shape, optional statistics).
Hooks record shapes only: no tensor is copied or kept, and nothing synchronises unless stats are asked for.

Two views of the decoder, the two that learners mix up:
  teacher forcing (training)   the whole target goes in at once, shifted right by one, under a causal mask;
                               one forward pass scores every position against its label.
  generation (inference)       the encoder runs once; the decoder then runs once per new token (greedy here),
                               with a KV cache: self-attention keys/values grow by one position per step,
                               cross-attention keys/values are computed from the encoder output at step 0
                               and reused afterwards.

Depth counts modules from the model root the way `t5peek arch --depth` does: the root is 0, each module on
the path below it adds one, and ModuleList/ModuleDict containers add nothing (T5: encoder 1,
encoder.block.0 2, ....layer.0 3, ....layer.0.SelfAttention 4, ....SelfAttention.q 5; BART: model 1,
model.encoder 2, model.encoder.layers.0 3, ....self_attn 4, ....self_attn.q_proj 5).
Without a depth, the block view: the stacks, embeddings, final norms and head, each block, and beneath
each block its attention, feed-forward and norm sublayers.

The package, one job a module: records (what a trace returns), explain (the notes for learners), plan (which
modules to hook), probes (what a hook reads off a call), tracer (the hooks), views (trace_forward, the two views),
compare (`--compare`: teacher forcing against cached steps on the same tokens, free-running greedy, the causal mask).
"""

from __future__ import annotations

from t5peek.trace.compare import CausalMask, Comparison, ForcedPosition, FreeRunPosition, compare_runs
from t5peek.trace.explain import EXPLANATIONS, VIEW_NOTES, explanation_key
from t5peek.trace.plan import BLOCK, MODEL, STACK, HookPlan, block_path, hook_plan, module_levels, select_modules
from t5peek.trace.probes import attention_weights, routing_of, tensor_stats
from t5peek.trace.records import (AttentionShape, CacheLayerShape, CacheShape, DecodeStep, NonFinite, Phase, Routing,
                                  TensorStats, TraceRecord, TraceReport)
from t5peek.trace.tracer import Tracer
from t5peek.trace.views import trace_forward

__all__ = [
    "BLOCK", "MODEL", "STACK", "EXPLANATIONS", "VIEW_NOTES", "explanation_key",
    "HookPlan", "block_path", "hook_plan", "module_levels", "select_modules",
    "attention_weights", "routing_of", "tensor_stats",
    "AttentionShape", "CacheLayerShape", "CacheShape", "DecodeStep", "NonFinite", "Phase", "Routing", "TensorStats",
    "TraceRecord", "TraceReport",
    "Tracer", "trace_forward",
    "CausalMask", "Comparison", "ForcedPosition", "FreeRunPosition", "compare_runs",
]
