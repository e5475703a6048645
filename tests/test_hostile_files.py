"""Hostile model files are refused when they are read, in one line that names the file and the field (exit 1):
safetensors headers that safetensors itself would refuse, and config.json values that no real model has.

Without these checks, `info` and `params` counted such files as exact, `arch` and `budget` stopped on an
`unexpected` internal error or printed negative sizes, and `generate` failed inside safetensors.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

import pytest

from helpers import assert_known_outcome, run_t5peek

DEMO = Path(__file__).resolve().parent.parent / "src" / "t5peek" / "demo"
PROMPT = "translate English to Spanish: the red house"

COMMANDS = {
    "info": lambda m: ("info", m),
    "params": lambda m: ("params", m),
    "arch": lambda m: ("arch", m),
    "budget": lambda m: ("budget", m, "--source", "8", "--target", "4"),
    "generate": lambda m: ("generate", "-m", m, PROMPT, "-n", "2"),
    "trace": lambda m: ("trace", "-m", m, PROMPT, "-n", "1"),
    "lens": lambda m: ("lens", "-m", m, PROMPT, "-n", "1"),
    "attend": lambda m: ("attend", "-m", m, PROMPT),
}


@pytest.fixture
def demo_copy(tmp_path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(DEMO, folder)
    return folder


def _header(folder: Path) -> tuple[dict, bytes]:
    data = (folder / "model.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length]), data[8 + length:]


def _write(path: Path, header: dict | bytes, data: bytes) -> None:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def _tensor(dtype: str = "F32", shape=(2,), offsets=(0, 8)) -> dict:
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


# ----------------------------------------------------------------------------- safetensors headers


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", ["unknown dtype", "metadata list"])
def test_the_issue_headers_are_corruption_for_every_command(demo_copy, command, case):
    header, data = _header(demo_copy)
    if case == "unknown dtype":
        header["shared.weight"]["dtype"] = "X99"
        words = ("tensor 'shared.weight'", "dtype 'X99'")
    else:
        header["__metadata__"] = ["pt"]
        words = ("__metadata__", "map of text to text")
    _write(demo_copy / "model.safetensors", header, data)
    run = run_t5peek(*COMMANDS[command](str(demo_copy)), timeout=120)
    assert_known_outcome(run, 1, "model.safetensors", *words)
    assert "parameters" not in run.stdout


# Headers safetensors refuses to open, each with the words of t5peek's refusal.
REFUSED_HEADERS = {
    "unknown dtype": (b'{"a": {"dtype": "X99", "shape": [2], "data_offsets": [0, 8]}}', 8, "dtype 'X99'"),
    "lower-case dtype": (b'{"a": {"dtype": "f32", "shape": [2], "data_offsets": [0, 8]}}', 8, "dtype 'f32'"),
    "metadata list": ({"__metadata__": ["pt"], "a": _tensor()}, 8, "__metadata__"),
    "metadata number": ({"__metadata__": {"format": 1}, "a": _tensor()}, 8, "__metadata__"),
    "metadata nested": ({"__metadata__": {"format": {"a": "b"}}, "a": _tensor()}, 8, "__metadata__"),
    "metadata text": ({"__metadata__": "pt", "a": _tensor()}, 8, "__metadata__"),
    "half a byte of F4": ({"a": _tensor("F4", (3,), (0, 2))}, 2, "do not match"),
    "F6 off a byte": ({"a": _tensor("F6_E2M3", (3,), (0, 3))}, 3, "do not match"),
    "bytes after the data": ({"a": _tensor()}, 12, "4 bytes after the data"),
    "three offsets": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 8]}}, 8, "data_offsets"),
    "offsets as text": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": "08"}}, 8, "data_offsets"),
    "shape as text": ({"a": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}}, 8, "shape '2'"),
    "NaN": (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "x": NaN}}', 8, "not valid UTF-8 JSON"),
    "lone surrogate": (b'{"a\\ud800": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', 8,
                       "not valid UTF-8 JSON"),
    "5,000-digit number": (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "x": ' + b"1" * 5000
                           + b"}}", 8, "not valid UTF-8 JSON"),
    "size past 64 bits": ({"a": _tensor("F32", (2**40, 2**40, 0), (0, 0)), "b": _tensor()}, 8, "64 bits"),
}


@pytest.mark.parametrize("case", list(REFUSED_HEADERS))
def test_headers_safetensors_refuses_are_refused_when_read(demo_copy, case):
    from safetensors import safe_open

    header, size, words = REFUSED_HEADERS[case]
    _write(demo_copy / "model.safetensors", header, b"\0" * size)
    with pytest.raises(Exception):  # the oracle: safetensors itself will not open this file
        safe_open(str(demo_copy / "model.safetensors"), "np")
    run = run_t5peek("params", str(demo_copy))
    assert_known_outcome(run, 1, "model.safetensors", words)


@pytest.mark.parametrize("header, size", [
    ({"__metadata__": None, "a": _tensor()}, 8),
    ({"__metadata__": {}, "a": _tensor()}, 8),
    ({"a": _tensor("F4", (4,), (0, 2))}, 2),
    ({"a": _tensor("F6_E3M2", (4,), (0, 3))}, 3),
    ({"a": _tensor("F32", (0, 2**40, 2**40), (0, 0)), "b": _tensor()}, 8),
    ({"a": {**_tensor(), "extra": [1]}}, 8),
])
def test_headers_safetensors_reads_are_read(tmp_path, header, size):
    from safetensors import safe_open

    from t5peek.checkpoint import read_safetensors_header

    path = tmp_path / "model.safetensors"
    _write(path, header, b"\0" * size)
    with safe_open(str(path), "np") as opened:
        names = set(opened.keys())
    assert set(read_safetensors_header(path)) == names


def test_the_dtype_table_is_the_one_safetensors_reads(tmp_path):
    """Every dtype safetensors names in its refusal of an unknown one is in the table, each with its element size."""
    from safetensors import safe_open

    from t5peek.checkpoint import SAFETENSORS_DTYPES

    path = tmp_path / "x.safetensors"
    _write(path, {"a": _tensor("X99")}, b"\0" * 8)
    with pytest.raises(Exception) as refusal:
        safe_open(str(path), "np")
    known = set(re.findall(r"`([A-Z0-9_]+)`", str(refusal.value).split("expected one of", 1)[1]))
    assert known == set(SAFETENSORS_DTYPES)
    for code, dtype in SAFETENSORS_DTYPES.items():
        nbytes = 8 * dtype.bits // 8
        _write(path, {"a": _tensor(code, (8,), (0, nbytes))}, b"\0" * nbytes)
        with safe_open(str(path), "np") as opened:  # the size t5peek checks is the size safetensors reads
            assert list(opened.keys()) == ["a"]


def test_hub_headers_are_checked_like_local_ones():
    from huggingface_hub.utils import SafetensorsFileMetadata, SafetensorsRepoMetadata, TensorInfo

    from t5peek.checkpoint import checkpoint_from_hub
    from t5peek.errors import BadCheckpoint

    def repo(dtype: str, metadata) -> SafetensorsRepoMetadata:
        tensors = {"a": TensorInfo(dtype=dtype, shape=[2], data_offsets=(0, 8))}
        files = {"model.safetensors": SafetensorsFileMetadata(metadata=metadata, tensors=tensors)}
        return SafetensorsRepoMetadata(metadata=None, sharded=False, weight_map={"a": "model.safetensors"},
                                       files_metadata=files)

    assert checkpoint_from_hub(repo("F32", {"format": "pt"})).tensors["a"].nbytes == 8
    with pytest.raises(BadCheckpoint, match="dtype 'X99'"):
        checkpoint_from_hub(repo("X99", {"format": "pt"}))
    with pytest.raises(BadCheckpoint, match="__metadata__"):
        checkpoint_from_hub(repo("F32", ["pt"]))


# ----------------------------------------------------------------------------- config.json values


def _configure(folder: Path, **values) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(values)
    path.write_text(json.dumps(config, allow_nan=True))


ISSUE_CONFIGS = {
    "unknown activation": ({"dense_act_fn": "bogus"}, "dense_act_fn = 'bogus'"),
    "negative d_kv": ({"d_kv": -4}, "d_kv = -4"),
    "negative epsilon": ({"layer_norm_epsilon": -1.0}, "layer_norm_epsilon = -1.0"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(ISSUE_CONFIGS))
def test_the_issue_configs_are_refused_by_every_command(demo_copy, command, case):
    values, words = ISSUE_CONFIGS[case]
    _configure(demo_copy, **values)
    run = run_t5peek(*COMMANDS[command](str(demo_copy)), timeout=120)
    assert_known_outcome(run, 1, "config.json of", words)


@pytest.mark.parametrize("values, words", [
    ({"feed_forward_proj": "gated-bogus"}, "feed_forward_proj = 'gated-bogus'"),
    ({"feed_forward_proj": "gated-gelu-x"}, "'gated-ACT' or 'ACT'"),
    ({"feed_forward_proj": "fast-gelu"}, "feed_forward_proj = 'fast-gelu'"),
    ({"feed_forward_proj": 3}, "feed_forward_proj = 3"),
    ({"dense_act_fn": ["relu"]}, "dense_act_fn = ['relu']"),
    ({"d_kv": 0}, "d_kv = 0"),
    ({"d_kv": 2.5}, "d_kv = 2.5"),
    ({"d_ff": -512}, "d_ff = -512"),
    ({"num_decoder_layers": 0}, "num_decoder_layers = 0"),
    ({"max_position_embeddings": 0}, "max_position_embeddings = 0"),
    ({"layer_norm_epsilon": 0.0}, "layer_norm_epsilon = 0.0"),
    ({"layer_norm_epsilon": float("nan")}, "layer_norm_epsilon = nan"),
    ({"layer_norm_epsilon": float("inf")}, "layer_norm_epsilon = inf"),
    ({"layer_norm_epsilon": "tiny"}, "layer_norm_epsilon = 'tiny'"),
    ({"dropout_rate": 3.0}, "dropout_rate = 3.0"),
    ({"dropout_rate": -0.1}, "dropout_rate = -0.1"),
    ({"classifier_dropout": "x"}, "classifier_dropout = 'x'"),
    ({"tie_word_embeddings": "no"}, "tie_word_embeddings = 'no'"),
    ({"relative_attention_num_buckets": 0}, "relative_attention_num_buckets = 0"),
    ({"relative_attention_max_distance": 8}, "relative_attention_max_distance = 8"),
    ({"dense_act_fn": "x" * 500}, "dense_act_fn = 'xxxx"),
])
@pytest.mark.parametrize("command", ["arch", "budget"])
def test_config_values_no_real_model_has_are_refused(demo_copy, values, words, command):
    _configure(demo_copy, **values)
    run = run_t5peek(*COMMANDS[command](str(demo_copy)), timeout=120)
    assert_known_outcome(run, 1, "config.json of", words)
    assert max(len(line) for line in run.stderr.splitlines()) < 300  # a hostile value is shown cut short


def test_nested_configs_name_the_stack():
    from t5peek import anatomy
    from t5peek.errors import BadCheckpoint

    layer = {"model_type": "bert", "hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64,
             "hidden_act": "gelu", "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1}
    raw = {"model_type": "encoder-decoder", "encoder": layer, "decoder": {**layer, "hidden_act": "bogus"}}
    with pytest.raises(BadCheckpoint, match="decoder.hidden_act = 'bogus'"):
        anatomy.check_sizes(raw, "bert2bert")
    raw["decoder"] = {**layer, "layer_norm_eps": -1.0}
    with pytest.raises(BadCheckpoint, match="decoder.layer_norm_eps = -1.0"):
        anatomy.check_sizes(raw, "bert2bert")
    raw["decoder"] = layer
    anatomy.check_sizes(raw, "bert2bert")


def test_every_default_transformers_gives_passes():
    """The config classes' own defaults, for every family t5peek knows, are values a real model has."""
    from transformers import BertConfig, EncoderDecoderConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from t5peek import anatomy
    from t5peek.families import FAMILIES

    for model_type in FAMILIES:
        if model_type == "encoder-decoder":
            config = EncoderDecoderConfig.from_encoder_decoder_configs(BertConfig(), BertConfig())
        else:
            config = CONFIG_MAPPING[model_type]()
        anatomy.check_sizes(json.loads(config.to_json_string(use_diff=False)), model_type)


def test_activation_names_are_transformers_own():
    from transformers.activations import ACT2FN

    from t5peek import anatomy

    assert anatomy.activation_names() == frozenset(ACT2FN)
