"""`t5peek trace` as a reader sees it: whole names at 80 columns, repeated blocks and later decoder steps collapsed
(while --json keeps every record), the cross-attention cache at --depth 5, explanations that follow the config.

The behaviour is checked on the installed script in a fresh process; the records behind it, in process."""

from __future__ import annotations

import re

import pytest
from helpers import assert_known_outcome, run_t5peek

PROMPT = "translate the red house is small"


def trace(*args, columns: int = 80, json_mode: bool = False):
    run = run_t5peek("trace", *map(str, args), *(["--json"] if json_mode else []), env={"COLUMNS": str(columns)})
    assert_known_outcome(run, 0)
    return run.json() if json_mode else run.stdout


def leaf(module: str) -> str:
    """The name a reader should find whole: the last part of the path; `block.3` for a numbered one."""
    head, _, name = module.rpartition(".")
    return f"{head.rpartition('.')[2]}.{name}" if name.isdigit() and head else name


def whole(name: str, text: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", text) is not None


def sections(text: str) -> dict[str, str]:
    """Phase name → its part of the output (from its rule line to the next phase or the summary)."""
    parts = re.split(r"^((?:encoder, runs once|decoder step \d+|encoder \+ decoder, one forward pass.*?) · .*)$",
                     text, flags=re.M)
    return {parts[i].split(" · ")[0]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


@pytest.fixture(scope="module")
def deep_t5(tmp_path_factory):
    """flan-t5-small's shape in miniature: 8 blocks a stack, gated-gelu feed-forward."""
    from support.builders import make_t5

    return make_t5(tmp_path_factory.mktemp("models") / "deep-t5", num_layers=8, feed_forward_proj="gated-gelu")


def family_model(tmp_path_factory, name: str):
    """The family's tiny checkpoint, with the seed that makes greedy decoding run 5 steps on its prompt."""
    from families import by_name

    return by_name(name).make(tmp_path_factory.mktemp("models") / name)


@pytest.fixture(scope="module")
def tiny_mbart(tmp_path_factory):
    return family_model(tmp_path_factory, "mbart")


@pytest.fixture(scope="module")
def long_bart(tmp_path_factory):
    return family_model(tmp_path_factory, "bart")


# --------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize("depth", [None, 5])
def test_no_name_is_folded_at_80_columns(tiny_t5, depth):
    """Every module's own name and class appear whole, indented by depth, and no line passes 80 columns."""
    extra = [] if depth is None else ["--depth", depth]
    text = trace("-m", tiny_t5, PROMPT, "-n", 2, *extra)
    data = trace("-m", tiny_t5, PROMPT, "-n", 2, *extra, json_mode=True)
    records = [r for phase in data["phases"] for r in phase["records"]]
    assert max(len(line) for line in text.splitlines()) <= 80
    for name in {leaf(r["module"]) for r in records if r["module"]}:
        assert whole(name, text), name
    for cls in {r["class"] for r in records if r["module"]}:
        assert whole(cls, text), cls
    assert not re.search(r"^\s*(layer|encoder|decoder)\.\S*\.", text, flags=re.M)  # leaf names, not dotted paths
    # indented by depth: a sublayer two spaces deeper than its block
    block = re.search(r"^( *)block\.0 ", text, flags=re.M).group(1)
    assert re.search(rf"^{block}  SelfAttention ", text, flags=re.M) or \
        re.search(rf"^{block}  layer\.0 ", text, flags=re.M)


def test_wide_console_keeps_a_class_column(tiny_t5):
    text = trace("-m", tiny_t5, PROMPT, "-n", 1, columns=120)
    assert re.search(r"^module +class +inputs → outputs +ms", text, flags=re.M)
    assert max(len(line) for line in text.splitlines()) <= 120


# --------------------------------------------------------------------------------------------- collapsing


def test_repeated_blocks_and_later_steps_collapse_while_json_keeps_every_record(deep_t5):
    text = trace("-m", deep_t5, PROMPT, "-n", 3, columns=120)
    data = trace("-m", deep_t5, PROMPT, "-n", 3, json_mode=True)
    phases = data["phases"]
    assert [p["kind"] for p in phases] == ["encoder", "step", "step", "step"]
    blocks = [[r["module"] for r in p["records"] if r["role"] == "block"] for p in phases]
    assert blocks[0] == [f"encoder.block.{i}" for i in range(8)]
    assert all(b == [f"decoder.block.{i}" for i in range(8)] for b in blocks[1:])
    assert len(phases[3]["records"]) == len(phases[1]["records"])  # --json keeps every call of every step
    records = sum(len(p["records"]) for p in phases)
    lines = text.splitlines()
    assert len(lines) < records * 0.75, f"{len(lines)} lines for {records} records"  # was more lines than records
    shown = sections(text)
    # block 0 holds the relative position bias, so block 1 is shown too; blocks 2-7 are the same as block 1
    assert re.search(r"block\.2–7 × 6 +T5Block +same as block\.1", shown["encoder, runs once"])
    assert re.search(r"block\.2–7 × 6 +T5Block +same as block\.1", shown["decoder step 0"])
    for step in ("decoder step 1", "decoder step 2"):
        later = shown[step]
        assert f"only what differs from decoder step {int(step[-1]) - 1} is listed" in " ".join(later.split())
        assert "lm_head" not in later and "layer_norm" not in later  # unchanged: not repeated
        assert "self-attn weights 1×4×1×" in later  # the keys grow with the cache


def test_stats_are_shown_for_every_step(tiny_t5):
    """With --stats each value is the point: later steps are listed in full."""
    shown = sections(trace("-m", tiny_t5, PROMPT, "-n", 2, "--stats", columns=120))
    assert "lm_head" in shown["decoder step 1"] and "only what differs" not in shown["decoder step 1"]


# --------------------------------------------------------------------------------------------- the cache


@pytest.mark.parametrize("columns", [80, 120])
def test_depth_5_says_cross_keys_and_values_come_from_the_cache(tiny_t5, columns):
    shown = sections(trace("-m", tiny_t5, PROMPT, "-n", 3, "--depth", 5, columns=columns))
    sentence = "k, v: not computed, read from the cache"
    assert sentence not in shown["decoder step 0"]
    for step in ("decoder step 1", "decoder step 2"):
        later = shown[step]
        assert later.count(sentence) == 2, later  # once in each of the two decoder blocks
        # under the cross-attention, between the projections that did run
        assert re.search(r"EncDecAttention[\s\S]*?\n +q +Linear[\s\S]*?k, v: not computed[\s\S]*?\n +o +Linear", later)


def test_depth_5_cache_sentence_names_bart_projections(long_bart):
    from families import PROMPT as FAMILY_PROMPT

    shown = sections(trace("-m", long_bart, FAMILY_PROMPT, "-n", 2, "--depth", 5, columns=100))
    assert "k_proj, v_proj: not computed, read from the cache" in shown["decoder step 1"]
    assert "not computed" not in shown["decoder step 0"]


# --------------------------------------------------------------------------------------------- explanations


def test_explain_follows_a_gated_t5(deep_t5):
    text = " ".join(trace("-m", deep_t5, PROMPT, "-n", 1, "--explain", columns=100).split())
    assert "Feed-forward, gated (gelu_new)" in text and "(wi_0)" in text and "(wi_1)" in text and "(wo)" in text
    assert "two-layer MLP" not in text
    assert "RMS norm (T5LayerNorm)" in text and "no mean is subtracted and there is no bias" in text
    assert "before each sublayer (pre-norm)" in text
    assert "BART" not in text


def test_explain_follows_a_plain_t5(tiny_t5):
    data = trace("-m", tiny_t5, PROMPT, "-n", 1, "--explain", json_mode=True)
    assert data["design"] == {"gated_feed_forward": False, "activation": "relu", "norm": "T5LayerNorm",
                              "rms_norm": True, "pre_norm": True}
    assert data["explanations"]["feed-forward"].startswith("Feed-forward: a two-layer MLP (d_model → d_ff, relu")


def test_explain_says_mbart_normalises_first(tiny_mbart):
    text = " ".join(trace("-m", tiny_mbart, "the red house is small", "-n", 1, "--explain", columns=100).split())
    assert "Layer norm (LayerNorm): subtracts each token's mean" in text
    assert "before each sublayer (pre-norm): x + sublayer(norm(x))" in text
    assert "post-norm" not in text and "T5" not in text


def test_explain_says_bart_normalises_after(tiny_bart):
    data = trace("-m", tiny_bart, "the red house is small", "-n", 1, "--explain", json_mode=True)
    assert data["design"]["pre_norm"] is False and data["design"]["rms_norm"] is False
    assert "after each sublayer's residual add (post-norm): norm(x + sublayer(x))" in data["explanations"]["norm"]
    assert "T5" not in data["explanations"]["norm"]


# --------------------------------------------------------------------------------------------- the records behind it


@pytest.mark.parametrize("family, pre_norm", [("bart", False), ("mbart", True), ("marian", False),
                                              ("pegasus", True), ("t5 (v1.0)", True)])
def test_pre_norm_is_what_transformers_runs(tmp_path, family, pre_norm):
    """The placement comes from the order in which the first block calls its norm and its first projection."""
    from families import by_name

    from t5peek import loading, trace as core

    loaded = loading.load_model(loading.resolve_model(str(by_name(family).make(tmp_path / "m"))),
                                eager_attention=True)
    encoded = loaded.tokenizer("the red house is small", return_tensors="pt")
    for depth in (None, 2):  # whatever the records shown
        report = core.trace_forward(loaded.model, encoded["input_ids"], encoded["attention_mask"], steps=1,
                                    depth=depth)
        assert report.design.pre_norm is pre_norm


def test_phase_helpers(tiny_t5):
    from t5peek import loading, trace as core

    loaded = loading.load_model(loading.resolve_model(str(tiny_t5)), eager_attention=True)
    encoded = loaded.tokenizer(PROMPT, return_tensors="pt")
    report = core.trace_forward(loaded.model, encoded["input_ids"], encoded["attention_mask"], steps=3, depth=5,
                                stop_at_eos=False)
    encoder, step0, step1, step2 = report.phases
    blocks = [r for r in encoder.records if r.role == core.BLOCK]
    assert [len(run) for run in encoder.runs(blocks)] == [1, 1]  # block 0 holds the position bias
    assert [r.leaf for r in blocks] == ["block.0", "block.1"]
    assert step0.cached_projections(step0) == {}
    noted = step1.cached_projections(step0)
    assert len(noted) == 2 and all(names == ["k", "v"] and after == {"o"} for names, after in noted.values())
    assert {step1.records[i].module for i in noted} == {f"decoder.block.{i}.layer.1.EncDecAttention" for i in (0, 1)}
    changed = {step2.records[i].module for i in step2.changed_since(step1)}
    assert "decoder.block.0.layer.0.SelfAttention" in changed and "lm_head" not in changed
    assert not any(module.endswith(".q") for module in changed)
