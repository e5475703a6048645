"""`arch`: the module tree on the meta device, collapsed runs, odd-block notes, depth and JSON schema."""

from __future__ import annotations


from helpers import json_output, run_cli

from sparse_checkpoint import FLAN_T5_BASE, write_sparse_checkpoint  # noqa: E402

NODE_KEYS = {"name", "path", "class", "params", "shapes", "summary", "repeat", "role", "tied_to", "tied_params",
             "tied_sources", "differs", "children", "hidden_children"}


def _find(node, path):
    if node["path"] == path:
        return node
    for child in node["children"]:
        found = _find(child, path)
        if found:
            return found
    return None


def _walk(node):
    yield node
    for child in node["children"]:
        yield from _walk(child)


def test_json_schema_and_total(tiny_t5_untied):
    from transformers import AutoModelForSeq2SeqLM

    record = json_output(run_cli("arch", str(tiny_t5_untied), "--json"))
    assert record["model_class"] == "T5ForConditionalGeneration"
    assert record["total"] == AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_untied).num_parameters()
    for node in _walk(record["root"]):
        assert set(node) == NODE_KEYS
        assert isinstance(node["params"], int) and isinstance(node["repeat"], int)


def test_identical_blocks_collapse_and_the_odd_one_says_why(tiny_t5_sharded):
    record = json_output(run_cli("arch", str(tiny_t5_sharded), "--json"))
    blocks = _find(record["root"], "encoder.block")
    assert [(c["name"], c["repeat"]) for c in blocks["children"]] == [("0", 1), ("1-2", 2)]
    first = blocks["children"][0]
    assert "relative_attention_bias" in first["differs"]
    assert "(1-2)" in first["differs"]
    human = run_cli("arch", str(tiny_t5_sharded), "--depth", "3")
    assert "(1-2): 2 × T5Block" in human.stdout
    assert "relative_attention_bias" in human.stdout


def test_expand_turns_collapsing_off(tiny_t5_sharded):
    record = json_output(run_cli("arch", str(tiny_t5_sharded), "--expand", "--json"))
    blocks = _find(record["root"], "encoder.block")
    assert [c["name"] for c in blocks["children"]] == ["0", "1", "2"]


def test_depth_limits_the_tree(tiny_t5):
    record = json_output(run_cli("arch", str(tiny_t5), "--depth", "1", "--json"))
    assert {c["name"] for c in record["root"]["children"]} == {"shared", "encoder", "decoder", "lm_head"}
    encoder = _find(record["root"], "encoder")
    assert encoder["children"] == [] and encoder["hidden_children"] > 0


def test_module_lists_do_not_use_up_depth(tiny_t5):
    record = json_output(run_cli("arch", str(tiny_t5), "--depth", "2", "--json"))
    block = _find(record["root"], "encoder.block.0")
    assert block is not None and block["children"] == [] and block["hidden_children"] == 1


def test_negative_depth_is_a_usage_error(tiny_t5):
    result = run_cli("arch", str(tiny_t5), "--depth", "-1")
    assert result.exit_code == 2
    assert "Traceback" not in result.stdout + result.stderr


def test_leaf_summaries_and_tied_embeddings(tiny_t5, tiny_t5_untied):
    tied = json_output(run_cli("arch", str(tiny_t5), "--json"))
    assert _find(tied["root"], "lm_head")["tied_to"] == {"weight": "shared.weight"}
    q = _find(tied["root"], "encoder.block.0.layer.0.SelfAttention.q")
    assert q["summary"] == "Linear(32 → 32, no bias)" and q["shapes"] == {"weight": [32, 32]}
    untied = json_output(run_cli("arch", str(tiny_t5_untied), "--json"))
    assert _find(untied["root"], "lm_head")["tied_to"] == {}


def test_bart_tree(tiny_bart):
    record = json_output(run_cli("arch", str(tiny_bart), "--json"))
    assert record["model_class"] == "BartForConditionalGeneration"
    assert _find(record["root"], "model.decoder.layers.0.encoder_attn")["role"] == "cross-attention"
    assert _find(record["root"], "model.decoder.layers.0.self_attn")["role"] == "self-attention"


def test_flan_t5_base_shape_without_weights(tmp_path):
    folder = write_sparse_checkpoint(tmp_path / "flan-t5-base", FLAN_T5_BASE)
    record = json_output(run_cli("arch", str(folder), "--depth", "3", "--json"))
    assert record["total"] == 247_577_856
    blocks = _find(record["root"], "decoder.block")
    assert [(c["name"], c["repeat"]) for c in blocks["children"]] == [("0", 1), ("1-11", 11)]
    human = run_cli("arch", str(folder), "--depth", "5")
    assert "(1-11): 11 × T5Block" in human.stdout
    assert "Linear(768 → 2048, no bias)" in human.stdout
    assert all(len(line) <= 100 for line in human.stdout.splitlines())


def test_no_shapes_leaves_out_every_shape():
    """`--no-shapes` printed exactly what `arch` prints: the sizes come from the module summaries too."""
    from helpers import run_cli

    with_shapes = run_cli("arch", "demo", "--depth", "6").stdout
    without = run_cli("arch", "demo", "--depth", "6", "--no-shapes").stdout
    assert "Embedding(719, 128)" in with_shapes and "Linear(128 → 128, no bias)" in with_shapes
    assert without != with_shapes
    assert "Embedding(719, 128)" not in without and "128 →" not in without
    assert "(shared): Embedding  92K" in without and "(q): Linear  16.4K" in without


def test_bart_cross_attention_is_named_in_the_tree(tiny_bart):
    """BART names its cross-attention `encoder_attn: BartAttention`; the tree says what it is (T5's names do)."""
    from helpers import run_cli

    lines = run_cli("arch", tiny_bart, "--depth", "5").stdout.splitlines()
    cross = [line for line in lines if "(encoder_attn):" in line]
    assert cross and all("cross-attention" in line for line in cross)
    assert not any("cross-attention" in line for line in lines if "(self_attn):" in line)
