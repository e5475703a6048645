#!/usr/bin/env python3
"""Run the README's example commands and write their real output into it.

    python scripts/readme_examples.py            rewrite every example block in README.md
    python scripts/readme_examples.py --check    exit 1, with a diff, when a block differs from a fresh run

An example block is a fenced block right after a `<!-- example -->` line. Each `$ t5peek ...` line in it
(continued with a trailing backslash) is run and followed by its standard output. `<!-- example 1-24 | 30- -->`
keeps only those lines of each command's output, in order, one part per command (`~N` counts from the end); a gap
is shown as `…`. `--check` ignores float32 noise written as 1.2e-06 and the free memory budget finds.

The runs are offline and fixed: 80 columns, no colour, UTF-8. `google/flan-t5-base` is a checkpoint with its
tensor names and shapes over sparse data (bench/sparse_checkpoint.py) in a throw-away Hugging Face cache, and
t5peek runs from a copy under a fixed path shown as `…/site-packages`, so the output is the same on every machine.
tests/test_docs.py runs `--check`.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = re.compile(r"^<!-- example(?P<keep>[^>]*?)\s*-->$")
GAP = "…"
NOISE = re.compile(r"\d\.\de[-+]\d+")
FREE = re.compile(r"(?<!needs )(?<![\d.])\d+(?:\.\d+)? (?:B|KiB|MiB|GiB|TiB)")
STAGE = Path(tempfile.gettempdir()) / "t5peek-readme"  # a fixed length, so lines wrap the same everywhere
SHOWN_AS = "…/"
ENV = {"COLUMNS": "80", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8", "LC_ALL": "C.UTF-8",
       "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
SNAPSHOT = "0" * 40


@dataclass
class Block:
    start: int  # index of the first line inside the fence
    end: int  # index of the closing fence
    keep: list[str]  # one line selection per command ("" keeps everything)


def find_blocks(lines: list[str]) -> list[Block]:
    blocks = []
    for index, line in enumerate(lines):
        match = MARKER.match(line.strip())
        if not match:
            continue
        if index + 1 >= len(lines) or not lines[index + 1].startswith("```"):
            raise SystemExit(f"README.md:{index + 1}: an example marker must come right before a fenced block")
        end = next(i for i in range(index + 2, len(lines)) if lines[i].startswith("```"))
        keep = [part.strip() for part in match.group("keep").split("|")]
        blocks.append(Block(index + 2, end, keep))
    return blocks


def commands_in(block_lines: list[str]) -> list[str]:
    """The `$ ...` commands of a block, each with its continuation lines."""
    commands, current = [], None
    for line in block_lines:
        if current is not None:
            current += "\n" + line
        elif line.startswith("$ "):
            current = line
        if current is not None and not current.endswith("\\"):
            commands.append(current)
            current = None
    return commands


def select(output: list[str], keep: str) -> list[str]:
    """The lines of `output` named by `keep`: "1-19, 30-" or "~25-~10", 1-based and inclusive, `~N` the N-th line
    from the end. A gap becomes `…`."""
    if not keep:
        return output

    def line_number(text: str, default: int) -> int:
        text = text.strip()
        if not text:
            return default
        return len(output) + 1 - int(text[1:]) if text.startswith("~") else int(text)

    shown, last = [], 0
    for part in keep.split(","):
        low, dash, high = part.partition("-")
        first = line_number(low, 1)
        final = line_number(high, len(output)) if dash else first
        if first > last + 1:
            shown.append(GAP)
        shown += output[first - 1:final]
        last = final
    if last < len(output):
        shown.append(GAP)
    return shown


def comparable(lines: list[str]) -> list[str]:
    """Float32 noise (differences such as 5.7e-06) varies with the CPU and the BLAS, and budget's free memory with
    the moment; the rest must match."""
    return [FREE.sub("<FREE>", NOISE.sub("#e#", line)) if "available" in line else NOISE.sub("#e#", line)
            for line in lines]


def stage() -> dict[str, str]:
    """A copy of t5peek at a fixed path, and a Hugging Face cache holding google/flan-t5-base's shapes."""
    import t5peek

    shutil.rmtree(STAGE, ignore_errors=True)
    shutil.copytree(Path(t5peek.__file__).parent, STAGE / "site-packages" / "t5peek",
                    ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(ROOT / "bench"))
    from sparse_checkpoint import FLAN_T5_BASE, write_sparse_checkpoint

    repo = STAGE / "hf" / "hub" / "models--google--flan-t5-base"
    write_sparse_checkpoint(repo / "snapshots" / SNAPSHOT, FLAN_T5_BASE)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SNAPSHOT)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("T5PEEK_", "HF_", "HUGGINGFACE_")) and key not in ("COLUMNS", "LINES")}
    return {**env, **ENV, "HF_HOME": str(STAGE / "hf"), "PYTHONPATH": str(STAGE / "site-packages")}


def run(command: str, env: dict[str, str]) -> list[str]:
    words = shlex.split(command[2:].replace("\\\n", " "))
    extra = {}
    while words and re.match(r"^[A-Z_]+=", words[0]):
        key, _, value = words.pop(0).partition("=")
        extra[key] = value
    if not words or words[0] != "t5peek":
        raise SystemExit(f"not a t5peek command: {command}")
    result = subprocess.run([sys.executable, "-m", "t5peek", *words[1:]], env={**env, **extra},
                            capture_output=True, text=True, encoding="utf-8", cwd=STAGE)
    if result.returncode != 0:
        raise SystemExit(f"{command}\nexited {result.returncode}:\n{result.stderr}")
    text = result.stdout.replace(str(STAGE) + "/", SHOWN_AS)
    return [line.rstrip() for line in text.rstrip("\n").split("\n")]


def regenerate(lines: list[str]) -> list[str]:
    env = stage()
    try:
        blocks = find_blocks(lines)
        planned = []
        for block in blocks:
            commands = commands_in(lines[block.start:block.end])
            if len(block.keep) not in (1, len(commands)) or (len(block.keep) > 1 and not commands):
                raise SystemExit(f"README.md:{block.start}: {len(block.keep)} selections for {len(commands)} commands")
            planned.append((commands, block.keep * len(commands) if len(block.keep) == 1 else block.keep))
        every = [command for commands, _ in planned for command in commands]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # each run is a process of its own
            outputs = dict(zip(every, pool.map(lambda command: run(command, env), every)))
        fresh = list(lines)
        for block, (commands, keeps) in reversed(list(zip(blocks, planned))):
            new = []
            for command, keep in zip(commands, keeps):
                if new:
                    new.append("")
                new += command.split("\n") + select(outputs[command], keep)
            fresh[block.start:block.end] = new
        return fresh
    finally:
        shutil.rmtree(STAGE, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    lines = text.split("\n")
    fresh = regenerate(lines)
    if args.check:
        diff = list(difflib.unified_diff(comparable(lines), comparable(fresh), "README.md", "fresh runs", lineterm=""))
        print("\n".join(diff) if diff else "README examples match fresh runs")
        return 1 if diff else 0
    README.write_text("\n".join(fresh), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
