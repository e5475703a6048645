"""The output contract of `generate`, checked on the installed script in fresh processes (stdout is a pipe).

Numbers and identifiers are printed whole at any width: the bars and labels give way first, then what still does
not fit moves to the next line. One probability format. Beam search lists the beams it keeps, best first, and
none once the search ends. Source tokens that become <unk> are named in one warning on stderr.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given, strategies as st

from helpers import assert_known_outcome, run_t5peek
from t5peek.render.format import probability

PROMPT = "translate English to Spanish: the red house is small"
FISH = "translate English to Spanish: I love fish!!!!!"
MODES = {
    "greedy": (),
    "beam": ("--num-beams", "3"),
    "sample": ("--sample", "--seed", "1"),
    "all-layers": ("--all-layers", "-n", "4"),
}
NUMBER = re.compile(r"-?\d+(?:\.\d+)?%?")


def _human(*args, columns: int) -> str:
    run = run_t5peek("generate", "-m", "demo", *args, env={"COLUMNS": str(columns)})
    assert_known_outcome(run, 0)
    return run.stdout


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def _blocks(out: str, start: str) -> list[str]:
    """The output cut before every line that starts with `start` (the first piece is what comes before)."""
    return re.split(rf"(?m)^(?={re.escape(start)})", out)[1:]


# ----------------------------------------------------------------------------- width


@pytest.mark.parametrize("mode", list(MODES))
def test_numbers_stay_whole_at_every_width(mode):
    """Every number of the wide output is in the 80- and 60-column outputs too; no line is wider than the
    console or ends in spaces; nothing is cut to '…' but the start of a long decoder input."""
    wide = _human(PROMPT, *MODES[mode], columns=200)
    reference = Counter(NUMBER.findall(wide))
    for columns in (80, 60):
        out = _human(PROMPT, *MODES[mode], columns=columns)
        lines = out.splitlines()
        assert max(len(line) for line in lines) <= columns, out
        assert not [line for line in lines if line != line.rstrip()], out
        missing = reference - Counter(NUMBER.findall(out))
        assert not missing, f"at {columns} columns these numbers are missing: {missing}\n{out}"
        assert not re.search(r"\S…|…\S", out), out  # only whole tokens of a long decoder input give way to '…'
        assert not re.search(r"\de-\d", out), out  # no scientific notation


def test_piped_output_defaults_to_80_columns_without_padding():
    run = run_t5peek("generate", "-m", "demo", PROMPT, "--num-beams", "3", env={"COLUMNS": ""})
    assert_known_outcome(run, 0)
    lines = run.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert all(line == line.rstrip() for line in lines)


def test_every_shown_number_of_the_json_is_whole_at_80_columns():
    """Greedy: every candidate's id, logit and probability in its step; the output ids in the summary."""
    record = run_t5peek("generate", "-m", "demo", PROMPT, "--json").json()
    out = _human(PROMPT, columns=80)
    steps = _blocks(out, "step ")
    assert len(steps) == len(record["steps"])
    for block, step in zip(steps, record["steps"]):
        for candidate in step["top_k"]:
            row = re.search(rf"(?m)^.*\b{candidate['token_id']}  {re.escape(candidate['token'])} .*$", block)
            assert row, (candidate, block)
            assert _fmt(candidate["logit"]) in row.group(0).split()
            assert probability(candidate["probability"]) in row.group(0).split()
    assert "ids     " + " ".join(map(str, record["output_ids"])) in out


def test_every_beam_score_of_the_json_is_whole_at_80_columns():
    record = run_t5peek("generate", "-m", "demo", PROMPT, "--num-beams", "3", "--json").json()
    out = _human(PROMPT, "--num-beams", "3", columns=80)
    steps = _blocks(out, "step ")
    assert len(steps) == len(record["beam_steps"])
    for block, beam_step in zip(steps, record["beam_steps"]):
        for beam in beam_step["beams"]:
            assert re.search(rf"(?m)^ +{beam['beam']} +{re.escape(_fmt(beam['score']))}  ", block), block
            for candidate in beam["top_k"][:3]:
                assert f"{candidate['token']} {_fmt(candidate['score'])}" in block
        for choice in beam_step["next_beams"]:
            assert f"{choice['beam']} ← beam {choice['parent']} + {choice['token']} ({_fmt(choice['score'])})" \
                in block
        for hypothesis in beam_step["finished"]:
            assert f"score {_fmt(hypothesis['score'], 3)}" in block
    assert f"beam score {_fmt(record['sequence_score'], 4)}" in out


