"""generate's page carries every layer's and head's attention beside the --json document, one byte a weight."""

from __future__ import annotations

import base64
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from t5peek.generate import DecodeRun


def packed_attention(run: DecodeRun) -> dict:
    """Every kept attention weight as one byte, round(weight x 254) (255: not a number), deflated and in base64:
    cross-attention [step][layer][head][source], encoder self-attention [layer][head][query][key], decoder
    self-attention [step][layer][head][key] with step t's t + 1 keys. Bytes of a map are the page's bulk; one byte
    keeps a weight to within 0.002, finer than the eye tells shades apart."""
    import numpy as np

    def pack(values, shape) -> dict:
        weights = np.asarray(values, dtype=np.float32).ravel()
        finite = np.isfinite(weights)
        quantized = np.where(finite, np.rint(np.clip(np.nan_to_num(weights), 0, 1) * 254), 255).astype(np.uint8)
        return {"shape": list(shape), "data": base64.b64encode(zlib.compress(quantized.tobytes(), 9)).decode("ascii")}

    packed: dict = {"scale": 254, "not_a_number": 255, "cross": None, "encoder": None, "decoder": None}
    if run.head_attention:
        steps = len(run.head_attention)
        packed["cross"] = pack(run.head_attention, (steps, run.decoder_layers, run.heads, len(run.source_ids)))
    if run.encoder_head_attention:
        layers, heads = len(run.encoder_head_attention), len(run.encoder_head_attention[0])
        source = len(run.source_ids)
        packed["encoder"] = pack(run.encoder_head_attention, (layers, heads, source, source))
    if run.decoder_head_attention:
        steps = len(run.decoder_head_attention)
        flat = np.concatenate([np.asarray(step, dtype=np.float32).ravel() for step in run.decoder_head_attention])
        packed["decoder"] = pack(flat, (steps, run.decoder_layers, run.heads))
    return packed
