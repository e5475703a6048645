"""Resolving MODEL: local folders, a hand-built Hub cache, Hub headers, and the safety of shard indexes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import assert_clean_error, json_output, run_cli
from t5peek import loading
from t5peek.checkpoint import read_local_checkpoint
from t5peek.errors import Refused

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_local_folder_resolves(tiny_t5):
    resolved = loading.resolve_model(str(tiny_t5))
    assert resolved.source == "local folder"
    assert resolved.folder == tiny_t5


def test_hub_id_resolves_from_cache_offline(hub_cache, tiny_t5):
    hub_cache("acme/tiny-t5", tiny_t5, COMMIT)
    record = json_output(run_cli("info", "acme/tiny-t5", "--offline", "--json"))
    assert record["source"] == "Hub cache"
    assert record["commit"] == COMMIT
    assert record["model_type"] == "t5"
    assert record["total"] > 0


def test_hub_cache_params_match_local(hub_cache, tiny_t5_untied):
    hub_cache("acme/tiny-flan", tiny_t5_untied, COMMIT)
    from_cache = json_output(run_cli("params", "acme/tiny-flan", "--offline", "--json"))
    local = json_output(run_cli("params", str(tiny_t5_untied), "--json"))
    assert from_cache["total"] == local["total"]


def test_hub_cache_weights_load_offline(hub_cache, tiny_t5):
    hub_cache("acme/tiny-t5", tiny_t5, COMMIT)
    record = json_output(run_cli("params", "acme/tiny-t5", "--offline", "--weights", "--json"))
    assert record["counted_from"] == "loaded weights"


def test_hub_headers_when_weights_not_downloaded(loophub, tiny_t5_untied):
    """Nothing cached: config.json and the safetensors headers come from the Hub, the weights do not."""
    loophub.add_repo("acme/flan-like", tiny_t5_untied)
    record = json_output(run_cli("params", "acme/flan-like", "--json"))
    assert record["total"] == json_output(run_cli("params", str(tiny_t5_untied), "--json"))["total"]
    assert record["counted_from"] == "safetensors headers"
    full_downloads = [p for p in loophub.paths() if p.startswith("GET") and p.endswith("model.safetensors")]
    assert full_downloads == []  # only Range reads of the header


def test_unreachable_headers_fall_back_to_config(monkeypatch, hub_cache, tiny_t5, tmp_path):
    import shutil


    config_only = tmp_path / "config-only"
    config_only.mkdir()
    shutil.copy(tiny_t5 / "config.json", config_only / "config.json")
    hub_cache("acme/no-headers", config_only, COMMIT)
    record = json_output(run_cli("params", "acme/no-headers", "--offline", "--json"))
    assert record["counted_from"] == "config only"
    assert any("config.json alone" in note for note in record["notes"])
    assert record["total"] == json_output(run_cli("params", str(tiny_t5), "--json"))["total"]


def test_demo_name_is_not_looked_up_on_the_hub(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("Hub was asked"))
    assert loading.resolve_model("demo").source == "bundled demo"


@pytest.mark.parametrize("shard_name", ["../outside.safetensors", "/etc/passwd"])
def test_shard_index_escaping_the_folder_is_refused(copy_model, tiny_t5_sharded, shard_name):
    folder = copy_model(tiny_t5_sharded)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = shard_name
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(Refused):
        read_local_checkpoint(folder)
    assert_clean_error(run_cli("params", str(folder)), 3, "outside the model folder")


def test_shard_symlink_out_of_the_folder_is_refused(copy_model, tiny_t5_sharded, tmp_path):
    folder = copy_model(tiny_t5_sharded)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shard = sorted(set(index["weight_map"].values()))[0]
    outside = tmp_path / "elsewhere.safetensors"
    (folder / shard).rename(outside)
    os.symlink(outside, folder / shard)
    assert_clean_error(run_cli("params", str(folder)), 3, "outside the model folder")


@pytest.mark.installed
def test_help_and_version_do_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from t5peek.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
            "r = CliRunner().invoke(app, ['--version']); assert r.exit_code == 0; "
            "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.installed
def test_python_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "t5peek", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("t5peek ")


def test_help_has_examples():
    result = run_cli("--help")
    assert result.exit_code == 0
    assert "Examples" in result.stdout
    for command in ("info", "arch", "params", "trace", "generate"):
        assert command in result.stdout


def test_model_given_twice_is_a_usage_error(tiny_t5, tiny_bart):
    assert_clean_error(run_cli("info", str(tiny_t5), "-m", str(tiny_bart)), 2, "MODEL given twice")


def test_json_is_one_document_and_messages_go_to_stderr(tiny_t5):
    result = run_cli("info", str(tiny_t5), "--json")
    json.loads(result.stdout)


def test_info_on_local_t5_and_bart(tiny_t5, tiny_t5_untied, tiny_bart):
    t5 = json_output(run_cli("info", str(tiny_t5), "--json"))
    assert (t5["model_type"], t5["encoder_layers"], t5["decoder_layers"], t5["d_model"], t5["heads"],
            t5["d_ff"], t5["activation"], t5["head"]) == ("t5", 2, 2, 32, 4, 64, "relu", "tied")
    assert t5["source"] == "local folder" and t5["stored_dtype"] == "float32"
    flan = json_output(run_cli("info", str(tiny_t5_untied), "--json"))
    assert (flan["activation"], flan["head"]) == ("gated-gelu", "untied")
    bart = json_output(run_cli("info", str(tiny_bart), "--json"))
    assert (bart["model_type"], bart["family"], bart["max_positions"], bart["head"]) == ("bart", "bart", 64, "tied")


def test_info_shows_task_prefixes(copy_model, tiny_t5):
    folder = copy_model(tiny_t5)
    config = json.loads((folder / "config.json").read_text())
    config["task_specific_params"] = {"translation_en_to_de": {"prefix": "translate English to German: "}}
    (folder / "config.json").write_text(json.dumps(config))
    record = json_output(run_cli("info", str(folder), "--json"))
    assert record["task_prefixes"] == {"translation_en_to_de": "translate English to German: "}
    human = run_cli("info", str(folder))
    assert "translate English to German" in human.stdout


def test_human_info_reads_at_100_columns(tiny_t5):
    result = run_cli("info", str(tiny_t5))
    assert result.exit_code == 0
    assert all(len(line) <= 100 for line in result.stdout.splitlines())
    assert "\x1b[" not in result.stdout


def test_config_json_of_a_type_transformers_refuses_is_one_line(copy_model, tiny_t5):
    """transformers' strict check of config.json (a token id of the wrong type) was an unexpected error in arch,
    and blamed on the tokenizer in the commands that tokenize."""
    import json

    from helpers import assert_known_outcome, run_t5peek

    folder = copy_model(tiny_t5)
    config = json.loads((folder / "config.json").read_text())
    config["pad_token_id"] = "x"
    (folder / "config.json").write_text(json.dumps(config))
    for args in (("arch", str(folder)), ("generate", "-m", str(folder), "translate English to German : the house")):
        run = run_t5peek(*args)
        assert_known_outcome(run, 1, "config", "pad_token_id", "'x'")
        assert "tokenizer" not in run.stderr