# ----------------------------------------------------------------------------- one probability format


@pytest.mark.parametrize("p, shown", [(1.0, "100.0%"), (0.99999, "100.0%"), (0.4234, "42.3%"), (0.001, "0.1%"),
                                      (0.0007, "0.07%"), (0.0001, "0.01%"), (3e-07, "<0.01%"), (0.0, "0%"),
                                      (float("nan"), "nan")])
def test_probability_format(p, shown):
    assert probability(p) == shown


@given(st.floats(min_value=0, max_value=1))
def test_probabilities_are_short_percentages(p):
    shown = probability(p)
    assert shown.endswith("%") and "e" not in shown and len(shown) <= 6


# ----------------------------------------------------------------------------- beam search's kept list


@pytest.mark.parametrize("extra", [("-n", "3"), ()], ids=["ends-at-max-length", "ends-by-early-stopping"])
def test_kept_beams_are_sorted_and_the_last_step_keeps_none(extra):
    record = run_t5peek("generate", "-m", "demo", PROMPT, "--num-beams", "3", *extra, "--json").json()
    beam_steps = record["beam_steps"]
    for beam_step in beam_steps[:-1]:
        scores = [choice["score"] for choice in beam_step["next_beams"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert beam_steps[-1]["next_beams"] == []
    out = _human(PROMPT, "--num-beams", "3", *extra, columns=120)
    kept = [line for line in out.splitlines() if line.lstrip().startswith("kept:")]
    assert len(kept) == len(beam_steps)
    for line in kept[:-1]:
        scores = [float(s) for s in re.findall(r"\((-?\d+\.\d+)\)", line)]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True), line
    assert kept[-1].strip() == "kept: none, the search ends here"


# ----------------------------------------------------------------------------- <unk> in the source


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


@pytest.mark.parametrize("command", [("generate", "--max-new-tokens", "3"), ("trace", "-n", "1")])
@pytest.mark.parametrize("json_mode", [False, True])
def test_unknown_source_tokens_are_named_in_one_warning(command, json_mode):
    run = run_t5peek(command[0], "-m", "demo", FISH, *command[1:], *(["--json"] if json_mode else []))
    assert_known_outcome(run, 0)
    warnings = _warnings(run.stderr)
    assert len(warnings) == 1, run.stderr
    assert "3 of the 10 source tokens became <unk>" in warnings[0]
    assert "'love', 'fish', '!!!!!'" in warnings[0]
    assert "138 English words" in warnings[0]  # what the demo knows
    if json_mode:
        assert isinstance(run.json(), dict)  # stdout is the document alone: the warning went to stderr


def test_known_source_tokens_give_no_warning():
    run = run_t5peek("generate", "-m", "demo", PROMPT, "--max-new-tokens", "2", "--json")
    assert_known_outcome(run, 0)
    assert not _warnings(run.stderr), run.stderr


def test_unknown_target_tokens_in_trace():
    run = run_t5peek("trace", "-m", "demo", "translate English to Spanish: the cat", "--target", "el gato feo")
    assert_known_outcome(run, 0)
    warnings = _warnings(run.stderr)
    assert len(warnings) == 1 and "1 of the 4 --target tokens became <unk>" in warnings[0] and "'feo'" in warnings[0]


def test_unknown_tokens_of_another_model_without_the_demo_note(tiny_t5):
    run = run_t5peek("generate", "-m", tiny_t5, "the red zebra is small", "--max-new-tokens", "2")
    assert_known_outcome(run, 0)
    warnings = _warnings(run.stderr)
    assert len(warnings) == 1 and "1 of the 6 source tokens became <unk>" in warnings[0] and "'zebra'" in warnings[0]
    assert "demo" not in warnings[0]
