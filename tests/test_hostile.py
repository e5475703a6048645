"""Text from model files never drives the terminal: token strings and config values with rich markup, escape
sequences and bell characters are shown as text, with colour on and off, in every command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import assert_known_outcome, run_t5peek

DEMO = Path(__file__).resolve().parent.parent / "src" / "t5peek" / "demo"
EVIL = "\x1b[2J[/]\x07\x9b31m\r"
PROMPT = "translate English to Spanish: the red house is small"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile") / "model"
    shutil.copytree(DEMO, folder)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    for word in ("la", "casa", "roja", "es", "pequeña"):
        vocab[word + EVIL] = vocab.pop(word)
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["[/]Evil" + EVIL]
    (folder / "config.json").write_text(json.dumps(config))
    return folder


COMMANDS = {
    "info": lambda m: ("info", m),
    "arch": lambda m: ("arch", m, "--depth", "2"),
    "params": lambda m: ("params", m, "--by", "type"),
    "trace": lambda m: ("trace", "-m", m, PROMPT, "-n", "2", "--depth", "5", "--explain"),
    "generate": lambda m: ("generate", "-m", m, PROMPT, "-n", "3"),
    "beams": lambda m: ("generate", "-m", m, PROMPT, "-n", "3", "--num-beams", "2"),
}


@pytest.mark.parametrize("colour", [False, True])
@pytest.mark.parametrize("case", list(COMMANDS))
def test_model_text_cannot_write_to_the_terminal(hostile, case, colour):
    env = {"FORCE_COLOR": "1", "NO_COLOR": ""} if colour else {}
    run = run_t5peek(*COMMANDS[case](str(hostile)), env=env)
    assert_known_outcome(run, 0)
    for stream in (run.stdout, run.stderr):
        assert "\x1b[2J" not in stream and "\x07" not in stream and "\x9b" not in stream
        if not colour:  # in colour, stderr counts as a terminal: the spinner's own \r and escapes are expected
            assert "\x1b" not in stream and "\r" not in stream
    if case == "info":
        assert "[/]Evil[2J[/]" in run.stdout  # the markup is shown as text, the control characters dropped
    if case in ("generate", "beams"):
        assert "casa[2J[/]" in run.stdout or "la[2J[/]" in run.stdout


def test_json_keeps_the_true_token(hostile):
    run = run_t5peek(*COMMANDS["generate"](str(hostile)), "--json")
    assert_known_outcome(run, 0)
    tokens = [step["token"] for step in run.json()["steps"]]
    assert any(token.endswith(EVIL) for token in tokens)


@pytest.mark.parametrize("args, words", [
    (("generate", "-m", "demo", PROMPT, "-n", "100000"), "--max-new-tokens must be between 1 and 2,048"),
    (("generate", "-m", "demo", PROMPT, "--num-beams", "100000"), "--num-beams must be between 1 and 64"),
    (("generate", "-m", "demo", PROMPT, "--sample", "--seed", "9" * 30), "--seed must be between 0"),
    (("generate", "-m", "demo", PROMPT, "--sample", "--temperature", "1e-300"), "--temperature must be at least"),
    (("trace", "-m", "demo", PROMPT, "--steps", "1000000000"), "--steps must be between 1 and 256"),
    (("generate", "-m", "demo", "translate \udcff\udcfe house"), "PROMPT is not valid UTF-8"),
    (("trace", "-m", "demo", "translate \udcff house"), "PROMPT is not valid UTF-8"),
    (("generate", "-m", "demo", " ".join(["house"] * 9000)), "t5peek shows runs of up to 8,192 source tokens"),
])
def test_unbounded_or_invalid_requests_are_usage_errors(args, words):
    run = run_t5peek(*args)
    assert_known_outcome(run, 2, words)


@pytest.mark.parametrize("key, value", [("num_layers", 10**6), ("d_model", -8), ("vocab_size", "many"),
                                        ("num_heads", True)])
def test_impossible_config_sizes_are_refused_before_anything_is_built(tmp_path, key, value):
    folder = tmp_path / "model"
    shutil.copytree(DEMO, folder)
    config = json.loads((folder / "config.json").read_text())
    config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    for args in (("info", folder), ("arch", folder), ("generate", "-m", folder, PROMPT, "-n", "2")):
        run = run_t5peek(*args, timeout=60)
        assert_known_outcome(run, 1, "config.json of", "t5peek reads configs with a whole number")


def test_a_folder_without_tokenizer_files_is_refused_not_decoded_as_unk(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(DEMO, folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    for args in (("generate", "-m", folder, PROMPT, "-n", "2"), ("trace", "-m", folder, PROMPT, "-n", "1")):
        run = run_t5peek(*args)
        assert_known_outcome(run, 1, "has no tokenizer files")
        assert "<unk>" not in run.stdout
