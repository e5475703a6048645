"""Output on terminals that are not UTF-8 (a Windows console, a redirect, LANG=C), T5PEEK_ASCII and NO_COLOR, its
bytes read as they were written: in-process on streams of the encoding asked for, and the installed `t5peek` in a
fresh process for a pipe and a real terminal."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys

import pytest

from helpers import SUPPORT, run_t5peek, t5peek_script
from t5peek.output import fallback_text

PROMPT = "translate English to Spanish: the red house is small"
RUNS = {
    "arch": ("arch", "demo", "--depth", "3"),
    "trace": ("trace", "-m", "demo", "translate English to German: the house is small", "-n", "1"),
    "generate": ("generate", "-m", "demo", PROMPT, "--num-beams", "2", "-n", "3"),
}
GLYPHS = {"arch": ("`-- ", "x T5Block"), "trace": (" -> ",), "generate": ("<- beam", "|")}

def _env(extra: dict) -> dict:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PYTEST_") and key not in ("T5PEEK_ASCII", "NO_COLOR", "FORCE_COLOR")}
    env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT / "netguard"), env.get("PYTHONPATH", "")])
    env["T5PEEK_TEST_ALLOWED_PORTS"] = ""
    return {**env, **extra}


def run_bytes(*args: str, env: dict | None = None, fresh: bool = False) -> subprocess.CompletedProcess:
    """t5peek with stdout and stderr as bytes (a cp1252 stream is not UTF-8 text): in this process with streams
    in the encoding PYTHONIOENCODING names, or (`fresh`) the installed script in a new process."""
    if fresh:
        return subprocess.run([t5peek_script(), *args], capture_output=True, env=_env(env or {}), timeout=300)
    unset = {key: None for key in ("T5PEEK_ASCII", "NO_COLOR", "FORCE_COLOR")}
    run = run_t5peek(*args, env={**unset, **(env or {})})
    return subprocess.CompletedProcess(args, run.exit_code, run.stdout_bytes, run.stderr_bytes)


@pytest.mark.installed
def test_the_installed_script_falls_back_on_a_cp1252_pipe():
    result = run_bytes(*RUNS["arch"], env={"PYTHONIOENCODING": "cp1252"}, fresh=True)
    assert result.returncode == 0, result.stderr.decode("cp1252")
    stdout = result.stdout.decode("cp1252")
    assert all(glyph in stdout for glyph in GLYPHS["arch"]), stdout
    assert result.stdout == run_bytes(*RUNS["arch"], env={"PYTHONIOENCODING": "cp1252"}).stdout


@pytest.mark.parametrize("encoding", ["cp1252", "ascii"])
@pytest.mark.parametrize("command", list(RUNS))
def test_non_utf8_stdout_falls_back_to_ascii_glyphs(command, encoding):
    result = run_bytes(*RUNS[command], env={"PYTHONIOENCODING": encoding})
    stderr = result.stderr.decode(encoding)
    assert result.returncode == 0, stderr
    assert "error:" not in stderr and "Traceback" not in stderr
    stdout = result.stdout.decode(encoding)
    assert stdout.isascii() if encoding == "ascii" else stdout.strip()
    for glyph in GLYPHS[command]:
        assert glyph in stdout, stdout
    assert not any(char in stdout for char in "─│├└→…·×▁█"), stdout


@pytest.mark.parametrize("command", list(RUNS))
def test_t5peek_ascii_forces_ascii_on_utf8(command):
    utf8 = run_bytes(*RUNS[command], env={"PYTHONIOENCODING": "utf-8"})
    forced = run_bytes(*RUNS[command], env={"PYTHONIOENCODING": "utf-8", "T5PEEK_ASCII": "1"})
    assert utf8.returncode == forced.returncode == 0, forced.stderr.decode()
    assert not utf8.stdout.isascii()  # the UTF-8 output keeps its glyphs
    assert forced.stdout.isascii() and forced.stderr.isascii()
    if command == "arch":  # nothing in it changes from run to run
        assert forced.stdout == run_bytes(*RUNS[command], env={"PYTHONIOENCODING": "ascii"}).stdout


def test_json_on_ascii_stdout_is_escaped_not_lost():
    args = ("generate", "-m", "demo", PROMPT, "-n", "3", "--json")
    utf8 = run_bytes(*args, env={"PYTHONIOENCODING": "utf-8"}).stdout
    assert "glücklich".encode() in utf8  # a candidate token the ASCII stream cannot hold as it is
    result = run_bytes(*args, env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stderr.decode("ascii")
    assert result.stdout.isascii()
    assert json.loads(result.stdout.decode("ascii")) == json.loads(utf8.decode("utf-8"))


def test_errors_on_ascii_stderr_replace_what_it_cannot_hold():
    result = run_bytes("arch", "./nö-such-folder", env={"PYTHONIOENCODING": "ascii"})
    stderr = result.stderr.decode("ascii")
    assert result.returncode == 1
    assert stderr.startswith("error: ") and "n?-such-folder" in stderr, stderr


def test_fallback_keeps_columns_and_grids_aligned():
    assert fallback_text("| a → b     | c |", "ascii") == "| a -> b    | c |"
    assert fallback_text("│ 中文  x │", "ascii") == "| ??    x |"
    assert fallback_text("      … …   …", "ascii") == "      . .   ."  # a heatmap header row: one cell each
    assert fallback_text("Häuser ▁the", "cp1252") == "Häuser _the"


# ----------------------------------------------------------------------------- NO_COLOR, on a real terminal


def _on_a_terminal(*args: str, env: dict) -> bytes:
    """Run with stdout and stderr on a pseudo-terminal, where rich would colour."""
    pty = pytest.importorskip("pty")
    leader, follower = pty.openpty()
    process = subprocess.Popen([t5peek_script(), *args], stdin=subprocess.DEVNULL, stdout=follower,
                               stderr=follower, env=_env({"TERM": "xterm-256color", **env}))
    os.close(follower)
    output = b""
    while select.select([leader], [], [], 300)[0]:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=60)
    os.close(leader)
    return output


@pytest.mark.installed
@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
@pytest.mark.parametrize("args", [("arch", "demo", "--depth", "1"), ("arch", "--depth", "-1")])
def test_no_color_writes_no_escape_codes(args):
    assert b"\x1b[" in _on_a_terminal(*args, env={})  # the terminal gets colour otherwise
    output = _on_a_terminal(*args, env={"NO_COLOR": "1"})
    assert b"\x1b" not in output, output
    assert b"T5ForConditionalGeneration" in output or b"error: --depth" in output
