"""Every command, run as users run it: the installed `t5peek` script in a fresh process, no shared imports.

The in-process tests (CliRunner) are faster, but they share import state with the test session, which is
how every Hub id once crashed on a fresh install while all of them passed.
"""

from __future__ import annotations

import pytest

from helpers import assert_known_outcome, run_t5peek

PROMPT = "translate English to Spanish: the red house is small"

pytestmark = pytest.mark.installed  # the console script in a fresh process: what in-process would hide


@pytest.mark.parametrize("args", [
    ("info", "demo"),
    ("arch", "demo", "--depth", "2"),
    ("params", "demo", "--by", "layer"),
    ("trace", "-m", "demo", PROMPT, "-n", "2"),
    ("generate", "-m", "demo", PROMPT, "--max-new-tokens", "4"),
    ("lens", "-m", "demo", PROMPT, "--max-new-tokens", "3"),
    ("attend", "-m", "demo", PROMPT, "--step", "1"),
    ("budget", "demo", "--source", "32", "--target", "8"),
])
@pytest.mark.parametrize("json_mode", [False, True])
def test_every_command_on_the_demo(args, json_mode):
    run = run_t5peek(*args, *(["--json"] if json_mode else []))
    assert_known_outcome(run, 0)
    if json_mode:
        assert isinstance(run.json(), dict)
    else:
        assert run.stdout.strip()


@pytest.mark.parametrize("command", ["info", "arch", "params", "trace", "generate", "lens", "attend", "budget"])
def test_help_of_every_command(command):
    run = run_t5peek(command, "--help")
    assert_known_outcome(run, 0)
    assert "Examples:" in run.stdout


def test_generate_matches_the_library(tmp_path):
    """The installed script prints the same tokens as model.generate() on the demo."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from t5peek.loading import DEMO_FOLDER

    tokenizer = AutoTokenizer.from_pretrained(DEMO_FOLDER)
    model = AutoModelForSeq2SeqLM.from_pretrained(DEMO_FOLDER).eval()
    expected = model.generate(**tokenizer(PROMPT, return_tensors="pt"), max_new_tokens=8, do_sample=False,
                              num_beams=1)[0].tolist()
    run = run_t5peek("generate", "-m", "demo", PROMPT, "--max-new-tokens", "8", "--json")
    assert_known_outcome(run, 0)
    record = run.json()
    assert record["output_ids"] == expected  # both start with the decoder start token
