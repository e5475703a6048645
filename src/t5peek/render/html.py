"""The HTML report of a decoding run: one self-contained page, no network requests.

The page carries its data as JSON inside a <script type="application/json"> block and draws itself with a
little inline JavaScript (render/html_page.py): the cross-attention map (generated tokens x source tokens), the
encoder's self-attention (source x source) and the decoder's causal triangle, each for a chosen layer and head
or the mean of the heads, and the top-k candidates of every step. Every layer's and head's weights travel as one
byte each, deflated and in base64 (the browser inflates them with DecompressionStream), which keeps a report of
256 source x 64 generated tokens of a flan-t5-small-sized model under 2 MB. A Content-Security-Policy forbids
every fetch, so the page cannot reach the network even by accident. When drawn, the script writes
`data-rendered-cells` (and `data-encoder-cells`, `data-decoder-cells`) on <body> (the browser test reads them).
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import zlib
from pathlib import Path

from t5peek.generate import DecodeRun
from t5peek.jsonable import to_jsonable
from t5peek.render.html_page import CSS, JS, PAGE


def report_data(run: DecodeRun) -> dict:
    """What the page needs: the run as `generate --json` writes it (rounded to four decimals), without the
    self-attention maps, and every layer's and head's attention packed by `packed_attention`."""
    data = to_jsonable(run.json_fields(head_attention=False), digits=6)
    data.pop("encoder_self_attention", None)
    for step in data["steps"]:
        step.pop("self_attention", None)
    data["attention"] = packed_attention(run)
    return data


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


def render_html(run: DecodeRun) -> str:
    data = json.dumps(report_data(run), ensure_ascii=False, allow_nan=False)
    # inside <script>, "</script>" or "<!--" in a token would end the block: escape the characters that could
    data = data.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    title = html.escape(f"t5peek generate · {run.model}" if run.model else "t5peek generate")
    parts = {"TITLE": title, "DATA": data, "CSS": CSS, "JS": JS}
    # one pass, so that a prompt or token containing "{{JS}}" stays text
    return re.sub(r"\{\{(TITLE|DATA|CSS|JS)\}\}", lambda m: parts[m.group(1)], PAGE)


def write_html(run: DecodeRun, path: str | os.PathLike) -> Path:
    """Write the page by the rules of `t5peek.outfile`: whole or not at all, devices and pipes left in place."""
    from t5peek.outfile import check_target, write_target

    target = check_target(path, "--html")
    write_target(target, render_html(run).encode("utf-8"))
    return target.path
