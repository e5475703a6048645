"""SIGTERM ends a run like Ctrl-C; a full or closed stdout is one line; weight files are regular files inside the
model folder."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import assert_clean_error, assert_known_outcome, run_cli, run_t5peek, stderr_until, t5peek_script
from t5peek import cli, loading, output
from t5peek.checkpoint import read_local_checkpoint
from t5peek.errors import BadCheckpoint, Refused

PROMPT = "translate English to German: the house is small"

# Loaded into the installed script by PYTHONPATH: the weight load says LOADING and waits, for a signal to land.
_SLOW_LOAD = """\
import sys, time
from t5peek import loading

def _slow(*args, **kwargs):
    sys.stderr.write("LOADING\\n")
    sys.stderr.flush()
    time.sleep(120)

loading._from_pretrained = _slow
"""


def _env(**extra) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.update(NO_COLOR="1", COLUMNS="100", HF_HUB_OFFLINE="1", **extra)
    return env


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# ----------------------------------------------------------------------------- SIGTERM


def _terminate_while_loading(tmp_path: Path, *args: str):
    """Run the installed script with a weight load that waits, send SIGTERM once it is loading; return the
    outputs, the exit code and the offload folders that existed just before the signal."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(_SLOW_LOAD)
    temp = tmp_path / "tmp"
    temp.mkdir()
    child = subprocess.Popen([t5peek_script(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=_env(PYTHONPATH=os.pathsep.join([str(inject), os.environ.get("PYTHONPATH", "")]),
                                      TMPDIR=str(temp)))
    try:
        lines, reader = stderr_until(child, "LOADING", 120)
        assert any("LOADING" in line for line in lines), "".join(lines)
        before = sorted(temp.glob("t5peek-offload-*"))
        child.send_signal(signal.SIGTERM)
        stdout = child.stdout.read()
        child.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        child.kill()
        child.wait()
    return stdout, "".join(lines), child.returncode, before, sorted(temp.glob("t5peek-offload-*"))


@pytest.mark.installed
def test_sigterm_while_loading_is_one_line_exit_143_and_the_offload_folder_goes(tmp_path):
    stdout, stderr, code, before, after = _terminate_while_loading(
        tmp_path, "generate", "-m", "demo", PROMPT, "--max-memory", "cpu=1GB")
    assert code == 143, stderr
    assert "Traceback" not in stderr
    assert _error_lines(stderr) == ["error: terminated."], stderr
    assert before, "the run made no offload folder: the test does not test its removal"
    assert after == [], "the offload folder is left behind"


@pytest.fixture
def sigterm_guard():
    """A SIGTERM handler of the test's own while it runs: if t5peek does not handle the signal, the test fails
    with an error instead of pytest being killed."""
    def unhandled(_signum, _frame):
        raise RuntimeError("SIGTERM reached the test's own handler")

    previous = signal.signal(signal.SIGTERM, unhandled)
    yield unhandled
    signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
def test_sigterm_in_process_ends_the_command_and_restores_the_handler(monkeypatch, capsys, sigterm_guard,
                                                                      json_flag):
    def killed(*_args, **_kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)

    monkeypatch.setattr(loading, "resolve_model", killed)
    monkeypatch.setattr(sys, "argv", ["t5peek", "params", "-m", "demo", *json_flag])
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert time.monotonic() - started < 5
    assert exit_info.value.code == 143
    captured = capsys.readouterr()
    assert _error_lines(captured.err) == ["error: terminated."]
    if json_flag:
        error = json.loads(captured.out)["error"]
        assert error == {"kind": "interrupted", "message": "terminated.", "hint": None, "exit_code": 143}
    assert signal.getsignal(signal.SIGTERM) is sigterm_guard


@pytest.mark.parametrize("stage", ["make_context", "invoke"])
def test_sigterm_outside_a_command_is_reported_too(monkeypatch, stage):
    """typer turns a KeyboardInterrupt while parsing into a silent exit 130; SIGTERM there is still 143."""
    from typer.core import TyperGroup

    def terminated(*_args, **_kwargs):
        raise output.Terminated()

    monkeypatch.setattr(TyperGroup, stage, terminated)
    result = run_cli("params", "-m", "demo", "--json")
    assert result.exit_code == 143, result.stderr
    assert _error_lines(result.stderr) == ["error: terminated."]
    assert json.loads(result.stdout)["error"]["exit_code"] == 143


# ----------------------------------------------------------------------------- stdout that cannot take the output


class _FullStream:
    encoding = "utf-8"

    def write(self, _text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def isatty(self):
        return False


@pytest.mark.parametrize("stream", [_FullStream(), None], ids=["full", "closed"])
@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
def test_an_unwritable_stdout_is_one_line_in_process(monkeypatch, capsys, stream, json_mode):
    import typer

    monkeypatch.setattr(sys, "stdout", stream)

    def body():
        out = output.Output(json_mode=json_mode, command="params")
        out.emit({"total": 1}, lambda record, console: console.print(f"total {record['total']}"))

    with pytest.raises(typer.Exit) as exit_info:
        output.run_command(False, body, command="params" if json_mode else None)
    assert exit_info.value.exit_code == 1
    err = capsys.readouterr().err
    assert _error_lines(err) == [f"error: Cannot write the output: "
                                 f"{'No space left on device' if stream else 'standard output is closed'}."], err


def _skip_without_dev_full():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")


@pytest.mark.installed
@pytest.mark.parametrize("args", [("params", "-m", "demo"), ("params", "-m", "demo", "--json"), ("--help",)],
                         ids=" ".join)
def test_a_full_stdout_is_one_line_and_exit_1(args):
    _skip_without_dev_full()
    with open("/dev/full", "w") as full:
        result = subprocess.run([t5peek_script(), *args], stdout=full, stderr=subprocess.PIPE, text=True,
                                env=_env(), timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "xception" not in result.stderr, result.stderr
    assert _error_lines(result.stderr) == ["error: Cannot write the output: No space left on device."]


@pytest.mark.installed
@pytest.mark.parametrize("json_flag", ["", "--json"])
def test_a_closed_stdout_is_one_line_and_exit_1(json_flag):
    result = subprocess.run(["bash", "-c", f"'{t5peek_script()}' params -m demo {json_flag} >&-"],
                            capture_output=True, text=True, env=_env(), timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "xception" not in result.stderr, result.stderr
    assert _error_lines(result.stderr) == ["error: Cannot write the output: standard output is closed."]


@pytest.mark.installed
def test_a_closed_stdout_is_not_given_to_the_next_file_opened():
    """With fd 1 closed, the next file opened would get number 1, and whatever writes to fd 1 would land in it."""
    script = ("import os, sys\n"
              "from t5peek import cli\n"
              "cli._fill_closed_streams()\n"
              "sys.stderr.write(str(os.open(os.devnull, os.O_RDONLY)))\n")
    result = subprocess.run(["bash", "-c", f"'{sys.executable}' -c '{script}' >&- <&-"], capture_output=True,
                            text=True, env=_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stderr) > 2


@pytest.mark.installed
def test_a_reader_that_stops_early_ends_json_quietly():
    command = f"'{t5peek_script()}' arch demo --expand --json | head -1"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, env=_env(),
                            timeout=120)
    assert result.stdout == "{\n"
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


# ----------------------------------------------------------------------------- weight files


def _demo_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(loading.DEMO_FOLDER, folder)
    return folder


def test_a_pickle_file_linked_from_outside_the_folder_is_refused(tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = _demo_copy(tmp_path)
    outside = tmp_path / "elsewhere.bin"
    torch.save(load_file(folder / "model.safetensors"), outside)
    (folder / "model.safetensors").unlink()
    os.symlink(outside, folder / "pytorch_model.bin")
    with pytest.raises(Refused):
        read_local_checkpoint(folder)
    assert_clean_error(run_cli("params", str(folder), "--weights", "--allow-pickle"), 3, "outside the model folder")


def test_a_pickle_file_linked_inside_the_folder_still_loads(tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = _demo_copy(tmp_path)
    (folder / "weights").mkdir()
    torch.save(load_file(folder / "model.safetensors"), folder / "weights" / "real.bin")
    (folder / "model.safetensors").unlink()
    os.symlink(Path("weights") / "real.bin", folder / "pytorch_model.bin")
    result = run_cli("params", str(folder), "--weights", "--allow-pickle", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["counted_from"] == "loaded weights"


def _not_regular(folder: Path, what: str, name: str) -> None:
    path = folder / name
    if path.exists():
        path.unlink()
    if what == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()


def _unblock(path: Path) -> None:
    """Open a FIFO for writing and close it, so that a reader stuck on it gets EOF."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


@pytest.mark.parametrize("name", ["model.safetensors", "pytorch_model.bin"])
@pytest.mark.parametrize("what", ["fifo", "folder"])
def test_a_weight_file_that_is_not_a_regular_file_is_refused_in_process(tmp_path, what, name):
    folder = _demo_copy(tmp_path)
    if name == "pytorch_model.bin":
        (folder / "model.safetensors").unlink()
    _not_regular(folder, what, name)
    outcome: list[BaseException | None] = []

    def read():
        try:
            read_local_checkpoint(folder)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=20)
    if reader.is_alive():
        _unblock(folder / name)
        reader.join(timeout=5)
        pytest.fail(f"reading the checkpoint blocked on a {what} named {name}")
    assert isinstance(outcome[0], BadCheckpoint), outcome
    assert "not a regular file" in outcome[0].message


@pytest.mark.parametrize("args", [("info", "{folder}"), ("budget", "{folder}"),
                                  ("generate", "-m", "{folder}", PROMPT)], ids=lambda args: args[0])
def test_a_fifo_named_model_safetensors_is_refused_not_waited_on(tmp_path, args):
    import helpers

    folder = _demo_copy(tmp_path)
    _not_regular(folder, "fifo", "model.safetensors")
    timed_out = (subprocess.TimeoutExpired, getattr(helpers, "RunTimedOut", subprocess.TimeoutExpired))
    try:
        run = run_t5peek(*(arg.format(folder=folder) for arg in args), env={"HF_HUB_OFFLINE": "1"}, timeout=30)
    except timed_out:
        _unblock(folder / "model.safetensors")
        pytest.fail(f"t5peek {args[0]} waited on the FIFO")
    assert_known_outcome(run, 1, "model.safetensors", "not a regular file")
