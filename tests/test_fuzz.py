"""Property-based tests: whatever the input, t5peek answers with a documented exit code and no traceback, and
writes no control or bidirectional character to the terminal."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import run_cli

# Never raw on a terminal: C0 controls but newline, DEL, C1 controls, bidirectional controls, line separators.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")

pytestmark = pytest.mark.slow  # hypothesis examples through the CLI

ALLOWED_CODES = {0, 1, 2, 3, 130}
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                derandomize=True)

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
numbers = st.one_of(st.integers(-10, 10_000), st.sampled_from(["-1", "0", "1e9", "nan", "inf", "", "abc", "2.5"]))


def check_invariants(result, json_mode: bool) -> None:
    output = result.stdout + result.stderr
    assert result.exit_code in ALLOWED_CODES, output
    assert "Traceback" not in output, output
    assert "error: unexpected" not in result.stderr, output  # an internal error is a bug, not an outcome
    assert not RAW_CONTROL.search(output), ascii(output)  # shown as escapes (\x1b, \u202e), never raw
    if json_mode and result.exit_code == 0:
        json.loads(result.stdout)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Arbitrary names that look like Hub ids must not reach the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@FUZZ
@given(model=texts, command=st.sampled_from(["info", "arch", "params"]), json_mode=st.booleans())
def test_any_model_name(model, command, json_mode):
    args = [command, "-m", model] + (["--json"] if json_mode else [])
    check_invariants(run_cli(*args), json_mode)


@FUZZ
@given(depth=numbers, json_mode=st.booleans(), expand=st.booleans())
def test_arch_depth(tiny_t5, depth, json_mode, expand):
    args = ["arch", str(tiny_t5), "--depth", str(depth)] + (["--json"] if json_mode else []) + (
        ["--expand"] if expand else [])
    check_invariants(run_cli(*args), json_mode)


@FUZZ
@given(by=texts, dtype=texts, device=texts, json_mode=st.booleans())
def test_params_option_values(tiny_t5, by, dtype, device, json_mode):
    args = ["params", str(tiny_t5), "--by", by, "--dtype", dtype, "--device", device]
    check_invariants(run_cli(*args + (["--json"] if json_mode else [])), json_mode)


@FUZZ
@given(dtype=st.sampled_from(["auto", "float32", "bfloat16", "float16", "FLOAT32"]),
       device=st.sampled_from(["cpu", "auto", "cuda", "mps"]))
def test_params_with_weights_on_any_device_and_dtype(tiny_t5, dtype, device):
    check_invariants(run_cli("params", str(tiny_t5), "--weights", "--dtype", dtype, "--device", device,
                             "--json"), True)


prompts = st.one_of(texts, st.just(""), st.just("   "), st.just("\x00\x1b[31m\x07"), st.just("word " * 300),
                    st.just("translate English to German: the house"))


small_numbers = st.one_of(st.integers(-5, 12), st.sampled_from(["-1", "0", "nan", "inf", "", "abc", "2.5", "1e9"]))


@FUZZ
@given(prompt=prompts, top_k=numbers, max_new_tokens=small_numbers, json_mode=st.booleans())
def test_generate_prompts_and_numbers(tiny_t5, prompt, top_k, max_new_tokens, json_mode):
    args = ["generate", "-m", str(tiny_t5), prompt, "--top-k", str(top_k), "--max-new-tokens",
            str(max_new_tokens)]
    check_invariants(run_cli(*args + (["--json"] if json_mode else [])), json_mode)


@FUZZ
@given(beams=numbers, temperature=numbers, top_p=numbers, layer=numbers, sample=st.booleans(),
       json_mode=st.booleans())
def test_generate_decoding_options(tiny_bart, beams, temperature, top_p, layer, sample, json_mode):
    args = ["generate", "-m", str(tiny_bart), "the red house", "--max-new-tokens", "3", "--num-beams", str(beams),
            "--layer", str(layer)]
    if sample:
        args += ["--sample", "--temperature", str(temperature), "--top-p", str(top_p), "--seed", "1"]
    check_invariants(run_cli(*args + (["--json"] if json_mode else [])), json_mode)


@FUZZ
@given(prompt=prompts, depth=numbers, steps=st.one_of(st.integers(-3, 6), st.sampled_from(["x", "1e3"])),
       target=st.one_of(st.none(), texts), json_mode=st.booleans(), stats=st.booleans())
def test_trace_inputs(tiny_bart, prompt, depth, steps, target, json_mode, stats):
    args = ["trace", "-m", str(tiny_bart), prompt, "--depth", str(depth), "--steps", str(steps)]
    args += (["--target", target] if target is not None else []) + (["--stats"] if stats else [])
    check_invariants(run_cli(*args + (["--json"] if json_mode else [])), json_mode)
