"""The README's quick start is what CI runs, and the changelog keeps its format."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
