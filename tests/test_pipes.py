"""Pipes and widths (issue #25): a stderr that is a closed pipe changes no exit code, and the width t5peek lays its
output out in stays within MIN_WIDTH and MAX_WIDTH whatever COLUMNS says."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from helpers import assert_known_outcome, run_t5peek, t5peek_script
from t5peek import output

PROMPT = "translate English to German: the house is small"


# ----------------------------------------------------------------------------- a closed pipe


class _ClosedPipe:
    encoding = "utf-8"

    def write(self, _text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")

    def isatty(self):
        return False


@pytest.mark.parametrize("code", [1, 2, 3])
def test_an_error_into_a_closed_stderr_keeps_its_exit_code(monkeypatch, capsys, code):
    monkeypatch.setattr("sys.stderr", _ClosedPipe())
    assert output.report_failure("usage", code, "no such option", "see --help", "arch") == code
    assert json.loads(capsys.readouterr().out)["error"]["exit_code"] == code


def test_a_warning_into_a_closed_stderr_does_not_end_the_command(monkeypatch, capsys):
    monkeypatch.setattr("sys.stderr", _ClosedPipe())

    def body():
        out = output.Output(command="params")
        out.warn("a warning no one reads")
        out.emit({"total": 1}, lambda record, console: console.print(f"total {record['total']}"))

    output.run_command(False, body)
    assert capsys.readouterr().out == "total 1\n"


def _into_closed_pipes(*args, stdout_closed: bool) -> tuple[int, str]:
    """Run the installed script with stderr (and stdout, when asked) a pipe whose reader has gone: the exit code
    and what reached stdout otherwise."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run([t5peek_script(), *args], stdout=writer if stdout_closed else subprocess.PIPE,
                                stderr=writer, env={**env, "HF_HUB_OFFLINE": "1"}, timeout=120)
    finally:
        os.close(writer)
    return result.returncode, (result.stdout or b"").decode()


@pytest.mark.installed
@pytest.mark.parametrize("stdout_closed", [False, True], ids=["stderr", "stdout and stderr"])
@pytest.mark.parametrize("args, code", [(("arch", "--frob", "--json"), 2), (("arch", "./no-such-folder", "--json"), 1),
                                        (("budget", "demo", "--batch", "0", "--json"), 2)], ids=["usage", "runtime",
                                                                                                  "usage-in-command"])
def test_a_json_error_into_closed_pipes_keeps_its_exit_code(args, code, stdout_closed):
    returncode, stdout = _into_closed_pipes(*args, stdout_closed=stdout_closed)
    assert returncode == code
    if not stdout_closed:
        assert json.loads(stdout)["error"]["exit_code"] == code


# ----------------------------------------------------------------------------- COLUMNS


@pytest.mark.parametrize("columns, width", [("1", output.MIN_WIDTH), ("39", output.MIN_WIDTH), ("40", 40),
                                            ("250", 250), ("251", output.MAX_WIDTH), ("100000", output.MAX_WIDTH)])
def test_the_layout_width_stays_within_its_bounds(monkeypatch, columns, width):
    monkeypatch.setenv("COLUMNS", columns)
    assert (output.MIN_WIDTH, output.MAX_WIDTH) == (40, 250)
    assert output.Output().console.width == width
    assert output.Output().err.width == width


def test_columns_1_still_shows_names_whole():
    run = run_t5peek("arch", "demo", "--depth", "1", env={"COLUMNS": "1"})
    assert_known_outcome(run, 0)
    assert "T5ForConditionalGeneration" in run.stdout
    assert max(len(line) for line in run.stdout.splitlines()) <= output.MIN_WIDTH


@pytest.mark.slow
def test_a_huge_columns_writes_no_more_than_the_widest_layout():
    """COLUMNS=100000 made `trace --compare` write 4.1 MB."""
    args = ("trace", "-m", "demo", PROMPT, "--compare", "--target", "das Haus ist klein")
    huge = run_t5peek(*args, env={"COLUMNS": "100000"})
    assert_known_outcome(huge, 0)
    assert max(len(line) for line in huge.stdout.splitlines()) == output.MAX_WIDTH
    assert len(huge.stdout_bytes) < 50_000


def test_root_help_gives_the_bounds_of_columns():
    text = " ".join(run_t5peek("--help").stdout.split())
    assert f"COLUMNS sets the width, from {output.MIN_WIDTH} to {output.MAX_WIDTH}" in text
