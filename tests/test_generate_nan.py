"""Hostile inputs for `generate` (issue #17): NaN everywhere in a greedy run, and generation settings from the model's
files that no run could follow (num_beams -3, 0, 10**9; lengths out of bounds)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import assert_clean_error, assert_known_outcome, run_cli, run_t5peek

DEMO = Path(__file__).resolve().parent.parent / "src" / "t5peek" / "demo"
PROMPT = "translate English to Spanish: the red house is small"


@pytest.fixture(scope="module")
def overflowing(tmp_path_factory) -> Path:
    """Finite weights that overflow float32: the encoder's output is ~3e38 per feature, so attention scores over it
    are inf - inf = NaN, and so are the cross-attention weights and every logit."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("nan") / "model"
    shutil.copytree(DEMO, folder)
    tensors = load_file(folder / "model.safetensors")
    weight = tensors["encoder.final_layer_norm.weight"]
    tensors["encoder.final_layer_norm.weight"] = torch.full_like(weight, 3e38)
    assert all(torch.isfinite(t).all() for t in tensors.values())  # past the check for inf/NaN weights
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def test_greedy_on_nan_prints_every_step_and_marks_the_map(overflowing):
    run = run_t5peek("generate", "-m", str(overflowing), PROMPT, "-n", "3",
                     env={"COLUMNS": "80", "NO_COLOR": "1", "T5PEEK_ASCII": "1"})
    assert_known_outcome(run, 0)
    out = run.stdout
    assert "step 2" in out and "note: From step 0 on the scores are NaN" in out
    heatmap = out[out.index("cross-attention - decoder layer"):]
    rows = [line for line in heatmap.splitlines() if line.count("|") == 2]
    assert len(rows) == 3 and all(set(row.split("|")[1]) == {"?"} for row in rows)
    assert "? not a number" in heatmap


def test_nan_run_as_json_and_html(overflowing, tmp_path):
    run = run_t5peek("generate", "-m", str(overflowing), PROMPT, "-n", "2", "--json", "--self", "--occlusion",
                     "--html", str(tmp_path / "r.html"))
    record = run.json()
    assert record["steps"][0]["cross_attention"][0] == "nan"
    assert record["occlusion"]["rows"][0]["attention_index"] is None
    assert (tmp_path / "r.html").stat().st_size > 0


def _with_generation_config(tmp_path: Path, **values) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(DEMO, folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config.update(values)
    (folder / "generation_config.json").write_text(json.dumps(config))
    return folder


def test_negative_num_beams_in_generation_config_is_a_bad_model_file(tmp_path):
    folder = _with_generation_config(tmp_path, num_beams=-3)
    run = run_t5peek("generate", "-m", str(folder), PROMPT)
    assert_known_outcome(run, 1, "generation_config.json", "num_beams", "-3", "1 to 64")
    assert "step 0" not in run.stdout


@pytest.mark.parametrize("values, fragments", [
    ({"num_beams": 0}, ("num_beams", "0")),
    ({"num_beams": 10**9}, ("num_beams", "1,000,000,000", "1 to 64")),
    ({"num_beams": "four"}, ("num_beams", "'four'")),
    ({"max_new_tokens": 10**9}, ("max_new_tokens", "1,000,000,000", "1 to 2,048")),
    ({"max_length": 10**9}, ("max_length", "1,000,000,000")),
    ({"max_length": 1}, ("max_length", "at least one new token")),
], ids=["beams-0", "beams-1e9", "beams-str", "max-new-tokens", "max-length", "max-length-1"])
def test_generation_config_out_of_bounds(tmp_path, values, fragments):
    folder = _with_generation_config(tmp_path, **values)
    assert_clean_error(run_cli("generate", "-m", str(folder), PROMPT), 1, "generation_config.json", *fragments)


def test_the_command_line_overrides_a_bad_file_value(tmp_path):
    folder = _with_generation_config(tmp_path, num_beams=-3)
    result = run_cli("generate", "-m", str(folder), PROMPT, "--num-beams", "2", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["settings"]["num_beams"]["value"] == 2


def test_task_params_name_config_json(tmp_path):
    folder = _with_generation_config(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["task_specific_params"]["translation_en_to_es"]["num_beams"] = -3
    (folder / "config.json").write_text(json.dumps(config))
    assert_clean_error(run_cli("generate", "-m", str(folder), PROMPT, "--task-params"), 1,
                       "config.json (task_specific_params.translation_en_to_es.num_beams)", "-3")
