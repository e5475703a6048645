"""Property-based tests over hostile model files, run through the installed `t5peek` in a fresh process.

Hypothesis writes configs, safetensors headers and tokenizers that lie, overflow or carry terminal escapes. Whatever
they hold, t5peek answers with a documented exit code, one error line, no traceback, no "unexpected" internal error,
and nothing from the files reaches the terminal as a control character.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import run_t5peek
from t5peek.generation_file import RULES

pytestmark = pytest.mark.slow  # hypothesis over hostile files

ALLOWED_CODES = {0, 1, 2, 3}
FILES = settings(max_examples=12, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # every control character but tab and newline
ENV = {"NO_COLOR": "1", "COLUMNS": "100", "HF_HUB_OFFLINE": "1"}

hostile_text = st.one_of(
    st.sampled_from(["\x1b[2J", "\x1b]0;owned\x07", "[/]", "[bold red]x[/bold red]", "\r\x08\x08", "\u202e",
                     "\x00", "{{JS}}", "</script><script>alert(1)</script>", "a" * 5000]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20))
hostile_number = st.one_of(st.sampled_from([-1, 0, 1, 2, 3, 10**6, 10**12, 2**63, -(2**63), 1.5, float("nan")]),
                           st.integers(-5, 64))
hostile_value = st.one_of(hostile_number, hostile_text, st.none(), st.booleans(),
                          st.lists(st.integers(-2, 5), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                                  st.integers(), max_size=2))
CONFIG_KEYS = ["d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads", "vocab_size",
               "relative_attention_num_buckets", "relative_attention_max_distance", "model_type",
               "feed_forward_proj", "tie_word_embeddings", "decoder_start_token_id", "eos_token_id", "pad_token_id",
               "architectures", "is_encoder_decoder", "torch_dtype", "dtype", "n_positions", "task_specific_params",
               "layer_norm_epsilon"]


def check_invariants(run, json_mode: bool = False) -> None:
    output = run.stdout + run.stderr
    assert run.exit_code in ALLOWED_CODES, f"exit {run.exit_code}:\n{output}"
    assert "Traceback" not in output, output
    assert "unexpected" not in run.stderr, output
    assert not CONTROL.search(run.stdout), f"a control character reached stdout: {run.stdout!r}"
    assert not CONTROL.search(run.stderr), f"a control character reached stderr: {run.stderr!r}"
    assert not run.network_violations, run.network_violations
    if run.exit_code != 0:
        assert len([line for line in run.stderr.splitlines() if line.startswith("error:")]) == 1, output
    elif json_mode:
        json.loads(run.stdout)


def fresh_copy(source: Path, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("hostile") / "model"
    shutil.copytree(source, target)
    return target


@FILES
@given(changes=st.dictionaries(st.sampled_from(CONFIG_KEYS), hostile_value, min_size=1, max_size=3),
       command=st.sampled_from(["info", "arch", "params", "generate"]), json_mode=st.booleans())
def test_a_hostile_config(tiny_t5, tmp_path_factory, changes, command, json_mode):
    folder = fresh_copy(tiny_t5, tmp_path_factory)
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config, allow_nan=True))
    args = [command, str(folder)] if command != "generate" else [
        "generate", "-m", str(folder), "translate English to German : the house", "--max-new-tokens", "2"]
    check_invariants(run_t5peek(*args, *(["--json"] if json_mode else []), env=ENV, timeout=120), json_mode)


def safetensors_bytes(header: object, data_size: int, declared_length: int | None = None) -> bytes:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    length = len(raw) if declared_length is None else declared_length
    return struct.pack("<Q", length) + raw + b"\0" * data_size


dtype = st.sampled_from(["F32", "F16", "BF16", "I64", "BOOL", "F8_E4M3", "Q4", "", "f32"])
shape = st.lists(st.one_of(st.integers(-3, 40), st.sampled_from([10**9, 2**62, 1.5])), max_size=4)
offsets = st.lists(st.one_of(st.integers(-10, 200), st.sampled_from([2**64, 10**18])), min_size=0, max_size=3)
tensor_entry = st.fixed_dictionaries({"dtype": dtype, "shape": shape, "data_offsets": offsets})
tensor_name = st.one_of(st.sampled_from(["shared.weight", "lm_head.weight", "../escape", "\x1b[2Jname",
                                         "encoder.block.0.layer.0.SelfAttention.q.weight"]), st.text(max_size=12))
header = st.one_of(
    st.dictionaries(tensor_name, st.one_of(tensor_entry, hostile_value), max_size=4),
    st.dictionaries(st.just("__metadata__"), st.one_of(st.dictionaries(st.text(max_size=4), hostile_text),
                                                      hostile_value), max_size=1),
    st.binary(max_size=40))


@FILES
@given(header=header, data_size=st.integers(0, 256), lie=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
       command=st.sampled_from(["info", "params", "arch"]), json_mode=st.booleans())
def test_a_hostile_safetensors_header(tiny_t5, tmp_path_factory, header, data_size, lie, command, json_mode):
    folder = fresh_copy(tiny_t5, tmp_path_factory)
    (folder / "model.safetensors").write_bytes(safetensors_bytes(header, data_size, lie))
    run = run_t5peek(command, str(folder), *(["--json"] if json_mode else []), env=ENV, timeout=120)
    check_invariants(run, json_mode)


@FILES
@given(tokens=st.lists(hostile_text, min_size=1, max_size=6, unique=True),
       max_length=st.one_of(st.none(), hostile_number),
       command=st.sampled_from(["generate", "trace"]))
def test_a_hostile_tokenizer(tiny_t5, tmp_path_factory, tokens, max_length, command):
    """The tokenizer's own words replace real ones, so the model reads and writes them."""
    folder = fresh_copy(tiny_t5, tmp_path_factory)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    victims = [word for word in vocab if word.isalpha()][:len(tokens)]
    for word, token in zip(victims, tokens):
        if token not in vocab:
            vocab[token] = vocab.pop(word)
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    if max_length is not None:
        settings_file = folder / "tokenizer_config.json"
        config = json.loads(settings_file.read_text())
        config["model_max_length"] = max_length
        settings_file.write_text(json.dumps(config, allow_nan=True))
    spoken = " ".join(t for t in tokens if t.strip()).replace("\0", "")  # a command line cannot hold NUL
    prompt = "translate English to German : the house " + spoken[:200]
    args = [command, "-m", str(folder), prompt] + (["--max-new-tokens", "3"] if command == "generate" else
                                                 ["--steps", "2"])
    check_invariants(run_t5peek(*args, env=ENV, timeout=120))


