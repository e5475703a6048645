"""The bundled demo model: loads offline from the package, translates held-out sentences, runs every command."""

from __future__ import annotations

import pytest

from helpers import json_output, run_cli
from t5peek import loading

# Held-out sentences (sha1 % 50 == 0: never seen in training, in any language).
HELD_OUT = [
    ("translate English to Spanish: the green trucks are new", "los camiones verdes son nuevos"),
    ("translate English to French: i find a heavy bag", "je trouve un sac lourd"),
    ("translate English to German: the fast father draws two modern cups", None),
    ("translate English to German: the green trucks are new", "die grünen Lastwagen sind neu"),
]


@pytest.fixture(autouse=True)
def offline_and_no_cache_touch(monkeypatch, isolated_hf_home):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("the Hub was asked"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("the Hub was asked"))
    yield
    assert not (isolated_hf_home / "hub").exists(), "the demo touched the Hugging Face cache"


def test_demo_resolves_from_the_package():
    resolved = loading.resolve_model("demo")
    assert resolved.source == "bundled demo"
    assert resolved.folder == loading.DEMO_FOLDER
    assert (resolved.folder / "model.safetensors").stat().st_size <= 15 * 1024 * 1024


@pytest.mark.parametrize("prompt, expected", [h for h in HELD_OUT if h[1]])
def test_demo_translates_held_out_sentences(prompt, expected):
    record = json_output(run_cli("generate", "-m", "demo", prompt, "--json"))
    assert record["output_text"] == expected


def test_demo_example_from_the_readme_and_its_crossing_alignment():
    record = json_output(run_cli("generate", "-m", "demo",
                                 "translate English to Spanish: the red house is small", "--json"))
    assert record["output_text"] == "la casa roja es pequeña"
    source = record["source_tokens"]
    steps = record["steps"]
    assert [step["token"] for step in steps[:3]] == ["la", "casa", "roja"]
    # "casa" looks at "house" and "roja" at "red": the alignment crosses the word order.
    looked = [source[max(range(len(step["cross_attention"])), key=step["cross_attention"].__getitem__)]
              for step in steps[1:3]]
    assert looked == ["house", "red"]


def test_demo_config_carries_task_prefixes():
    record = json_output(run_cli("info", "demo", "--json"))
    assert set(record["task_prefixes"].values()) == {"translate English to Spanish: ",
                                                     "translate English to French: ",
                                                     "translate English to German: "}
    assert record["source"] == "bundled demo"


@pytest.mark.parametrize("args", [
    ["info", "demo"],
    ["arch", "demo", "--depth", "3"],
    ["params", "demo", "--by", "layer"],
    ["params", "demo", "--weights"],
    ["trace", "-m", "demo", "translate English to German: the house is small", "--steps", "2"],
    ["trace", "-m", "demo", "translate English to German: the house is small", "--target", "das Haus ist klein"],
    ["generate", "-m", "demo", "translate English to French: the red house is small", "--num-beams", "3"],
])
def test_every_command_runs_on_the_demo(args):
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip()
    json_output(run_cli(*args, "--json"))


def test_demo_params_equal_a_real_load():
    from transformers import AutoModelForSeq2SeqLM

    record = json_output(run_cli("params", "demo", "--json"))
    assert record["total"] == AutoModelForSeq2SeqLM.from_pretrained(loading.DEMO_FOLDER).num_parameters()
