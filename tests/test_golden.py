"""Golden files: the human output of every command on the bundled demo model, byte for byte (issue #13).

Each case runs `t5peek` (the script's own `main()`, in-process) with NO_COLOR=1 and COLUMNS=80 or 120, once with
Unicode glyphs (T5PEEK_ASCII=0, PYTHONIOENCODING=utf-8) and once with T5PEEK_ASCII=1, and compares stdout with
tests/golden/<case>.<width>.<unicode|ascii>.txt. The model runs once per case: the records `t5peek.Model` returns
are kept and drawn again at the other three settings (generate's streamed plan and steps replayed), so the four
files show one computation. Run `pytest tests/test_golden.py --update-goldens` to (re)write the
files after an intended change of the output.

Before the comparison (and before writing a golden file) what varies between runs is masked; nothing else is:

* trace only, wall times of module rows: a row's last field `<spaces><digits>.<2 digits>` at the end of the line (the
  right-aligned `ms` column, fixed at 8 cells, so its value never moves the other columns) becomes `#.##`,
  right-aligned to the same end column: the line keeps its width and shape.
* trace only, phase headers: `<title> · 12.3 ms ────` (`-` for `·` and `─` in ASCII) becomes `<title> · #.# ms ────`,
  with the rule redrawn to the line's original width.
* trace --compare and attend, float rounding differences (`7.6e-06`) become `#.#e-##`: they depend on the CPU's
  kernels.
* budget only, the memory free on this machine (Fit rows and the `fit:` line) becomes `<FREE>`.
* info only, the demo's absolute folder: the `from` field (its first line and any continuation lines, however the
  path wrapped) becomes the one line `  from            bundled demo  <DEMO>`, after checking that the field held
  exactly `bundled demo` and the demo's folder (whitespace aside).

Width, trailing-space and pure-ASCII checks look at the raw, unmasked output.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest
from rich.cells import cell_len

from helpers import run_t5peek

GOLDEN = Path(__file__).parent / "golden"
DE = "translate English to German: the house is small"
ES = "translate English to Spanish: the red house is small"

CASES = {
    "info": ("info", "demo"),
    "arch": ("arch", "demo", "--depth", "3"),
    "params": ("params", "demo"),
    "params-layer": ("params", "demo", "--by", "layer"),
    "params-type": ("params", "demo", "--by", "type"),
    "trace": ("trace", "-m", "demo", DE),
    "trace-target": ("trace", "-m", "demo", DE, "--target", "das Haus ist klein"),
    "generate-greedy": ("generate", "-m", "demo", ES),
    "generate-beams": ("generate", "-m", "demo", ES, "--num-beams", "3"),
    "generate-sample": ("generate", "-m", "demo", ES, "--sample", "--seed", "1"),
    "generate-self": ("generate", "-m", "demo", ES, "--self"),
    "generate-occlusion": ("generate", "-m", "demo", ES, "--occlusion"),
    "trace-compare": ("trace", "-m", "demo", ES, "--target", "la casa azul es pequeña", "--compare", "--depth", "0"),
    "lens": ("lens", "-m", "demo", ES),
    "lens-step": ("lens", "-m", "demo", ES, "--step", "1"),
    "attend": ("attend", "-m", "demo", ES, "--step", "1", "--head", "3"),
    "attend-encoder": ("attend", "-m", "demo", ES, "--encoder", "--query", "7", "--layer", "1", "--head", "5"),
    "patch": ("patch", "-m", "demo", ES, "--corrupt", ES.replace("red", "blue"), "--position", "2"),
    "patch-noise": ("patch", "-m", "demo", ES, "--noise", "6:7", "--position", "2", "--metric", "prob"),
    "generate-force": ("generate", "-m", "demo", ES, "--force", "2=azul"),
    "attribute": ("attribute", "-m", "demo", ES, "--position", "2"),
    "attribute-contrast": ("attribute", "-m", "demo", ES, "--position", "2", "--contrast", "azul", "--steps", "64"),
    "knockout": ("knockout", "-m", "demo", ES, "--head", "cross:2.0", "--head", "cross:1.1"),
    "knockout-sweep": ("knockout", "-m", "demo", ES, "--sweep", "cross", "--mode", "mean"),
    "budget": ("budget", "demo", "--batch", "8", "--source", "64", "--target", "32"),
    "budget-train": ("budget", "demo", "--mode", "train", "--batch", "8", "--source", "64", "--target", "32",
                     "--gradient-checkpointing"),
}

_ROW_TIME = re.compile(r"\s+\d+\.\d\d$")
_PHASE_TIME = re.compile(r"^(?P<title>.*) (?P<sep>[·-]) \d+\.\d ms (?P<rule>─+|-+)$")
_TIME_TOKEN = "#.##"


def _demo_folder() -> str:
    import t5peek

    return str(Path(t5peek.__file__).parent / "demo")


def mask_times(text: str) -> str:
    lines = []
    for line in text.split("\n"):
        if phase := _PHASE_TIME.match(line):
            head = f"{phase['title']} {phase['sep']} #.# ms "
            line = head + phase["rule"][0] * max(cell_len(line) - cell_len(head), 1)
        elif row := _ROW_TIME.search(line):
            line = line[: row.start()] + _TIME_TOKEN.rjust(len(row.group(0)))
        lines.append(line)
    return "\n".join(lines)


def mask_demo_path(text: str) -> str:
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith("  from ")), None)
    assert start is not None, f"no `from` line in info output:\n{text}"
    end = start + 1
    while end < len(lines) and lines[end].startswith("    ") and lines[end].strip():
        end += 1  # continuation lines of a wrapped field start in the value column; keys start at column 2
    field = re.sub(r"\s+", "", "".join(lines[start:end])[len("  from"):])
    assert field == "bundleddemo" + re.sub(r"\s+", "", _demo_folder()), f"unexpected `from` field:\n{text}"
    return "\n".join([*lines[:start], "  from            bundled demo  <DEMO>", *lines[end:]])


# float rounding differences (trace --compare's max |diff|, attend's check): what they are depends on the CPU's kernels
_ROUNDING = re.compile(r"\d\.\de[-+]\d\d")  # 0.0e+00 too: on one thread the noise can vanish
_MEMORY = re.compile(r"\d+(?:\.\d+)? (?:B|KiB|MiB|GiB|TiB)")


def mask_free_memory(text: str) -> str:
    """budget only: the memory free on this machine, in the Fit rows and the `fit:` line."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip(" |") == "Fit"), len(lines))
    for i in range(start, len(lines)):
        if lines[i].startswith("note:"):
            break
        if "available" in lines[i] or "MemAvailable" in lines[i]:
            lines[i] = re.sub(r" {2,}", " ", _MEMORY.sub("<FREE>", lines[i]))
    return "\n".join(lines)


