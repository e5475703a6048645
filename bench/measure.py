"""Timing and memory measurement for the benchmarks: medians of repeated, interleaved runs.

Nothing here imports torch: the orchestrator (bench/run.py) stays a small process, so that the processes it
starts are measured on their own.

Peak RSS of a process. On Linux a child's `ru_maxrss` starts from its parent's high-water mark when it execs
(the kernel keeps the larger of the two), so a big parent would inflate every child's figure. Processes are
therefore started under `/usr/bin/time -f %M` (a tiny parent whose child is the measured command); without
`/usr/bin/time` the figure falls back to `os.wait4`'s rusage of our own child, which is exact only while this
process is small (it is: no torch here).
"""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
MB = 1_000_000  # decimal units, so that targets like 200 MB are not loosened by MiB
GB = 1_000_000_000


@dataclass
class Stat:
    """Repeated measurements of one quantity (seconds or bytes)."""

    samples: list[float] = field(default_factory=list)
    unit: str = "s"  # "s" or "B"

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def __bool__(self) -> bool:
        return bool(self.samples)

    def to_json(self) -> dict:
        return {"unit": self.unit, "median": self.median, "min": self.min, "max": self.max, "samples": self.samples}

    @classmethod
    def from_json(cls, data: dict) -> "Stat":
        return cls(list(data["samples"]), data.get("unit", "s"))


def fmt_value(value: float, unit: str) -> str:
    if unit == "B":
        if value >= GB:
            return f"{value / GB:.2f} GB"
        if value >= MB:
            return f"{value / MB:.0f} MB"
        return f"{value / 1000:.0f} KB"
    if value >= 10:
        return f"{value:.1f} s"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 0.1:
        return f"{value:.3f} s"
    return f"{value * 1000:.1f} ms"


def fmt_stat(stat: Stat) -> str:
    """`median (min–max, n=N)`."""
    if not stat:
        return "—"
    if len(stat.samples) == 1:
        return f"{fmt_value(stat.median, stat.unit)} (n=1)"
    low, high = fmt_value(stat.min, stat.unit), fmt_value(stat.max, stat.unit)
    return f"{fmt_value(stat.median, stat.unit)} ({low}–{high}, n={len(stat.samples)})"


class ProcessFailed(RuntimeError):
    pass


def bench_env(extra: dict | None = None) -> dict:
    """The environment for every measured process: offline, quiet, no colour, fixed width."""
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false",
                "DISABLE_SAFETENSORS_CONVERSION": "1", "NO_COLOR": "1", "COLUMNS": "120"})
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    # bytecode caching on, as after `pip install`: a warm-up run writes the .pyc files the measured runs read
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if extra:
        env.update(extra)
    return env


def run_process(cmd: Sequence[str], env: dict | None = None, timeout: float = 600) -> tuple[float, int, str]:
    """Run `cmd` once; return (wall seconds, peak RSS in bytes, the last 4 KB of stdout). Raises ProcessFailed."""
    env = env or bench_env()
    with tempfile.TemporaryDirectory(prefix="t5peek-bench-") as tmp:
        rss_file = Path(tmp) / "rss"
        full = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *cmd] if GNU_TIME else list(cmd)
        stderr_file, stdout_file = Path(tmp) / "stderr", Path(tmp) / "stdout"
        with open(stderr_file, "wb") as err, open(stdout_file, "wb") as out:
            start = time.perf_counter()
            proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
            timer = threading.Timer(timeout, proc.kill)
            timer.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)  # blocking: no polling delay in the wall time
            finally:
                timer.cancel()
            wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode == -9 and wall >= timeout:
            raise ProcessFailed(f"timed out after {timeout:.0f} s: {' '.join(map(str, cmd))}")
        if proc.returncode != 0:
            tail = stderr_file.read_text(errors="replace").strip().splitlines()[-3:]
            raise ProcessFailed(f"exit {proc.returncode}: {' '.join(map(str, cmd))}: {' | '.join(tail)}")
        if GNU_TIME:
            lines = [line for line in rss_file.read_text().split() if line.strip().isdigit()]
            peak = int(lines[-1]) * 1024
        else:
            peak = usage.ru_maxrss * 1024
        with open(stdout_file, "rb") as handle:
            handle.seek(max(0, stdout_file.stat().st_size - 4096))
            stdout = handle.read().decode(errors="replace")
    return wall, peak, stdout


@dataclass
class ProcessResult:
    wall: Stat
    rss: Stat
    stdout: str = ""  # of the last run


def measure_processes(commands: dict[str, Sequence[str]], repeats: int | dict[str, int],
                      warmup: int | dict[str, int] = 1, env: dict | None = None,
                      progress: Callable[[str], None] = lambda m: None) -> dict[str, ProcessResult]:
    """Each command `repeats` times in fresh processes, interleaved (A B C C B A ...), after `warmup` rounds
    that are not counted (they fill the page cache and write bytecode). `repeats` and `warmup` may differ per
    command (a dict); a command with fewer rounds sits out the first ones, so that the counted runs of all
    commands share the last rounds and their conditions."""
    repeat_of = repeats if isinstance(repeats, dict) else dict.fromkeys(commands, repeats)
    warmup_of = warmup if isinstance(warmup, dict) else dict.fromkeys(commands, warmup)
    rounds = max(warmup_of[name] + repeat_of[name] for name in commands)
    results = {name: ProcessResult(Stat(unit="s"), Stat(unit="B")) for name in commands}
    for round_index in range(rounds):
        order = list(commands.items())
        if round_index % 2:  # A B C, C B A, ...: a drift in the machine's load hits every command alike
            order.reverse()
        for name, cmd in order:
            first = rounds - warmup_of[name] - repeat_of[name]  # this command's first round
            if round_index < first:
                continue
            wall, peak, stdout = run_process(cmd, env)
            results[name].stdout = stdout
            if round_index >= first + warmup_of[name]:
                results[name].wall.samples.append(wall)
                results[name].rss.samples.append(peak)
        progress(f"round {round_index + 1}/{rounds}")
    return results


def time_calls(calls: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, Stat]:
    """In-process timing of several callables, interleaved (the order reversed every other round), after
    warm-up calls; gc runs before each call."""
    results = {name: Stat(unit="s") for name in calls}
    for round_index in range(warmup + repeats):
        order = list(calls.items())
        if round_index % 2:  # A B C, C B A, ...: a drift in the machine's load hits every variant alike
            order.reverse()
        for name, call in order:
            gc.collect()
            start = time.perf_counter()
            call()
            elapsed = time.perf_counter() - start
            if round_index >= warmup:
                results[name].samples.append(elapsed)
    return results


def t5peek_executable() -> list[str]:
    """The `t5peek` console script of this interpreter's environment."""
    here = Path(sys.executable).parent / "t5peek"
    if here.exists():
        return [str(here)]
    found = shutil.which("t5peek")
    if found:
        return [found]
    return [sys.executable, "-m", "t5peek"]
