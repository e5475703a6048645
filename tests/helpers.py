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
    stdout_bytes: bytes = b""  # as written, in the stream's encoding (in-process runs)
    stderr_bytes: bytes = b""

    def json(self) -> dict:
        assert self.exit_code == 0, self.stdout + self.stderr
        return json.loads(self.stdout)


def t5peek_script() -> str:
    """The console script installed next to this interpreter (what `pip install` put on PATH)."""
    script = Path(sys.executable).with_name("t5peek")
    assert script.is_file(), f"t5peek is not installed next to {sys.executable}: run pip install -e ."
    return str(script)


# Loopback ports the running test may connect to (its loopback Hubs), and the connections refused in this process;
# conftest's network guard reads the one and fills the other.
LOOPBACK_PORTS: set[int] = set()
NETWORK_VIOLATIONS: list[str] = []


def run_t5peek(*args, env: dict | None = None, timeout: float = 180, allowed_ports=(),
               netlog: Path | None = None) -> Run:
    """`t5peek ARGS` as the installed script runs it, in this process: the script's own `main()`, with its argv,
    environment, stdout and stderr (bytes in the encoding PYTHONIOENCODING names, as a pipe gets), and only
    `allowed_ports` on loopback. Everything a run may change in the process (environment, warning filters,
    logging, signal handlers, huggingface_hub's offline switch) is put back afterwards. Tests that check what
    only a new process shows (imports, signals, the console script itself) use `run_installed`."""
    import io
    import os
    import signal
    import time
    import traceback
    import warnings

    from t5peek import cli

    encoding = (env or {}).get("PYTHONIOENCODING") or os.environ.get("PYTHONIOENCODING") or "utf-8"
    stdout = io.TextIOWrapper(io.BytesIO(), encoding=encoding.split(":")[0], errors="strict", write_through=True)
    stderr = io.TextIOWrapper(io.BytesIO(), encoding=encoding.split(":")[0], errors="backslashreplace",
                              write_through=True)
    saved = _process_state()
    violations_before = len(NETWORK_VIOLATIONS)
    LOOPBACK_PORTS.update(allowed_ports)
    for key, value in (env or {}).items():  # None: not set at all
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = str(value)
    sys.argv, sys.stdout, sys.stderr = ["t5peek", *map(str, args)], stdout, stderr

    def out_of_time(_signum, _frame):
        raise RunTimedOut(f"t5peek {' '.join(map(str, args))} ran past {timeout} s")

    previous_alarm = signal.signal(signal.SIGALRM, out_of_time)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    started = time.monotonic()
    try:
        with warnings.catch_warnings():
            try:
                cli.main()
                code = 0
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            except KeyboardInterrupt:
                code = 130
            except Exception:  # noqa: BLE001 - as the interpreter does: the traceback on stderr, exit 1
                stderr.write(traceback.format_exc())
                code = 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)
        seconds = time.monotonic() - started
        _restore_process_state(saved)
        LOOPBACK_PORTS.difference_update(set(allowed_ports) - saved["ports"])
    violations = NETWORK_VIOLATIONS[violations_before:]
    if netlog is not None:
        Path(netlog).write_text("".join(line + "\n" for line in violations))
    return Run(tuple(map(str, args)), code, _text(stdout, encoding), _text(stderr, encoding), seconds, violations,
               stdout.buffer.getvalue(), stderr.buffer.getvalue())


class RunTimedOut(BaseException):
    """An in-process run went past its timeout (a BaseException, so that no error handler swallows it)."""


def _text(stream, encoding: str) -> str:
    stream.flush()
    return stream.buffer.getvalue().decode(encoding.split(":")[0], errors="replace")


def _process_state() -> dict:
    import logging
    import os
    import signal

    state = {"environ": dict(os.environ), "argv": sys.argv, "stdout": sys.stdout, "stderr": sys.stderr,
             "sigterm": signal.getsignal(signal.SIGTERM), "sigint": signal.getsignal(signal.SIGINT),
             "logging_disable": logging.root.manager.disable, "ports": set(LOOPBACK_PORTS)}
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        state["hub"] = {name: getattr(constants, name) for name in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")}
    transformers_logging = sys.modules.get("transformers.utils.logging")
    if transformers_logging is not None:
        state["transformers_verbosity"] = transformers_logging.get_verbosity()
    return state


def _restore_process_state(state: dict) -> None:
    import logging
    import os
    import signal

    os.environ.clear()
    os.environ.update(state["environ"])
    sys.argv, sys.stdout, sys.stderr = state["argv"], state["stdout"], state["stderr"]
    signal.signal(signal.SIGTERM, state["sigterm"])
    signal.signal(signal.SIGINT, state["sigint"])
    logging.disable(state["logging_disable"])
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        for name, value in state.get("hub", {"HF_HUB_OFFLINE": False}).items():
            setattr(constants, name, value)
    transformers_logging = sys.modules.get("transformers.utils.logging")
    if transformers_logging is not None:
        transformers_logging.set_verbosity(state.get("transformers_verbosity", transformers_logging.WARNING))
        transformers_logging.enable_progress_bar()


def run_installed(*args, env: dict | None = None, timeout: float = 180, allowed_ports=(),
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


def stderr_until(child, marker: str, timeout: float) -> tuple[list[str], "object"]:
    """Read `child`'s stderr in a thread until a line holds `marker` (or the child ends, or `timeout` passes):
    the lines so far (the list keeps filling) and the reader thread."""
    import threading
    import time

    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(child.stderr), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not any(marker in line for line in lines) and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    return lines, reader


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
