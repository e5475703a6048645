"""Memory of one training step besides the activations: gradients, optimizer state, float32 master weights.

Mixed precision (a compute dtype narrower than float32) keeps the weights and their gradients in the compute dtype,
a float32 master copy of the weights, and the optimizer state in float32, as DeepSpeed and Megatron do. In float32
there is no master copy. Optimizer state is what torch and transformers allocate on the first step:

- AdamW (torch.optim.AdamW): two moments of every parameter (exp_avg, exp_avg_sq) and a float32 step counter per
  parameter tensor;
- Adafactor (transformers.optimization.Adafactor, no first moment by default): a row and a column statistic of every
  matrix, a full second moment of every vector, and a float32 RMS per parameter tensor;
- SGD without momentum: nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from t5peek.budget.shapes import ModelShape
from t5peek.kinds import Optimizer

FLOAT32 = 4



@dataclass(frozen=True)
class TrainingState:
    gradients: int
    optimizer: int
    master_weights: int


def optimizer_bytes(shape: ModelShape, optimizer: Optimizer) -> int:
    if optimizer == Optimizer.adamw:
        return 2 * shape.trainable * FLOAT32 + shape.tensors * FLOAT32
    if optimizer == Optimizer.adafactor:
        return shape.factored_elements * FLOAT32 + shape.tensors * FLOAT32
    return 0


def state(shape: ModelShape, optimizer: Optimizer, element: int) -> TrainingState:
    master = shape.trainable * FLOAT32 if element != FLOAT32 else 0
    return TrainingState(shape.trainable * element, optimizer_bytes(shape, Optimizer(optimizer)), master)
