"""The README's quick start is what CI runs, and the changelog keeps its format."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"t5peek_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def _quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\s+```bash\n(.*?)```", readme, re.S).group(1)
    commands = []
    for line in block.splitlines():
        line = line.split("  #")[0].strip()
        commands += [part.strip() for part in line.split(" && ") if part.strip()]
    return commands


def test_ci_runs_the_readme_quick_start():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    for command in _quick_start_commands():
        assert command in ci, f"README command missing from .ci/run: {command}"


def test_changelog_has_an_unreleased_section():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert "### Added" in changelog


@pytest.mark.slow
def test_readme_examples_are_real_output():
    """Each README example is what its command prints today (scripts/readme_examples.py writes them)."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_examples.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_example_selection_counts_from_both_ends():
    examples = _script("readme_examples")
    output = [f"line {n}" for n in range(1, 11)]
    assert examples.select(output, "") == output
    assert examples.select(output, "1-2, 9-") == ["line 1", "line 2", "…", "line 9", "line 10"]
    assert examples.select(output, "~3-~2") == ["…", "line 8", "line 9", "…"]
    assert examples.comparable(["max 5.7e-06 at 3"]) == examples.comparable(["max 7.6e-06 at 3"])
    assert examples.comparable(["loss 2.3457"]) != examples.comparable(["loss 2.3458"])
    free = "fit: needs 14.8 GiB of {} GiB available on cpu"
    assert examples.comparable([free.format("22.4")]) == examples.comparable([free.format("22.7")])
    other_need = free.format("22.4").replace("14.8", "7.1")
    assert examples.comparable([free.format("22.4")]) != examples.comparable([other_need])
