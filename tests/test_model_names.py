"""MODEL names that are malformed, missing, empty or ambiguous get one clean line (issue #25, item 7)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import assert_known_outcome, run_t5peek
from t5peek.errors import ModelNotFound, UsageError

DEMO = Path(__file__).resolve().parent.parent / "src" / "t5peek" / "demo"
PROMPT = "translate English to Spanish: the red house"
OFFLINE = {"HF_HUB_OFFLINE": "1"}


def _command(command: str, model: str) -> tuple[str, ...]:
    return ("generate", "-m", model, PROMPT, "-n", "2") if command == "generate" else (command, model)


@pytest.mark.parametrize("command", ["info", "generate"])
@pytest.mark.parametrize("name", ["a" * 5000, "org/" + "a" * 5000, "/" + "a" * 5000, "./" + "b" * 300],
                         ids=["bare", "org-slash", "absolute", "relative"])
def test_a_name_too_long_for_a_path_or_a_hub_id_is_a_usage_error_quoted_short(command, name):
    run = run_t5peek(*_command(command, name), env=OFFLINE)
    assert_known_outcome(run, UsageError.exit_code)
    assert name[:100] not in run.stderr
    assert f"({len(name):,} characters)" in run.stderr


@pytest.mark.parametrize("command", ["info", "generate"])
def test_the_home_folder_of_an_unknown_user_is_not_found(command):
    run = run_t5peek(*_command(command, "~t5peek-no-such-user-42/model"), env=OFFLINE)
    assert_known_outcome(run, ModelNotFound.exit_code, "~t5peek-no-such-user-42", "does not exist")


@pytest.mark.parametrize("args", [("generate", "-m", "", PROMPT), ("info", ""), ("info", "-m", ""),
                                  ("lens", "-m", " ", PROMPT)], ids=["generate", "info-arg", "info-option", "blank"])
def test_an_empty_model_is_refused_not_replaced_by_the_default(args):
    run = run_t5peek(*args, env=OFFLINE)
    assert_known_outcome(run, UsageError.exit_code, "model name is empty")
    assert "flan-t5" not in run.stderr


@pytest.mark.parametrize("command", ["info", "generate", "params"])
def test_a_folder_that_shadows_a_hub_id_is_announced_on_every_command(tmp_path, monkeypatch, command):
    shutil.copytree(DEMO, tmp_path / "acme" / "tiny")
    monkeypatch.chdir(tmp_path)
    run = run_t5peek(*_command(command, "acme/tiny"), env=OFFLINE)
    assert_known_outcome(run, 0)
    said = [line for line in run.stderr.splitlines() if "local folder" in line]
    assert len(said) == 1 and "not the Hub model" in said[0] and "./acme/tiny" in said[0], run.stderr
    explicit = run_t5peek(*_command(command, "./acme/tiny"), env=OFFLINE)
    assert_known_outcome(explicit, 0)
    assert "local folder" not in explicit.stderr


@pytest.mark.parametrize("command", ["generate", "params"])
def test_a_hub_repo_with_only_pickle_weights_says_allow_pickle(loophub, copy_model, tiny_t5, command):
    import torch
    from safetensors.torch import load_file

    folder = copy_model(tiny_t5)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    loophub.add_repo("acme/pickled", folder)
    args = ("generate", "-m", "acme/pickled", "translate English to German : the house", "-n", "2") \
        if command == "generate" else ("params", "acme/pickled", "--weights")
    run = run_t5peek(*args, allowed_ports=(loophub.port,))
    assert_known_outcome(run, 3, "pytorch_model.bin", "--allow-pickle")
    assert not any("pytorch_model.bin" in path for path in loophub.paths())  # never downloaded