def masked(case: str, text: str) -> str:
    if case.startswith("trace"):
        text = mask_times(text)
    if case in ("trace-compare", "attend", "attend-encoder", "lens", "lens-step"):
        text = _ROUNDING.sub("#.#e-##", text)
    if case == "info":
        text = mask_demo_path(text)
    if case.startswith("budget"):
        text = mask_free_memory(text)
    return text


_RECORDS: dict = {}  # (method, model, arguments) -> the record, kept across the four settings of a case


@pytest.fixture
def computed_once(monkeypatch):
    """t5peek.Model's methods answer from _RECORDS after the first call with the same arguments."""
    from t5peek import api

    def keep(name: str):
        real = getattr(api.Model, name)

        def kept(self, *args, on_start=None, on_step=None, **kwargs):
            key = (name, self.name, repr(args), repr(sorted(kwargs.items())))
            if key not in _RECORDS:
                _RECORDS[key] = real(self, *args, **kwargs)
            record = _RECORDS[key]
            if on_start is not None:  # a DecodeRun is its own plan, and keeps every step
                on_start(record)
            for step in (record.beam_steps or record.steps) if on_step is not None else ():
                on_step(step)
            return record

        monkeypatch.setattr(api.Model, name, kept)

    for name in ("info", "arch", "params", "budget", "run"):
        keep(name)


@pytest.mark.parametrize("glyphs", ["unicode", "ascii"])
@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("case", list(CASES))
def test_golden(case, width, glyphs, request, computed_once):
    env = {"COLUMNS": str(width), "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8",
           "T5PEEK_ASCII": "1" if glyphs == "ascii" else "0"}
    run = run_t5peek(*CASES[case], env=env)
    output = run.stdout + run.stderr
    assert run.exit_code == 0, output
    assert "Traceback" not in run.stderr and "unexpected" not in run.stderr, output
    assert not run.network_violations, run.network_violations
    assert run.stdout.strip(), output

    for number, line in enumerate(run.stdout.split("\n"), 1):
        assert line == line.rstrip(), f"line {number} has trailing spaces: {line!r}"
        assert cell_len(line) <= width, f"line {number} is {cell_len(line)} cells wide, over {width}: {line!r}"
    if glyphs == "ascii":
        bad = sorted({char for char in run.stdout if not char.isascii()})
        assert not bad, f"non-ASCII characters under T5PEEK_ASCII=1: {bad}"

    actual = masked(case, run.stdout)
    path = GOLDEN / f"{case}.{width}.{glyphs}.txt"
    if request.config.getoption("--update-goldens"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(actual.encode("utf-8"))
        return
    assert path.is_file(), f"missing golden file {path.name}: run pytest tests/test_golden.py --update-goldens"
    expected = path.read_bytes().decode("utf-8")
    if actual != expected:
        diff = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(), f"golden/{path.name}",
                                         "actual", lineterm=""))
        more = f"\n... {len(diff) - 60} more diff lines" if len(diff) > 60 else ""
        pytest.fail(f"output of `t5peek {' '.join(CASES[case])}` (COLUMNS={width}, {glyphs}) differs from "
                    f"golden/{path.name}:\n" + "\n".join(diff[:60]) + more +
                    "\nIf the change is intended, run: pytest tests/test_golden.py --update-goldens", pytrace=False)
