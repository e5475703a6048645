"""The shape of the package that keeps it simple to change: no import cycles, small modules, thin commands, and
a light import path (torch and transformers only when a command needs weights)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
MODULES = {".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): p
           for p in SRC.rglob("*.py")}


def _imports(module: str) -> set[str]:
    """The t5peek modules `module` imports anywhere: at the top, inside functions, and for type checking only."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("t5peek"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("t5peek"))
    # a package's own submodules and its parents are not dependencies between peers
    return {m for m in found if m in MODULES and m != module and not module.startswith(m + ".")}


def test_no_import_cycles():
    graph = {module: _imports(module) for module in MODULES}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, "import cycle: " + " -> ".join(path[path.index(module):] + [module])
        if module in done:
            return
        for imported in graph[module]:
            visit(imported, path + [module])
        done.add(module)

    for module in graph:
        visit(module, [])


def test_no_module_over_450_lines():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 450}
    assert not long


def test_command_bodies_are_thin():
    for path in (SRC / "t5peek" / "commands").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                body_lines = node.end_lineno - node.body[0].lineno + 1
                assert body_lines <= 40, f"{path.name}:{node.name} has a {body_lines}-line body"


@pytest.mark.installed
def test_the_api_and_session_import_without_torch():
    code = ("import sys, t5peek, t5peek.session, t5peek.api, t5peek.cli; "
            "print([m for m in ('torch', 'transformers', 'huggingface_hub') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_model_types_are_named_in_the_family_table_only():
    from t5peek.families import FAMILIES

    naming = set()
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in FAMILIES:
                naming.add(name)
    assert naming <= {"t5peek.families"}, sorted(naming)


def test_every_view_runs_from_its_own_package():
    assert not sorted(p.name for p in (SRC / "t5peek").glob("*_run.py"))
