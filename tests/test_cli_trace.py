"""`t5peek trace` through the CLI: both views, JSON, stats, explanations, and clean usage errors."""

from __future__ import annotations

import pytest
from helpers import assert_clean_error, json_output, run_cli

PROMPT = "translate english to german : the red house is small"


def test_generation_view(tiny_t5):
    result = run_cli("trace", PROMPT, "-m", tiny_t5, "--steps", "2")
    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.stdout
    flat = " ".join(out.split())
    assert "greedy generation (inference view) · block view · float32 on cpu · eager attention" in out
    assert "prompt (11 tokens): translate 3" in out
    assert "encoder, runs once" in out and "decoder step 0" in out and "decoder step 1" in out
    assert "  block.0 " in out and "    SelfAttention " in out  # sublayers indented under blocks, by leaf name
    assert "self-attn" in out and "cross-attn" in out
    assert "cross-attention keys/values computed from the encoder output (4 k/v projections)" in flat
    assert "cross-attention keys/values reused from the cache (0 k/v projections)" in flat
    assert "self-attention cache 0 → 1 positions" in flat and "self-attention cache 1 → 2 positions" in flat
    assert "greedy decoding, one token per step" in out
    assert "eager mode" in flat
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "\x1b[" not in out  # NO_COLOR


def test_rendering_names_attention_kinds_and_caches(tiny_t5):
    """The renderer alone, on a wide fixed console, so that no cell wraps."""
    import io

    from rich.console import Console

    from t5peek import loading, trace
    from t5peek.render.trace import render_trace

    loaded = loading.load_model(loading.resolve_model(str(tiny_t5)), eager_attention=True)
    encoded = loaded.tokenizer(PROMPT, return_tensors="pt")
    report = trace.trace_forward(loaded.model, encoded["input_ids"], encoded["attention_mask"], steps=2,
                                 stop_at_eos=False, tokenizer=loaded.tokenizer, model_name="tiny", explain=True)
    console = Console(file=io.StringIO(), width=200, color_system=None)
    render_trace(report, console)
    out = console.file.getvalue()
    assert "self-attn weights 1×4×11×11" in out and "cross-attn weights 1×4×1×11" in out
    assert "self-attn weights 1×4×1×2" in out  # step 1: one query, two cached positions
    assert "cache self empty; cross empty" in out  # the root at step 0 gets an empty cache ...
    assert "cache self 2×k/v 1×4×1×8; cross 2×k/v 1×4×11×8" in out  # ... and returns it filled
    assert "ℹ Residual: " in out and "Relative position bias (T5)" in out
def test_teacher_forcing_view(tiny_bart):
    result = run_cli("trace", "the house is small", "-m", tiny_bart, "--target", "the red house")
    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.stdout
    assert "teacher forcing (training view)" in out
    assert "decoder input = labels shifted right by one" in out
    # position 0 is fed BART's decoder start token </s> (2) and must predict <s>; then the shift continues
    assert "0    </s> (2)              <s> (0)" in out
    assert "2    the (12)              red (14)" in out
    assert "loss " in out and "decoder step" not in out
    assert "encoder + decoder, one forward pass (teacher forcing)" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_json_generation(tiny_t5_asym):
    data = json_output(run_cli("trace", PROMPT, "-m", tiny_t5_asym, "--steps", "2", "--json"))
    assert data["view"] == "generation" and data["depth"] is None
    assert data["source_tokens"][0] == "translate" and data["source_ids"][0] == 3
    assert data["attention_implementation"] == "eager"
    assert [s["step"] for s in data["steps"]] == [0, 1][:len(data["steps"])]
    assert data["steps"][0]["self_cache_after"] == [1]  # one decoder layer, three encoder layers
    assert [p["kind"] for p in data["phases"]][:2] == ["encoder", "step"]
    encoder_blocks = [r for r in data["phases"][0]["records"] if r["role"] == "block"]
    assert len(encoder_blocks) == 3
    record = encoder_blocks[0]
    assert record["class"] == "T5Block" and record["module"] == "encoder.block.0"
    assert record["input_shapes"]["hidden_states"] == [1, 11, 32]
    assert record["output_shapes"]["hidden_states"] == [1, 11, 32]
    assert record["dtype"] == "float32" and record["device"] == "cpu" and record["time_ms"] >= 0
    assert record["stats"] is None
    root = data["phases"][1]["records"][0]
    name = "cache" if "cache" in root["output_shapes"] else "past_key_values"  # transformers' name up to 5.23
    cache = root["output_shapes"][name]
    assert cache["class"] == "EncoderDecoderCache" and len(cache["self_attention"]) == 1
    assert cache["cross_attention"][0]["keys"] == [1, 4, 11, 8]


def test_json_teacher_forcing_with_stats(tiny_t5):
    data = json_output(run_cli("trace", PROMPT, "-m", tiny_t5, "--target", "the blue house", "--stats",
                               "--depth", "2", "--json"))
    assert data["view"] == "teacher-forcing" and data["depth"] == 2
    assert data["labels"] == [11, 14, 16, 1]
    assert data["decoder_input_ids"] == [0, 11, 14, 16]  # T5 starts with <pad> (0)
    assert data["label_tokens"] == ["the", "blue", "house", "</s>"]
    records = data["phases"][0]["records"]
    modules = {r["module"] for r in records}  # depth 2: the model, its stacks, their children and blocks
    assert {"", "encoder", "encoder.embed_tokens", "decoder.block.1", "lm_head"} <= modules
    assert not any(".layer." in module for module in modules)
    block = next(r for r in records if r["module"] == "decoder.block.0")
    assert set(block["stats"]["hidden_states"]) == {"mean", "std", "abs_max", "nan", "inf"}
    assert data["first_nonfinite"] is None


