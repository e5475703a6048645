"""The HTML report of a decoding run (`generate --html`): one self-contained page, no network requests.

The page (render/pages/generate.py in the shell of render/pages/shell.py) carries the run's `generate --json`
document and draws itself with a little inline JavaScript: the cross-attention map (generated tokens x source
tokens), the encoder's self-attention (source x source) and the decoder's causal triangle, each for a chosen layer
and head or the mean of the heads, occlusion when it was run, and the top-k candidates of every step. Beside the
document, every layer's and head's weights travel as one byte each, deflated and in base64 (the browser inflates
them with DecompressionStream), which keeps a report of 256 source x 64 generated tokens of a flan-t5-small-sized
model under 2 MB. When drawn, the script writes `data-rendered-cells` (and `data-encoder-cells`,
`data-decoder-cells`) on <body> (the browser test reads them).
"""

from __future__ import annotations

import os
from pathlib import Path

from t5peek.generate import DecodeRun
from t5peek.jsonable import document
from t5peek.render.pages.attention import packed_attention


def report_data(run: DecodeRun) -> dict:
    """What the page carries: the run's `generate --json` document, and every layer's and head's attention packed
    by `packed_attention` under "attention"."""
    return {**document("generate", run), "attention": packed_attention(run)}


def render_html(run: DecodeRun) -> str:
    from t5peek.render.pages import page_for

    return page_for("generate", run)


__all__ = ["packed_attention", "render_html", "report_data", "write_html"]


def write_html(run: DecodeRun, path: str | os.PathLike) -> Path:
    """Write the page by the rules of `t5peek.outfile`: whole or not at all, devices and pipes left in place."""
    from t5peek.outfile import check_target, write_target

    target = check_target(path, "--html")
    write_target(target, render_html(run).encode("utf-8"))
    return target.path