@pytest.mark.parametrize("fields", [{"num_beams": -3}, {"num_beams": 0}, {"max_new_tokens": -1},
                                    {"num_beams": 10**9}, {"temperature": "hot"}])
def test_a_hostile_generation_config(tiny_t5, tmp_path_factory, fields):
    folder = fresh_copy(tiny_t5, tmp_path_factory)
    path = folder / "generation_config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    config.update(fields)
    path.write_text(json.dumps(config))
    run = run_t5peek("generate", "-m", str(folder), "translate English to German : the house",
                     "--max-new-tokens", "2", env=ENV, timeout=120)
    check_invariants(run)


GENERATION_COMMANDS = {
    "generate": ["--max-new-tokens", "2"], "sample": ["--max-new-tokens", "2", "--sample", "--seed", "1"],
    "beams": ["--max-new-tokens", "2", "--num-beams", "2"], "lens": ["--max-new-tokens", "2"],
    "attend": ["--step", "1"], "trace": ["--steps", "1"]}


@FILES
@given(changes=st.dictionaries(st.sampled_from(sorted(RULES)),
                               st.one_of(hostile_value, st.lists(st.lists(st.integers(-2, 40), max_size=2),
                                                                 max_size=2)), min_size=1, max_size=3),
       command=st.sampled_from(sorted(GENERATION_COMMANDS)))
def test_hostile_generation_config_fields(tiny_t5, tmp_path_factory, changes, command):
    """Any value in any field generate() reads, on every command that loads the weights: a run, or one error line
    (a usage error only where the command line is involved), and never half a run's output before it."""
    folder = fresh_copy(tiny_t5, tmp_path_factory)
    path = folder / "generation_config.json"
    settings = json.loads(path.read_text())
    settings.update(changes)
    path.write_text(json.dumps(settings, allow_nan=True))
    name = "generate" if command in ("sample", "beams") else command
    run = run_t5peek(name, "-m", str(folder), "translate English to German : the house",
                     *GENERATION_COMMANDS[command], env=ENV, timeout=120)
    check_invariants(run)
    if run.exit_code == 1:
        assert run.stdout == "", run.stdout + run.stderr
