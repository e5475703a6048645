"""Shared test helpers: run the CLI in-process (fast) or the installed script in a fresh process (true)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from t5peek.cli import app


def run_cli(*args: str, env: dict | None = None):
    """Invoke t5peek with separate stdout and stderr."""
    runner = CliRunner()
    return runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)


def assert_clean_error(result, exit_code: int, *fragments: str) -> None:
    """A failure with the given code, one error line naming the fragments, and no traceback."""
    output = result.stdout + result.stderr
    assert result.exit_code == exit_code, output
    assert "Traceback" not in output, output
    assert "error: unexpected" not in result.stderr, output
    assert "error:" in result.stderr, output
    for fragment in fragments:
        assert fragment.lower() in result.stderr.lower(), output


def json_output(result) -> dict:
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


# ----------------------------------------------------------------------------- the installed script

SUPPORT = Path(__file__).parent / "support"


@dataclass
class Run:
    """A finished `t5peek` process."""

    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    network_violations: list[str]

    def json(self) -> dict:
        assert self.exit_code == 0, self.stdout + self.stderr
        return json.loads(self.stdout)


def t5peek_script() -> str:
    """The console script installed next to this interpreter (what `pip install` put on PATH)."""
    script = Path(sys.executable).with_name("t5peek")
    assert script.is_file(), f"t5peek is not installed next to {sys.executable}: run pip install -e ."
    return str(script)


def run_t5peek(*args, env: dict | None = None, timeout: float = 180, allowed_ports=(),
               netlog: Path | None = None) -> Run:
    """Run the installed `t5peek` in a fresh process, with a network guard: only `allowed_ports` on loopback."""
    import os
    import subprocess
    import tempfile
    import time

    child_env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    child_env.update(env or {})
    child_env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT / "netguard"), child_env.get("PYTHONPATH", "")])
    child_env["T5PEEK_TEST_ALLOWED_PORTS"] = ",".join(str(p) for p in allowed_ports)
    log = netlog or Path(tempfile.mkstemp(prefix="t5peek-netlog-")[1])
    log.write_text("")
    child_env["T5PEEK_TEST_NETLOG"] = str(log)
    started = time.monotonic()
    result = subprocess.run([t5peek_script(), *map(str, args)], capture_output=True, text=True, env=child_env,
                            timeout=timeout)
    seconds = time.monotonic() - started
    violations = [line for line in log.read_text().splitlines() if line]
    return Run(tuple(map(str, args)), result.returncode, result.stdout, result.stderr, seconds, violations)


def assert_known_outcome(run: Run, exit_code: int, *fragments: str) -> None:
    """The exit code asked for, no traceback, no `unexpected` internal error, and every fragment in stderr."""
    output = run.stdout + run.stderr
    assert run.exit_code == exit_code, f"exit {run.exit_code}, wanted {exit_code}:\n{output}"
    assert "Traceback" not in output, output
    assert "unexpected" not in run.stderr, output
    assert not run.network_violations, f"opened connections outside the test: {run.network_violations}"
    for fragment in fragments:
        assert fragment.lower() in run.stderr.lower(), output
    if exit_code != 0:
        errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, output
