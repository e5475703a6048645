"""On a GPU: the same tokens and shapes as on the CPU (skipped where CUDA is missing)."""

from __future__ import annotations

import pytest

from helpers import assert_known_outcome, run_t5peek

PROMPT = "translate English to Spanish: the red house is small"


@pytest.fixture(autouse=True)
def needs_cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")


@pytest.mark.device
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_generate_on_cuda_matches_the_cpu_in_float32(dtype):
    cpu = run_t5peek("generate", "-m", "demo", PROMPT, "--max-new-tokens", "8", "--json")
    gpu = run_t5peek("generate", "-m", "demo", PROMPT, "--max-new-tokens", "8", "--json", "--device", "cuda",
                     "--dtype", dtype)
    assert_known_outcome(cpu, 0)
    assert_known_outcome(gpu, 0)
    if dtype == "float32":
        assert gpu.json()["output_ids"] == cpu.json()["output_ids"]
    else:
        assert gpu.json()["output_ids"][:3] == cpu.json()["output_ids"][:3]


@pytest.mark.device
def test_trace_on_cuda_names_the_device():
    run = run_t5peek("trace", "-m", "demo", PROMPT, "-n", "1", "--device", "cuda", "--json")
    assert_known_outcome(run, 0)
    assert "cuda" in run.stdout
