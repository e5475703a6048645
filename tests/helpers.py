"""Shared test helpers: run the CLI in-process and check its outputs."""

from __future__ import annotations

import json

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
    assert "error:" in result.stderr, output
    for fragment in fragments:
        assert fragment.lower() in result.stderr.lower(), output


def json_output(result) -> dict:
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(result.stdout)
