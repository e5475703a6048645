"""The benchmark suite, run small (`bench/run.py --smoke`): tiny models, one repeat, into a temporary folder.

Not a timed test: it checks that every benchmark still runs against the current t5peek cores and that the
table has all its rows, so the benchmark code cannot rot. The run is a subprocess whose every measured
process is offline (HF_HUB_OFFLINE=1) and reads only checkpoints it builds itself.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FIGURES = (
    "start-up:",
    "params: time, `t5peek params`",
    "params: time, absolute",
    "params: peak RSS",
    "arch: time, `t5peek arch`",
    "arch: time, absolute",
    "arch: peak RSS",
    "trace: default block view",
    "trace: block view vs `torchinfo.summary`",
    "generate: greedy,",
    "generate: beam search, 4 beams,",
    "budget: time, `t5peek budget`",
    "budget: peak RSS",
    "budget --mode train: time",
    "budget --mode train: peak RSS",
    "attend: `Model.attend(prompt, step=",
    "lens: `Model.lens(prompt, max_new_tokens=",
    "generate --occlusion: `occlude(...)`",
    "patch: `Model.patch(prompt, noise=(1, 4)",
    "knockout --sweep cross:",
    "html: size of the `generate --html FILE --self` report",
    "load: peak RSS of `load_model`",
)
SCALINGS = ("`params` vs model size", "`trace` vs input length", "`generate` (greedy) vs new tokens")


def table_rows(markdown: str) -> list[list[str]]:
    rows = []
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| figure") and not line.startswith("| scaling"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


@pytest.mark.installed
def test_bench_smoke(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(tmp_path)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    markdown = (tmp_path / "benchmarks.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Benchmarks")
    assert "| figure | t5peek | anchor | ratio | target | met |" in markdown
    rows = table_rows(markdown)
    figures = [row[0] for row in rows]
    for figure in FIGURES + SCALINGS:
        assert any(name.startswith(figure) for name in figures), f"no row for {figure!r} in:\n{markdown}"
    for row in rows:
        assert len(row) in (5, 6), row
        assert row[-1] in ("yes", "no", "—"), f"not measured: {row}"
    assert "Python" in markdown and "torch" in markdown and "bench/run.py" in markdown
    # the same table went to the terminal
    assert "start-up" in result.stdout and "generate" in result.stdout
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert (tmp_path / "benchmarks-scaling.png").is_file() == has_matplotlib
