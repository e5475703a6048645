"""Faults from outside: a closed pipe, Ctrl-C while loading."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from sparse_checkpoint import FLAN_T5_BASE, write_sparse_checkpoint  # noqa: E402


def _env():
    env = dict(os.environ, NO_COLOR="1", COLUMNS="100", HF_HUB_OFFLINE="1")
    return env


def _interrupt_when(script: str, marker: str):
    """Run `script`, send SIGINT once it writes `marker` to stderr, and return its outputs."""
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=_env())
    deadline = time.time() + 120
    line = ""
    while time.time() < deadline and marker not in line:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    return stdout, stderr, process


@pytest.mark.installed
def test_broken_pipe_is_quiet(tmp_path):
    folder = write_sparse_checkpoint(tmp_path / "flan-t5-base", FLAN_T5_BASE)
    command = f"{sys.executable} -m t5peek arch {folder} --expand | head -1"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True,
                            env=_env(), timeout=120)
    assert result.stdout.startswith("T5ForConditionalGeneration")
    assert "Traceback" not in result.stderr
    assert "BrokenPipe" not in result.stderr
    assert result.returncode == 0, result.stderr


@pytest.mark.installed
def test_ctrl_c_while_loading_exits_130(tiny_t5):
    """SIGINT during the weight load: exit 130, one line, no traceback."""
    script = (
        "import sys, time\n"
        "from t5peek import loading\n"
        "def slow(*a, **k):\n"
        "    sys.stderr.write('LOADING\\n'); sys.stderr.flush(); time.sleep(60)\n"
        "loading._from_pretrained = slow\n"
        "from t5peek.cli import main\n"
        f"sys.argv = ['t5peek', 'params', {str(tiny_t5)!r}, '--weights']\n"
        "main()\n"
    )
    stdout, stderr, process = _interrupt_when(script, "LOADING")
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr


@pytest.mark.installed
def test_ctrl_c_during_generation_keeps_the_printed_steps():
    """SIGINT after two decoding steps: exit 130, no traceback, the steps already printed stay on stdout."""
    script = (
        "import sys, time\n"
        "from t5peek import loading\n"
        "real_load = loading.load_model\n"
        "def load(*a, **k):\n"
        "    loaded = real_load(*a, **k)\n"
        "    decoder = loaded.model.get_decoder()\n"
        "    real_forward = decoder.forward\n"
        "    calls = []\n"
        "    def forward(*fa, **fk):\n"
        "        calls.append(1)\n"
        "        if len(calls) == 3:\n"
        "            sys.stderr.write('STEPPING\\n'); sys.stderr.flush(); time.sleep(60)\n"
        "        return real_forward(*fa, **fk)\n"
        "    decoder.forward = forward\n"
        "    return loaded\n"
        "loading.load_model = load\n"
        "from t5peek.cli import main\n"
        "sys.argv = ['t5peek', 'generate', '-m', 'demo', 'translate English to Spanish: the red house is small']\n"
        "main()\n"
    )
    stdout, stderr, process = _interrupt_when(script, "STEPPING")
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "step 0" in stdout and "step 1" in stdout
    assert "step 2" not in stdout
