"""One rule for the dtype a run computes in: loading, the memory check before it, the device plan and `budget`
all follow `t5peek.dtypes.compute_dtype`, with the device resolved first (auto on a machine without CUDA is the
CPU)."""

from __future__ import annotations

import pytest

from t5peek.dtypes import compute_dtype


@pytest.mark.parametrize("asked, stored, device, expected", [
    ("auto", "float16", "cpu", "float32"),  # slow, and T5 overflows in it
    ("auto", "float16", "cuda", "float16"),
    ("auto", "bfloat16", "cpu", "bfloat16"),
    ("auto", "float64", "cpu", "float32"),  # not a dtype t5peek computes in
    ("auto", None, "cuda", "float32"),
    ("float16", "float32", "cpu", "float16"),  # asked for: as asked
    ("bfloat16", "float16", "cuda", "bfloat16"),
])
def test_the_rule(asked, stored, device, expected):
    assert compute_dtype(asked, stored, device) == expected


@pytest.fixture(scope="module")
def half_t5(tiny_t5, tmp_path_factory):
    from transformers import AutoModelForSeq2SeqLM

    folder = tmp_path_factory.mktemp("models") / "half-t5"
    AutoModelForSeq2SeqLM.from_pretrained(str(tiny_t5)).half().save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "spiece.model"):
        if (tiny_t5 / name).is_file():
            (folder / name).write_bytes((tiny_t5 / name).read_bytes())
    return folder


def test_the_memory_check_and_the_device_plan_use_the_dtype_loading_uses(half_t5):
    """A float16 checkpoint with --device auto on a machine without CUDA loads in float32: the memory check and
    the --max-memory plan count float32 too (they counted float16, half the bytes)."""
    import torch

    from t5peek import loading
    from t5peek.budget.run import estimate_generate_peak
    from t5peek.session import RunOptions, RunShape, Session, SourceOptions

    if torch.cuda.is_available():
        pytest.skip("the device auto resolves to is the CPU only on a machine without CUDA")
    session = Session(SourceOptions(str(half_t5)), RunOptions(device="auto", dtype="auto"))
    assert session.checkpoint.main_dtype == "float16"
    assert session._planning_dtype() == torch.float32
    shape = RunShape(source_tokens=8, new_tokens=4)
    assert session._run_peak(shape) == estimate_generate_peak(session.config, session.checkpoint, 8, 4, 1,
                                                              dtype="float32", device="cpu")
    assert session._run_peak(shape) != estimate_generate_peak(session.config, session.checkpoint, 8, 4, 1,
                                                              dtype="float16", device="cuda")
    loaded = session.weights()
    assert next(loaded.model.parameters()).dtype == torch.float32
    assert loading.resolve_device("auto") == "cpu"
