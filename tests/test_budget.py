"""`t5peek budget`: the installed script on the demo and an 11B-shaped sparse checkpoint, usage errors, MoE, and the
pure pre-check estimate. The numbers themselves are checked against torch in test_budget_oracle.py."""

from __future__ import annotations

import pytest

from helpers import assert_known_outcome, run_t5peek
from sparse_checkpoint import T5_XXL_11B, write_sparse_checkpoint  # noqa: E402
from t5peek.api import Model

ENV_80 = {"COLUMNS": "80", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def sparse_11b(tmp_path_factory):
    return write_sparse_checkpoint(tmp_path_factory.mktemp("models") / "t5-11b", T5_XXL_11B, shards=5,
                                   dtype="bfloat16")


def test_demo_json_carries_every_number_as_an_integer():
    run = run_t5peek("budget", "-m", "demo", "--batch", "2", "--source", "16", "--target", "9", "--num-beams", "3",
                     "--json")
    assert_known_outcome(run, 0)
    doc = run.json()
    assert doc["command"] == "budget" and doc["parameters"] == 1470976
    rows = {row["key"]: row for row in doc["rows"]}
    # 2 × 3 decoder layers × (2·3 rows) × 8 heads × 16 d_kv × 16 source positions × 4 bytes
    assert rows["cross_attention_cache"]["bytes"] == 2 * 3 * 6 * 8 * 16 * 16 * 4
    assert rows["self_attention_cache"]["bytes"] == 2 * 3 * 6 * 8 * 16 * 9 * 4
    assert all(isinstance(row["bytes"] if row["bytes"] is not None else row["flops"], int) for row in doc["rows"]
               if row["key"] != "available" or row["bytes"] is not None)
    assert isinstance(doc["needed_bytes"], int) and doc["fits"] is True


def test_demo_table_reads_at_80_columns():
    run = run_t5peek("budget", "-m", "demo", "--mode", "train", "--batch", "8", "--source", "64", "--target", "32",
                     "--gradient-checkpointing", env=ENV_80)
    assert_known_outcome(run, 0)
    lines = run.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, run.stdout
    for group in ("Weights", "Fine-tuning", "FLOPs", "Fit"):
        assert any(line.strip() == group for line in lines), run.stdout
    assert "optimizer state" in run.stdout and "fit:" in run.stdout


def test_11b_sparse_checkpoint_is_budgeted_from_headers_alone(sparse_11b):
    run = run_t5peek("budget", str(sparse_11b), "--source", "512", "--target", "128", "--json")
    assert_known_outcome(run, 0)
    params = run_t5peek("params", str(sparse_11b), "--json")
    doc = run.json()
    assert doc["parameters"] == params.json()["total"]  # tied weights counted once, as params counts them
    assert doc["dtype"] == "bfloat16" and doc["rows"][0]["key"] == "weights_stored"
    assert run.seconds < 30
    table = run_t5peek("budget", str(sparse_11b), "--mode", "train", "--optimizer", "adafactor", env=ENV_80)
    assert_known_outcome(table, 0)
    assert max(len(line) for line in table.stdout.splitlines()) <= 80, table.stdout


def test_the_default_path_imports_no_torch(sparse_11b):
    import subprocess
    import sys

    code = ("import sys; from t5peek.api import Model; Model(sys.argv[1]).budget(source=64, target=8); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(sparse_11b)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("args,fragment", [
    (["--batch", "0"], "--batch must be between"),
    (["--source", "100000"], "--source must be between"),
    (["--num-beams", "65"], "--num-beams must be between"),
    (["--mode", "train", "--num-beams", "2"], "--num-beams applies to --mode generate"),
])
def test_usage_errors_exit_2_in_one_line(args, fragment):
    run = run_t5peek("budget", "-m", "demo", *args)
    assert_known_outcome(run, 2, fragment)


def test_learned_position_table_bounds_the_source(tiny_bart):
    from t5peek.errors import UsageError

    with pytest.raises(UsageError, match="reads at most 64"):
        Model(str(tiny_bart)).budget(source=65, target=4)


def test_mixture_of_experts_counts_active_parameters(tmp_path):
    from families import build_switch

    folder = build_switch(tmp_path / "switch")
    report = Model(str(folder)).budget(source=8, target=4)
    params = Model(str(folder)).params()
    assert report.parameters == params.total
    experts = sum(row.params for row in params.rows if "experts" in row.label)
    assert report.active_parameters == report.parameters - experts * 3 // 4  # 1 of 4 experts per token
    assert any("mixture of experts" in note for note in report.notes)


def test_estimate_generate_peak_is_the_batch_1_generate_peak():
    from t5peek.budget.run import estimate_generate_peak

    demo = Model("demo")
    s = demo.session
    estimate = estimate_generate_peak(s.config, s.checkpoint, 16, 9)
    assert estimate == demo.budget(batch=1, source=16, target=9).inference_peak_bytes
    assert estimate_generate_peak(s.config, s.checkpoint, 16, 9, num_beams=4) > estimate