def test_stats_flag_injected_inf(tiny_t5, monkeypatch):
    from t5peek import loading

    real = loading.load_model
    culprit = "decoder.block.0.layer.2.DenseReluDense"

    def load_with_overflow(*args, **kwargs):
        loaded = real(*args, **kwargs)

        def inject(module, inputs, output):
            return output.masked_fill(output > 0, float("inf"))

        loaded.model.get_submodule(culprit).register_forward_hook(inject)
        return loaded

    monkeypatch.setattr(loading, "load_model", load_with_overflow)
    result = run_cli("trace", PROMPT, "-m", tiny_t5, "--steps", "1", "--stats")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"first non-finite output: {culprit} (T5DenseActDense)" in result.stdout
    assert "inf" in result.stdout
    data = json_output(run_cli("trace", PROMPT, "-m", tiny_t5, "--steps", "1", "--stats", "--json"))
    assert data["first_nonfinite"]["module"] == culprit and data["first_nonfinite"]["phase"] == "decoder step 0"


def test_explain(tiny_bart):
    result = run_cli("trace", "the house is small", "-m", tiny_bart, "--steps", "1", "--explain")
    assert result.exit_code == 0, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    for fragment in ("Embedding: each token id", "Positional embedding", "Self-attention (encoder)",
                     "Masked self-attention (decoder)", "Cross-attention: queries come from the decoder",
                     "Feed-forward", "Layer norm", "Residual", "LM head", "softmax"):
        assert fragment in out, fragment


def test_depth_shows_more(tiny_t5):
    data = json_output(run_cli("trace", PROMPT, "-m", tiny_t5, "--steps", "1", "--depth", "5", "--json"))
    modules = {r["module"] for p in data["phases"] for r in p["records"]}
    assert "encoder.block.0.layer.0.SelfAttention.q" in modules
    assert "decoder.block.0.layer.1.EncDecAttention.k" in modules  # step 0 computes the cross keys


def test_help_documents_depth():
    result = run_cli("trace", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "counted from the model root" in text and "block view" in text


@pytest.mark.parametrize("args, fragment", [
    (["", ], "PROMPT is empty"),
    (["   "], "PROMPT is empty"),
    (["the house", "--depth", "-1"], "--depth must be 0 or more"),
    (["the house", "--steps", "-1"], "--steps must be at least 1"),
    (["the house", "--steps", "0"], "--steps must be at least 1"),
    (["the house", "--steps", "2", "--target", "das haus"], "give one or the other"),
    (["the house", "--target", ""], "--target is empty"),
])
def test_usage_errors(tiny_t5, args, fragment):
    result = run_cli("trace", *args, "-m", tiny_t5)
    assert_clean_error(result, 2, fragment)
    assert len(result.stderr.strip().splitlines()) <= 2  # the error line and at most a hint


def test_prompt_longer_than_bart_positions(tiny_bart, monkeypatch):
    from t5peek import loading

    def no_weights(*args, **kwargs):
        raise AssertionError("weights were loaded before the length was checked")

    monkeypatch.setattr(loading, "load_model", no_weights)
    result = run_cli("trace", " ".join(["house"] * 70), "-m", tiny_bart)
    assert_clean_error(result, 2, "72 tokens", "at most 64", "max_position_embeddings")
    result = run_cli("trace", "the house", "-m", tiny_bart, "--steps", "65")
    assert_clean_error(result, 2, "--steps 65")


def test_the_times_say_they_are_one_cold_pass(tiny_t5):
    """Block 0 timed at 38 ms beside an identical block 2 at 0.6 ms, with no word why (issue #24)."""
    data = json_output(run_cli("trace", PROMPT, "-m", tiny_t5, "--json"))
    assert any("one pass, cold" in note and "block 0" in note for note in data["notes"])


@pytest.mark.parametrize("width", [40, 60, 80, 100])
def test_the_prompt_line_never_splits_a_token_from_its_id(width):
    """At 80 columns the golden file held `… : 3  the` / `626  red 510 …` (issue #24)."""
    from helpers import run_t5peek

    run = run_t5peek("trace", "-m", "demo", "translate English to Spanish: the red house is small", "-n", "1",
                     env={"COLUMNS": str(width)})
    lines = run.stdout.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("prompt ("))
    block = []
    for line in lines[start:]:
        if block and not line[:1].isalnum() and not line.startswith("<") and not line.startswith("</"):
            break
        block.append(line)
        if line.rstrip().endswith("</s> 1"):
            break
    pairs = "  ".join(block).split(":", 1)[1].split("  ")  # a line break stands between two pairs
    assert all(len(pair.split()) == 2 and pair.split()[1].isdigit() for pair in pairs if pair.strip()), block
    assert all(len(line) <= width for line in block)
