"""One position-limit rule for trace and generate (they once disagreed on the demo at 126 tokens)."""

from __future__ import annotations

import pytest

from helpers import run_cli

LONG_PROMPT = "translate English to Spanish: " + " ".join(["the red house is small and the cat is big"] * 12)


@pytest.mark.parametrize("command, extra", [("trace", ["-n", "1"]), ("generate", ["--max-new-tokens", "1"])])
def test_relative_positions_warn_past_training_length(command, extra):
    """T5 has no position table: a prompt past the tokenizer's model_max_length runs, with a warning."""
    result = run_cli(command, "-m", "demo", LONG_PROMPT, *extra)
    assert result.exit_code == 0, result.stderr
    assert "more than the 64 positions 'demo' was trained for" in result.stderr
    assert "tokens long" in result.stderr


def test_trace_and_generate_apply_the_same_limit(tiny_bart):
    long_prompt = " ".join(["house"] * 70)
    trace = run_cli("trace", "-m", tiny_bart, long_prompt)
    generate = run_cli("generate", "-m", tiny_bart, long_prompt)
    assert trace.exit_code == generate.exit_code == 2
    assert trace.stderr.splitlines()[0] == generate.stderr.splitlines()[0]


def test_generation_steps_share_the_decoder_limit(tiny_bart):
    trace = run_cli("trace", "-m", tiny_bart, "the house", "--steps", "64")
    generate = run_cli("generate", "-m", tiny_bart, "the house", "--max-new-tokens", "64")
    assert trace.exit_code == generate.exit_code == 2
    assert "needs 65 decoder positions" in trace.stderr and "needs 65 decoder positions" in generate.stderr
