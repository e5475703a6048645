"""DecoderLens (Langedijk et al. 2023): the decoder reads the output of an earlier encoder layer instead of the last.

The encoder runs its own forward, and what its last block returns is replaced by what block L returned, so
everything it does after its blocks happens as usual: T5's final_layer_norm, the final LayerNorm of the pre-norm
BART family (mBART, Pegasus...), LED's and PEGASUS-X's removal of the padding they add; post-norm encoders (BART,
Marian) end with their last block. The blocks above L still run (their outputs are then unused): the module tree is
never changed, so models that change their own modules as they run (BigBird's attention type) stay whole.

torch is imported inside functions only.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from t5peek import families
from t5peek.errors import UsageError
from t5peek.probe.hooks import OUTPUT, Hook, hooked


def _blocks_attribute(model_type: str) -> str:
    return "block" if families.is_t5_style(model_type) else "layers"


def final_norm_name(model_type: str) -> str | None:
    """The encoder's norm after its last block, where the family has one."""
    return "final_layer_norm" if families.is_t5_style(model_type) else families.family(model_type).final_norm


def check_layer(layer: int | None, layers: int, name: str) -> None:
    if layer is not None and not 0 <= layer < layers:
        raise UsageError(f"--encoder-layer {layer} is out of range: the encoder of '{name}' has layers 0 to "
                         f"{layers - 1}.")


def describe(model_type: str, layer: int | None, layers: int) -> str:
    """What the decoder reads, in words."""
    norm = final_norm_name(model_type)
    then = f", through the encoder's {norm}" if norm else " (the encoder has no norm after its blocks)"
    if layer is None or layer == layers - 1:
        return f"the encoder's output: its last layer ({layers - 1}){then}"
    return f"the output of encoder layer {layer} of 0 to {layers - 1}{then} (DecoderLens)"


@contextlib.contextmanager
def encoder_upto(model, model_type: str, layer: int | None) -> Iterator[None]:
    """Within the block, the model's encoder ends with the output of block `layer` (the last when None)."""
    blocks = getattr(model.get_encoder(), _blocks_attribute(model_type))
    if layer is None or layer == len(blocks) - 1:
        yield
        return
    kept: dict = {}

    def keep(value, _call) -> None:
        kept["output"] = value

    def put(_value, _call):
        return kept.pop("output")

    with hooked(model, [Hook(blocks[layer], OUTPUT, keep, "DecoderLens"),
                        Hook(blocks[-1], OUTPUT, put, "DecoderLens")]):
        yield
