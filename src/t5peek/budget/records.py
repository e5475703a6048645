"""What `t5peek budget` returns: plain rows of bytes and FLOPs, grouped, each tied to the modules it comes from."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from t5peek.kinds import Mode
from t5peek.placement import Placement



class Group(str, enum.Enum):
    weights = "Weights"
    inference = "Inference"
    fine_tuning = "Fine-tuning"
    flops = "FLOPs"
    fit = "Fit"


@dataclass(frozen=True)
class BudgetRow:
    group: Group
    key: str  # stable name for scripts: cross_attention_cache, optimizer_state, ...
    what: str
    formula: str  # how the number is made, in the model's sizes
    modules: str  # where in the model it comes from
    bytes: int | None = None
    flops: int | None = None
    total: bool = False  # a sum of the rows above it


@dataclass(frozen=True)
class BudgetReport:
    model: str
    model_type: str
    mode: Mode
    dtype: str  # the compute dtype the numbers are for
    stored_dtype: str | None
    device: str
    batch: int
    source: int  # source tokens
    target: int  # target tokens (generate: new tokens)
    num_beams: int
    optimizer: str
    gradient_checkpointing: bool
    parameters: int  # as `t5peek params` counts them, tied weights once
    active_parameters: int  # per token: a mixture of experts runs only the experts its router picks
    rows: tuple[BudgetRow, ...]
    inference_peak_bytes: int
    training_peak_bytes: int
    needed_bytes: int  # the peak of the chosen mode
    available_bytes: int | None  # free memory where the model would run, None when it cannot be told
    available_on: str  # what available_bytes measured
    fits: bool | None
    measured: bool  # every formula checked against transformers for this family in t5peek's tests
    notes: tuple[str, ...] = ()
    placement: Placement | None = None  # with --max-memory: how accelerate would place the weights

    def row(self, key: str) -> BudgetRow:
        return next(row for row in self.rows if row.key == key)
