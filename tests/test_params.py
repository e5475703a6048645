"""`params`: totals equal transformers' own count after a real load, for every layout of the checkpoint."""

from __future__ import annotations


import pytest

from helpers import json_output, run_cli

from sparse_checkpoint import FLAN_T5_BASE, write_sparse_checkpoint  # noqa: E402


def _num_parameters(folder) -> int:
    from transformers import AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM.from_pretrained(folder).num_parameters()


@pytest.mark.parametrize("fixture", ["tiny_t5", "tiny_t5_untied", "tiny_t5_sharded", "tiny_t5_asym", "tiny_bart"])
def test_total_equals_num_parameters(request, fixture):
    folder = request.getfixturevalue(fixture)
    record = json_output(run_cli("params", str(folder), "--json"))
    assert isinstance(record["total"], int)
    assert record["total"] == _num_parameters(folder)
    assert record["counted_from"] == "safetensors headers"


@pytest.mark.parametrize("view", ["component", "layer", "type"])
def test_rows_add_up_to_the_total(tiny_t5_untied, view):
    record = json_output(run_cli("params", str(tiny_t5_untied), "--by", view, "--json"))
    assert record["by"] == view
    assert sum(row["params"] for row in record["rows"]) == record["total"]


def test_untied_head_is_counted_and_tied_embeddings_once(tiny_t5, tiny_t5_untied):
    tied = json_output(run_cli("params", str(tiny_t5), "--json"))
    untied = json_output(run_cli("params", str(tiny_t5_untied), "--json"))
    labels = [row["label"] for row in untied["rows"]]
    assert "lm_head" in labels
    assert "lm_head" not in [row["label"] for row in tied["rows"]]
    group = tied["tied"][0]
    assert group["stored_as"] == "shared.weight"
    assert set(group["shared_with"]) == {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight",
                                         "lm_head.weight"}


def test_component_rows_name_every_part(tiny_t5_untied, tiny_bart):
    t5 = {row["label"] for row in json_output(run_cli("params", str(tiny_t5_untied), "--json"))["rows"]}
    assert {"encoder self-attention", "encoder feed-forward", "encoder norm", "encoder relative position bias",
            "decoder self-attention", "decoder cross-attention", "decoder feed-forward", "decoder norm",
            "lm_head"} <= t5
    bart = {row["label"] for row in json_output(run_cli("params", str(tiny_bart), "--json"))["rows"]}
    assert {"encoder self-attention", "decoder cross-attention", "decoder feed-forward"} <= bart


def test_meta_model_count_agrees_with_header_count(tiny_t5_untied, tiny_bart):
    from t5peek import loading, params

    for folder in (tiny_t5_untied, tiny_bart):
        resolved = loading.resolve_model(str(folder))
        raw = loading.read_config(resolved)
        checkpoint = loading.read_checkpoint(resolved)
        meta = loading.build_meta_model(resolved, raw, checkpoint)
        assert sum(t.numel for t in params.tensors_from_model(meta)) == params.count(
            str(folder), raw, checkpoint, "component").total


def test_memory_and_stored_size(tiny_t5_untied):
    record = json_output(run_cli("params", str(tiny_t5_untied), "--json"))
    total = record["total"]
    assert record["memory_bytes"] == {"float32": 4 * total, "bfloat16/float16": 2 * total, "int8": total,
                                      "int4": -(-total // 2)}
    assert record["stored_bytes"] == 4 * total
    assert record["stored_dtype"] == "float32"


def test_weights_add_trainable_and_frozen(tiny_t5):
    record = json_output(run_cli("params", str(tiny_t5), "--weights", "--json"))
    assert record["trainable"] + record["frozen"] == record["total"] == _num_parameters(tiny_t5)


def test_flan_t5_base_shape_from_sparse_headers(tmp_path):
    """flan-t5-base's published count, from headers alone (the data is a hole on disk)."""
    folder = write_sparse_checkpoint(tmp_path / "flan-t5-base", FLAN_T5_BASE, shards=2)
    record = json_output(run_cli("params", str(folder), "--json"))
    assert record["total"] == 247_577_856
    from t5peek import loading

    resolved = loading.resolve_model(str(folder))
    raw = loading.read_config(resolved)
    meta = loading.build_meta_model(resolved, raw, loading.read_checkpoint(resolved))
    assert meta.num_parameters() == 247_577_856


def test_human_output_reads_at_100_columns(tiny_t5_untied):
    for view in ("component", "layer", "type"):
        result = run_cli("params", str(tiny_t5_untied), "--by", view)
        assert result.exit_code == 0, result.stderr
        assert all(len(line) <= 100 for line in result.stdout.splitlines())
        assert "total" in result.stdout


def test_bad_view_is_a_usage_error(tiny_t5):
    result = run_cli("params", str(tiny_t5), "--by", "colour")
    assert result.exit_code == 2
    assert "Traceback" not in result.stdout + result.stderr
