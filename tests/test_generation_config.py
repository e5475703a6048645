"""Hostile generation settings in a model's files are refused in one line that names the file and the field, before
the weights load and before anything is printed, on every command that loads them (issue #25, item 1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import assert_known_outcome, run_t5peek

DEMO = Path(__file__).resolve().parent.parent / "src" / "t5peek" / "demo"
PROMPT = "translate English to Spanish: the red house is small"
COMMANDS = {
    "generate": ("generate", "-n", "3"),
    "lens": ("lens", "-n", "3"),
    "attend": ("attend", "--step", "1"),
    "trace": ("trace", "-n", "2"),
}
LAST_ID = "718"  # the demo's vocabulary: 719 tokens

# the file's text (None: the demo's, with `fields` merged in), and what the one error line must say
CASES = {
    "start-1e30": ({"decoder_start_token_id": 1e30}, ("decoder_start_token_id", "1e+30", f"0 to {LAST_ID}")),
    "start-negative": ({"decoder_start_token_id": -5}, ("decoder_start_token_id", "-5", f"0 to {LAST_ID}")),
    "bad-words-past-vocabulary": ({"bad_words_ids": [[99999999]]}, ("bad_words_ids", "99999999", LAST_ID)),
    "forced-bos-float": ({"forced_bos_token_id": 1e6}, ("forced_bos_token_id", "1000000.0", LAST_ID)),
    "repetition-penalty-negative": ({"repetition_penalty": -1}, ("repetition_penalty", "-1", "above 0")),
    "top-k-negative-sampling": ({"top_k": -5, "do_sample": True}, ("top_k", "-5")),
    "pad-string": ({"pad_token_id": "x"}, ("pad_token_id", '"x"', LAST_ID)),
    "no-first-token": ({"decoder_start_token_id": None, "bos_token_id": None},
                       ("decoder_start_token_id", "bos_token_id", "no first token")),
    "sequence-bias-dict": ({"sequence_bias": {"x": 1}}, ("sequence_bias", '{"x": 1}', "pairs")),
    "return-sequences-1e9": ({"num_return_sequences": 1e9}, ("num_return_sequences", "1000000000.0")),
    "max-new-tokens-0": ({"max_new_tokens": 0}, ("max_new_tokens", "0", "from 1")),
    "method-name": ({"to_dict": 1}, ("to_dict",)),
    "two-sequences-greedy": ({"num_return_sequences": 3}, ("num_return_sequences",)),  # transformers' own refusal
    "guidance": ({"guidance_scale": 2.0}, ("guidance_scale", "decoder-only")),
    "a-list": ("[1, 2]", ("not a JSON object", "list")),
    "broken-json": ('{"max_length": 20,', ("not valid JSON", "line 1")),
}


def _with_generation_config(folder: Path, fields) -> Path:
    shutil.copytree(DEMO, folder)
    path = folder / "generation_config.json"
    if isinstance(fields, str):
        path.write_text(fields)
    else:
        settings = json.loads(path.read_text())
        settings.update(fields)
        path.write_text(json.dumps(settings))
    return folder


@pytest.fixture(scope="module")
def hostile_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("generation-config")
    return {case: _with_generation_config(root / case, fields) for case, (fields, _) in CASES.items()}


@pytest.fixture
def no_weights_load(monkeypatch):
    """Fail the run if transformers is asked to load the weights."""
    from t5peek import loading

    def refuse(*_args, **_kwargs):
        raise AssertionError("the weights were loaded before the generation settings were checked")

    monkeypatch.setattr(loading, "_from_pretrained", refuse)


def _run(command: str, folder: Path, *extra: str):
    name, *options = COMMANDS[command]
    return run_t5peek(name, "-m", str(folder), PROMPT, *options, *extra)


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_generation_config_is_named_before_the_weights_load(hostile_folders, no_weights_load, case,
                                                                      command):
    run = _run(command, hostile_folders[case])
    assert_known_outcome(run, 1, "generation_config.json", *CASES[case][1])
    assert run.stdout == ""


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("fields, fragments", [
    ({"decoder_start_token_id": -5}, ("decoder_start_token_id", "-5")),
    ({"pad_token_id": 5000}, ("pad_token_id", "5000", LAST_ID)),
    ({"eos_token_id": 10**6}, ("eos_token_id", "1000000", LAST_ID)),
    ({"bos_token_id": 719}, ("bos_token_id", "719", LAST_ID)),
], ids=["start", "pad", "eos", "bos"])
def test_config_json_special_tokens_are_checked_too(tmp_path, no_weights_load, command, fields, fragments):
    """t5peek's decoder start, its end of sequence and teacher forcing fall back to config.json's tokens."""
    folder = _with_generation_config(tmp_path / "model", {})
    config = json.loads((folder / "config.json").read_text())
    config.update(fields)
    (folder / "config.json").write_text(json.dumps(config))
    run = _run(command, folder)
    assert_known_outcome(run, 1, "config.json", *fragments)
    assert "generation_config.json" not in run.stderr


@pytest.mark.parametrize("command", ["generate", "lens"])
def test_without_generation_config_json_config_json_settings_are_checked(tmp_path, no_weights_load, command):
    """transformers takes the generation settings from config.json when the folder has no generation_config.json."""
    folder = _with_generation_config(tmp_path / "model", {})
    (folder / "generation_config.json").unlink()
    config = json.loads((folder / "config.json").read_text())
    config["repetition_penalty"] = -1
    (folder / "config.json").write_text(json.dumps(config))
    assert_known_outcome(_run(command, folder), 1, "config.json", "repetition_penalty", "-1")


def test_teacher_forcing_without_a_start_token_in_config_json(tmp_path):
    folder = _with_generation_config(tmp_path / "model", {})
    config = json.loads((folder / "config.json").read_text())
    config["decoder_start_token_id"] = None
    (folder / "config.json").write_text(json.dumps(config))
    run = run_t5peek("trace", "-m", str(folder), PROMPT, "--target", "la casa")
    assert_known_outcome(run, 1, "config.json", "decoder_start_token_id", "teacher forcing")
    assert run.stdout == ""


def test_a_sampling_setting_is_checked_when_the_command_line_turns_sampling_on(tmp_path):
    """The file does not sample, so its top_k goes unused until --sample: then it is named, before any step."""
    folder = _with_generation_config(tmp_path / "model", {"top_k": -5})
    assert_known_outcome(run_t5peek("generate", "-m", str(folder), PROMPT, "-n", "3"), 0)
    run = run_t5peek("generate", "-m", str(folder), PROMPT, "-n", "3", "--sample", "--seed", "1")
    assert_known_outcome(run, 1, "generation_config.json", "top_k", "-5")
    assert run.stdout == ""


def test_a_setting_the_command_line_overrides_or_lens_does_not_use(tmp_path):
    """A bad temperature with sampling on: --temperature overrides it, and lens (greedy) never reads it."""
    folder = _with_generation_config(tmp_path / "model", {"do_sample": True, "temperature": "hot"})
    refused = run_t5peek("generate", "-m", str(folder), PROMPT, "-n", "3", "--seed", "1")
    assert_known_outcome(refused, 1, "generation_config.json", "temperature", '"hot"')
    assert refused.stdout == ""
    overridden = run_t5peek("generate", "-m", str(folder), PROMPT, "-n", "3", "--seed", "1", "--temperature", "0.7",
                            "--json")
    assert_known_outcome(overridden, 0)
    assert overridden.json()["settings"]["temperature"]["value"] == 0.7
    assert_known_outcome(run_t5peek("lens", "-m", str(folder), PROMPT, "-n", "3"), 0)


def test_valid_settings_run_as_model_generate_runs_them(tmp_path):
    """Every field the checks read, set to values transformers accepts: t5peek takes them, and its ids are
    model.generate()'s (nothing refused that generate() runs)."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    fields = {"repetition_penalty": 1.3, "no_repeat_ngram_size": 2, "bad_words_ids": [[5]], "sequence_bias":
              [[[7], -1.5]], "suppress_tokens": [9], "begin_suppress_tokens": [11], "forced_eos_token_id": 1,
              "pad_token_id": -1, "min_length": 0, "exponential_decay_length_penalty": [2, 1.1],
              "early_stopping": True, "top_k": 0, "max_time": 60, "encoder_repetition_penalty": 1.0}
    folder = _with_generation_config(tmp_path / "model", fields)
    run = run_t5peek("generate", "-m", str(folder), PROMPT, "-n", "6", "--json")
    assert_known_outcome(run, 0)
    model = AutoModelForSeq2SeqLM.from_pretrained(str(folder))
    encoded = AutoTokenizer.from_pretrained(str(folder))(PROMPT, return_tensors="pt")
    expected = model.generate(**encoded, max_new_tokens=6)[0].tolist()
    assert run.json()["output_ids"] == expected
