"""`t5peek generate` through typer's CliRunner: usage errors, JSON schema, streaming, the NO_COLOR heatmap."""

from __future__ import annotations

import json
import re

import pytest

from helpers import assert_clean_error, json_output, run_cli

PROMPT = "translate English to German : the red house is small"


def _generate_ids(folder, prompt=PROMPT, seed=None, **kwargs):
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(str(folder), attn_implementation="eager").eval()
    encoded = AutoTokenizer.from_pretrained(str(folder))(prompt, return_tensors="pt")
    if seed is not None:
        torch.manual_seed(seed)
    return model.generate(**encoded, **kwargs)[0].tolist()


@pytest.fixture
def no_weights(monkeypatch):
    """Fail the test if the command loads weights."""
    from t5peek import loading

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the usage error")

    monkeypatch.setattr(loading, "load_model", refuse)


def assert_one_line_usage_error(result, *fragments):
    assert_clean_error(result, 2, *fragments)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("args, fragment", [
    (["", "--top-k", "3"], "prompt is empty"),
    (["   "], "prompt is empty"),
    ([PROMPT, "--top-k", "0"], "--top-k must be at least 1"),
    ([PROMPT, "--top-k", "-4"], "--top-k must be at least 1"),
    ([PROMPT, "--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
    ([PROMPT, "--num-beams", "0"], "--num-beams must be at least 1"),
    ([PROMPT, "--sample", "--temperature", "0"], "--temperature must be greater than 0"),
    ([PROMPT, "--sample", "--temperature", "-1.5"], "--temperature must be greater than 0"),
    ([PROMPT, "--sample", "--top-p", "0"], "--top-p must be in (0, 1]"),
    ([PROMPT, "--sample", "--top-p", "1.01"], "--top-p must be in (0, 1]"),
    ([PROMPT, "--layer", "2"], "layers 0 to 1"),
    ([PROMPT, "--layer", "-1"], "--layer counts decoder layers from 0"),
    ([PROMPT, "--greedy", "--num-beams", "3"], "--greedy means one beam"),
    ([PROMPT, "--greedy", "--temperature", "0.5"], "do nothing with --greedy"),
])
def test_usage_errors_before_loading_weights(tiny_t5, no_weights, args, fragment):
    result = run_cli("generate", *args, "-m", tiny_t5)
    assert_one_line_usage_error(result, fragment)


def test_html_into_a_missing_folder(tiny_t5, no_weights, tmp_path):
    result = run_cli("generate", PROMPT, "-m", tiny_t5, "--html", tmp_path / "nope" / "report.html")
    assert_one_line_usage_error(result, "does not exist")


def test_prompt_longer_than_bart_positions(tiny_bart, no_weights):
    long_prompt = " ".join(["the red house is small"] * 14)  # 70 words, 72 tokens > 64 positions
    result = run_cli("generate", long_prompt, "-m", tiny_bart)
    assert_one_line_usage_error(result, "72 tokens long", "at most 64 positions")


def test_max_new_tokens_beyond_bart_positions(tiny_bart, no_weights):
    result = run_cli("generate", PROMPT, "-m", tiny_bart, "--max-new-tokens", "64")
    assert_one_line_usage_error(result, "needs 65 decoder positions", "at most 64 positions")


def test_temperature_without_sampling_model(tiny_t5):
    result = run_cli("generate", PROMPT, "-m", tiny_t5, "--temperature", "0.7")
    assert_one_line_usage_error(result, "add --sample")


def test_top_k_larger_than_vocabulary_is_clamped_with_one_warning(tiny_t5):
    from support.builders import vocab_size

    result = run_cli("generate", PROMPT, "-m", tiny_t5, "--top-k", "100000", "--max-new-tokens", "2", "--json")
    record = json_output(result)
    assert sum("warning:" in line and "100000" in line for line in result.stderr.splitlines()) == 1
    assert record["top_k"] == vocab_size("t5")
    assert all(len(step["top_k"]) == vocab_size("t5") for step in record["steps"])


def test_json_schema_and_parity(tiny_t5_untied):
    result = run_cli("generate", PROMPT, "-m", tiny_t5_untied, "--max-new-tokens", "6", "--top-k", "3", "--json")
    record = json_output(result)
    assert record["output_ids"] == _generate_ids(tiny_t5_untied, max_new_tokens=6)
    assert record["output_ids"][0] == 0  # the decoder start token is part of what generate() returns
    assert isinstance(record["output_text"], str) and record["output_text"]
    assert len(record["steps"]) == len(record["output_ids"]) - 1
    source_length = len(record["source_tokens"])
    for i, step in enumerate(record["steps"]):
        assert step["token_id"] == record["output_ids"][i + 1]
        assert step["input_ids"] == record["output_ids"][: i + 1]
        assert len(step["input_tokens"]) == i + 1
        assert step["rule"] == "greedy"
        assert len(step["top_k"]) == 3
        for candidate in step["top_k"]:
            assert set(candidate) >= {"token_id", "token", "logit", "probability"}
            assert 0 <= candidate["probability"] <= 1
        assert len(step["cross_attention"]) == source_length
        assert sum(step["cross_attention"]) == pytest.approx(1, abs=1e-4)
        assert [f["layer"] for f in step["layers"]] == [0, 1]
    assert record["settings"]["max_new_tokens"] == {"value": 6, "source": "command line"}
    assert record["settings"]["num_beams"]["source"] == "default"
    assert record["strategy"] == "greedy" and record["layer"] == 1
    assert "head_attention" not in record
    assert result.stdout.lstrip().startswith("{") and result.stdout.rstrip().endswith("}")


def test_json_beam_search_parity_on_bart(tiny_bart):
    result = run_cli("generate", PROMPT, "-m", tiny_bart, "--num-beams", "3", "--max-new-tokens", "7", "--json")
    record = json_output(result)
    assert record["output_ids"] == _generate_ids(tiny_bart, num_beams=3, max_new_tokens=7)
    assert record["strategy"] == "beam"
    assert record["beam_steps"] and all(len(b["next_beams"]) == 3 for b in record["beam_steps"][:-1])
    assert record["beam_steps"][-1]["next_beams"] == []  # no beam runs on after the last step
    first_beam = record["beam_steps"][0]["next_beams"][0]
    assert {"beam", "parent", "token_id", "token", "score", "step_score"} <= set(first_beam)
    assert record["settings"]["forced_eos_token_id"]["source"] == "generation_config"
    assert record["output_ids"][-1] == 2


def test_seeded_sampling_matches_generate(tiny_t5_untied):
    args = ("generate", PROMPT, "-m", tiny_t5_untied, "--sample", "--seed", "5", "--temperature", "0.8",
            "--top-p", "0.9", "--max-new-tokens", "8", "--json")
    record = json_output(run_cli(*args))
    expected = _generate_ids(tiny_t5_untied, seed=5, do_sample=True, temperature=0.8, top_p=0.9, max_new_tokens=8)
    assert record["output_ids"] == expected
    assert record["settings"]["seed"] == {"value": 5, "source": "command line"}
    assert record["settings"]["temperature"] == {"value": 0.8, "source": "command line"}
    assert all(step["rule"] == "sampled" for step in record["steps"])


def test_sampling_without_seed_shows_the_seed_it_drew(tiny_t5_untied):
    record = json_output(run_cli("generate", PROMPT, "-m", tiny_t5_untied, "--sample", "-n", "6", "--json"))
    seed = record["settings"]["seed"]
    assert isinstance(seed["value"], int) and "drawn at random" in seed["source"]
    again = json_output(run_cli("generate", PROMPT, "-m", tiny_t5_untied, "--sample", "-n", "6", "--seed",
                                str(seed["value"]), "--json"))
    assert again["output_ids"] == record["output_ids"]


def test_task_prefix_defaults(copy_model, tiny_t5_untied):
    folder = copy_model(tiny_t5_untied)
    config = json.loads((folder / "config.json").read_text())
    config["task_specific_params"] = {"translation_en_to_de": {"prefix": "translate English to German : ",
                                                               "num_beams": 3, "max_length": 6,
                                                               "early_stopping": True}}
    (folder / "config.json").write_text(json.dumps(config))
    record = json_output(run_cli("generate", PROMPT, "-m", folder, "--task-params", "--json"))
    assert record["strategy"] == "beam"
    assert record["settings"]["num_beams"] == {"value": 3, "source": "task_specific_params.translation_en_to_de"}
    assert record["output_ids"] == _generate_ids(folder, num_beams=3, max_length=6, early_stopping=True)
    # without --task-params, what model.generate() does; --greedy beats the task's beams; a prompt without the
    # prefix gets no task defaults
    assert json_output(run_cli("generate", PROMPT, "-m", folder, "--json"))["strategy"] == "greedy"
    assert json_output(run_cli("generate", PROMPT, "-m", folder, "--task-params", "--greedy", "--json")
                       )["strategy"] == "greedy"
    plain = json_output(run_cli("generate", "the red house", "-m", folder, "--task-params", "--json"))
    assert plain["strategy"] == "greedy" and plain["settings"]["num_beams"]["source"] == "default"


def test_asymmetric_model_runs(tiny_t5_asym):
    record = json_output(run_cli("generate", PROMPT, "-m", tiny_t5_asym, "-n", "4", "--all-layers", "--json"))
    assert record["decoder_layers"] == 1 and record["layer"] == 0
    assert all(len(step["layers"]) == 1 for step in record["steps"])


ANSI = re.compile(r"\x1b\[")


def test_human_output_shows_the_steps_in_order_and_a_heatmap(tiny_t5_untied):
    result = run_cli("generate", PROMPT, "-m", tiny_t5_untied, "-n", "5", "--all-layers")
    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.stdout
    assert not ANSI.search(out)  # NO_COLOR (conftest) and no terminal: plain text
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert out.index("step 0") < out.index("step 4") < out.index("output ")
    assert "decoder input (1): <pad>" in out and "◀ greedy" in out and "looked at (layer 1)" in out
    assert "strongest per layer: L0" in out
    assert "max_new_tokens" in out and "command line" in out
    # the heatmap: one row per generated token, shade characters between the borders
    rows = [line for line in lines if re.match(r"^\s*\S+ │[·░▒▓█]+│ ", line)]
    assert len(rows) == 5
    assert all(len(re.search(r"│([·░▒▓█]+)│", row).group(1)) == 2 * 11 for row in rows)  # 11 source tokens
    assert any("█" in row for row in rows)  # the strongest cell is full
    assert "of the strongest weight" in out


def test_human_beam_output(tiny_bart):
    result = run_cli("generate", PROMPT, "-m", tiny_bart, "--num-beams", "2", "-n", "4")
    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.stdout
    assert "running beam(s)" in out and "kept: 0 ← beam 0" in out
    assert "how the output was built" in out and "beam score" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_wide_source_wraps_the_heatmap_into_blocks(tiny_t5_untied):
    prompt = " ".join(["the red house is small and the blue car is big"] * 8)  # 89 tokens
    result = run_cli("generate", prompt, "-m", tiny_t5_untied, "-n", "2")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "source tokens 0-" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 100


def test_ctrl_c_keeps_printed_steps_and_exits_130(monkeypatch, tiny_t5_untied):
    import t5peek.render.steps as render_steps

    original = render_steps.render_step

    def interrupt_at_step_2(step, *args, **kwargs):
        if step.step == 2:
            raise KeyboardInterrupt
        original(step, *args, **kwargs)

    monkeypatch.setattr(render_steps, "render_step", interrupt_at_step_2)
    result = run_cli("generate", PROMPT, "-m", tiny_t5_untied, "-n", "6")
    assert result.exit_code == 130
    assert "step 0" in result.stdout and "step 1" in result.stdout and "step 2" not in result.stdout
    assert "interrupted" in result.stderr and "Traceback" not in result.stderr


def test_html_report_is_self_contained(tiny_t5_untied, tmp_path):
    target = tmp_path / "report.html"
    result = run_cli("generate", PROMPT, "-m", tiny_t5_untied, "-n", "3", "--html", target, "--json")
    record = json_output(result)
    page = target.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page
    assert "report.html" in result.stderr
    assert record["output_text"] in page or not record["output_text"]


def test_help_lists_the_options():
    result = run_cli("generate", "--help")
    assert result.exit_code == 0
    for option in ("--top-k", "--num-beams", "--sample", "--greedy", "--temperature", "--top-p", "--seed",
                   "--max-new-tokens", "--layer", "--all-layers", "--html", "--json"):
        assert option in result.stdout


def test_hub_model_from_the_cache_offline(hub_cache, tiny_t5_untied):
    hub_cache("acme/tiny-flan", tiny_t5_untied, "b" * 40)
    record = json_output(run_cli("generate", PROMPT, "-m", "acme/tiny-flan", "--offline", "-n", "3", "--json"))
    assert record["model"] == "acme/tiny-flan"
    assert record["output_ids"] == _generate_ids(tiny_t5_untied, max_new_tokens=3)


def test_help_says_task_settings_apply_only_with_task_params():
    """The help and the behaviour agree: a task prefix alone changes nothing (checked above); the help says the
    task's settings come only with --task-params."""
    help_text = " ".join(run_cli("generate", "--help").stdout.split())
    sentence = help_text[help_text.index("Settings come from"):].split(". ")[0]
    assert "only with --task-params" in sentence, sentence
    assert "task_specific_params" in sentence


@pytest.mark.parametrize("extra", [{"num_beams": 3}, {"do_sample": True}])
def test_a_model_asking_for_two_sequences_is_followed_for_one(copy_model, tiny_t5, extra):
    """generation_config.json with num_return_sequences 2 made generate unusable (exit 2, nothing to override it
    with). t5peek follows one sequence, says so, and gives what generate(num_return_sequences=1) gives."""
    folder = copy_model(tiny_t5)
    settings = json.loads((folder / "generation_config.json").read_text())
    settings.update(num_return_sequences=2, **extra)
    (folder / "generation_config.json").write_text(json.dumps(settings))
    record = json_output(run_cli("generate", PROMPT, "-m", folder, "-n", "4", "--seed", "5", "--json"))
    assert any("2 returned sequences" in note and "follows one" in note for note in record["notes"])
    expected = _generate_ids(folder, seed=5, max_new_tokens=4, num_return_sequences=1)
    assert list(record["output_ids"]) == expected
