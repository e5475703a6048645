"""The logit lens of a decoder, and direct logit attribution: how the chosen token emerges through the depths.

At every step (greedy generation, or each position of a teacher-forced target) the residual stream is kept after
the embedding and after every decoder sublayer (self-attention, cross-attention, feed-forward), by forward hooks in
the model's own passes, and read through the model's own head. The chosen token's final logit is split exactly
over the depths (direct logit attribution through the final norm, its scale frozen).

Modules: `stream` (where each family's stream can be read, and its head), `project` (the two readings, batched
over depths), `run` (the request and the run for one Session: import it from `t5peek.lens.run`, which loads
the session), `records` (what a run returns).
"""

from __future__ import annotations

from t5peek.lens.records import DepthReading, LensCandidate, LensRun, LensStep

__all__ = ["DepthReading", "LensCandidate", "LensRun", "LensStep"]
