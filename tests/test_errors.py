"""Every error a user can meet while resolving and loading a model: exit code, one line, no traceback."""

from __future__ import annotations

import json
import pickle

import pytest

from helpers import assert_clean_error, run_cli


def test_repo_not_found(loophub):
    assert_clean_error(run_cli("info", "org/nothing-here"), 1, "No model 'org/nothing-here'")


def test_gated_repo(loophub, tiny_t5):
    loophub.add_repo("org/gated", tiny_t5, gated=True)
    assert_clean_error(run_cli("info", "org/gated"), 1, "gated")


def test_unknown_revision(loophub, tiny_t5):
    loophub.add_repo("org/model", tiny_t5)
    assert_clean_error(run_cli("info", "org/model", "--revision", "v9"), 1, "Revision 'v9' does not exist")


def test_invalid_id_is_a_usage_error():
    assert_clean_error(run_cli("info", "not a valid id!!"), 2, "not a valid model id")


def test_offline_and_not_cached():
    assert_clean_error(run_cli("info", "google/flan-t5-base", "--offline"), 1, "not in the local Hugging Face cache")


def test_offline_env_var_counts_as_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_clean_error(run_cli("info", "google/flan-t5-base"), 1, "offline")


def test_missing_local_folder(tmp_path):
    assert_clean_error(run_cli("info", str(tmp_path / "nope")), 1, "does not exist")


def test_folder_without_config(tmp_path):
    assert_clean_error(run_cli("info", str(tmp_path)), 1, "no config.json")


def test_config_not_json(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    assert_clean_error(run_cli("info", str(tmp_path)), 1, "not valid JSON")


def test_unknown_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "frobnicator"}))
    assert_clean_error(run_cli("info", str(tmp_path)), 2, "Unknown model_type 'frobnicator'")


def test_decoder_only_model(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    assert_clean_error(run_cli("info", str(tmp_path)), 2, "decoder-only", "encoder-decoder")


def test_remote_code_config_refused(copy_model, tiny_t5, tmp_path):
    folder = copy_model(tiny_t5)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSeq2SeqLM": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    canary = tmp_path / "canary"
    (folder / "modeling_evil.py").write_text(f"open({str(canary)!r}, 'w').write('ran')\n")
    for command in ("info", "arch", "params"):
        assert_clean_error(run_cli(command, str(folder)), 3, "remote code")
    assert not canary.exists()


def _to_pickle_only(folder):
    import torch
    from safetensors.torch import load_file

    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")


def test_pickle_only_is_refused(copy_model, tiny_t5):
    folder = copy_model(tiny_t5)
    _to_pickle_only(folder)
    assert_clean_error(run_cli("params", str(folder), "--weights"), 3, "pickle", "--allow-pickle")


def test_pickle_allowed_loads_with_weights_only(copy_model, tiny_t5):
    folder = copy_model(tiny_t5)
    _to_pickle_only(folder)
    result = run_cli("params", str(folder), "--weights", "--allow-pickle", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["trainable"] > 0


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pickle_never_runs(copy_model, tiny_t5, tmp_path):
    folder = copy_model(tiny_t5)
    (folder / "model.safetensors").unlink()
    canary = tmp_path / "canary"
    with open(folder / "pytorch_model.bin", "wb") as handle:
        pickle.dump({"shared.weight": _Payload(str(canary))}, handle)
    result = run_cli("params", str(folder), "--weights", "--allow-pickle")
    assert_clean_error(result, 3, "pickle")
    assert not canary.exists()


def test_truncated_safetensors(copy_model, tiny_t5):
    folder = copy_model(tiny_t5)
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_clean_error(run_cli("info", str(folder)), 1, "truncated")


def test_lfs_pointer(copy_model, tiny_t5):
    folder = copy_model(tiny_t5)
    (folder / "model.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 123456\n")
    assert_clean_error(run_cli("info", str(folder)), 1, "git-lfs pointer", "git lfs pull")


def test_missing_weights_are_named(copy_model, tiny_t5):
    from safetensors.torch import load_file, save_file

    folder = copy_model(tiny_t5)
    state = load_file(folder / "model.safetensors")
    del state["decoder.block.1.layer.2.DenseReluDense.wo.weight"]
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    assert_clean_error(run_cli("params", str(folder), "--weights"), 1, "lacks 1 weights",
                       "decoder.block.1.layer.2.DenseReluDense.wo.weight")


def test_debug_shows_traceback_without_locals(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    result = run_cli("info", str(tmp_path), "--debug")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert "error:" in result.stderr


def test_hf_token_echoed_by_a_server_is_redacted(monkeypatch, loophub):
    """The loopback Hub answers errors with the Authorization header it got, as a careless server might."""
    secret = "hf_abcdefghijklmnopqrstuvwxyz123456"
    monkeypatch.setenv("HF_TOKEN", secret)
    loophub.mode = "error:400"
    for extra in ([], ["--debug"], ["--json"]):
        result = run_cli("info", "org/model", *extra)
        assert result.exit_code == 1
        assert secret not in result.stdout + result.stderr


def test_memory_precheck_refuses_before_loading(monkeypatch, tiny_t5):
    from t5peek import loading, placement

    monkeypatch.setattr(placement, "available_memory", lambda device: 1024)
    monkeypatch.setattr(loading, "_from_pretrained", lambda *a, **k: pytest.fail("weights were loaded"))
    assert_clean_error(run_cli("params", str(tiny_t5), "--weights"), 1, "needs about", "--skip-memory-check")


def test_force_skips_the_memory_precheck(monkeypatch, tiny_t5):
    from t5peek import placement

    monkeypatch.setattr(placement, "available_memory", lambda device: 1024)
    assert run_cli("params", str(tiny_t5), "--weights", "--force").exit_code == 0


def test_non_finite_weight_is_named(copy_model, tiny_t5):
    from safetensors.torch import load_file, save_file

    folder = copy_model(tiny_t5)
    state = load_file(folder / "model.safetensors")
    state["encoder.block.1.layer.1.DenseReluDense.wi.weight"][0, 0] = float("nan")
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    assert_clean_error(run_cli("params", str(folder), "--weights"), 1,
                       "encoder.block.1.layer.1.DenseReluDense.wi.weight", "NaN")


def test_cuda_without_cuda_is_a_usage_error(tiny_t5):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert_clean_error(run_cli("params", str(tiny_t5), "--weights", "--device", "cuda"), 2, "CUDA is not available")


def test_float16_on_cpu_warns(tiny_t5):
    result = run_cli("params", str(tiny_t5), "--weights", "--dtype", "float16")
    assert result.exit_code == 0
    assert "float16 on the CPU" in result.stderr


def _write_header(path, header: dict | str, data: bytes) -> None:
    import struct

    raw = (header if isinstance(header, str) else json.dumps(header)).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


@pytest.mark.parametrize("header, data, words", [
    ({"w": {"dtype": "F32", "shape": [10**9, 10**9], "data_offsets": [0, 16]}}, b"\0" * 16, "do not match"),
    ({"w": {"dtype": "F32", "shape": [-4, 100], "data_offsets": [0, 16]}}, b"\0" * 16, "corrupt entry"),
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}}, b"\0" * 16, "negative size"),
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
      "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16, "overlap or leave gaps"),
    ({"a": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 16]}}, b"\0" * 16, "corrupt entry"),
    ("[" * 200_000 + "]" * 200_000, b"", "corrupt safetensors header"),
])
def test_lying_safetensors_headers_are_corruption_not_counts(copy_model, tiny_t5, header, data, words):
    from helpers import assert_known_outcome, run_t5peek

    folder = copy_model(tiny_t5)
    _write_header(folder / "model.safetensors", header, data)
    for command in ("params", "info", "arch"):
        run = run_t5peek(command, str(folder))
        assert_known_outcome(run, 1, words)
        assert "parameters" not in run.stdout


def test_pickle_index_naming_a_shard_outside_the_folder_is_refused(copy_model, tiny_t5, tmp_path):
    import torch
    from helpers import assert_known_outcome, run_t5peek
    from safetensors.torch import load_file

    folder = copy_model(tiny_t5)
    outside = tmp_path / "outside"
    outside.mkdir()
    torch.save(load_file(folder / "model.safetensors"), outside / "pytorch_model-00001-of-00001.bin")
    (folder / "model.safetensors").unlink()
    weight_map = {name: "../outside/pytorch_model-00001-of-00001.bin"
                  for name in torch.load(outside / "pytorch_model-00001-of-00001.bin", weights_only=True)}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    for args in (("params", str(folder), "--weights", "--allow-pickle"),
                 ("generate", "-m", str(folder), "translate English to German: the house", "--allow-pickle",
                  "-n", "2")):
        run = run_t5peek(*args)
        assert_known_outcome(run, 3, "outside the model folder")


def test_a_token_file_token_of_any_shape_is_redacted(loophub, tmp_path, monkeypatch):
    """huggingface_hub sends the token from its token file; a server that echoes it must not get it printed,
    even under --debug and even when it does not look like `hf_…`."""
    import os

    from helpers import run_t5peek

    secret = "custom-token-Zq81xW"
    home = tmp_path / "home"
    home.mkdir()
    (home / "token").write_text(secret + "\n")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    loophub.mode = "error:400"
    for extra in ([], ["--debug"], ["--json"]):
        run = run_t5peek("info", "org/model", *extra, env={"HF_HOME": str(home)}, allowed_ports=(loophub.port,))
        assert run.exit_code == 1
        assert secret not in run.stdout + run.stderr, extra
    assert os.environ.get("HF_TOKEN") is None


def test_memory_precheck_counts_the_caches_and_activations_of_the_run(monkeypatch, tiny_t5):
    """The weights alone fit; the run's caches and activations (t5peek.budget's estimate) do not."""
    from t5peek import loading, placement
    from t5peek.checkpoint import read_local_checkpoint

    import torch

    weights = placement.weights_bytes(read_local_checkpoint(tiny_t5, tiny_t5), torch.float32)
    monkeypatch.setattr(placement, "available_memory", lambda device: weights + 1)
    monkeypatch.setattr(loading, "_from_pretrained", lambda *a, **k: pytest.fail("weights were loaded"))
    result = run_cli("trace", "-m", str(tiny_t5), "the house is small", "--steps", "4")
    assert_clean_error(result, 1, "for its weights and", "caches and activations of this run",
                       "source tokens, 4 new tokens", "t5peek budget")


@pytest.mark.parametrize("shape", ["userinfo", "query"])
def test_credentials_in_hf_endpoint_are_redacted(loophub, shape):
    """HF_ENDPOINT=http://user:pw@host/ or ?token=...: t5peek names the endpoint in its errors, and a server may
    echo the credentials it got (as a Basic Authorization header) or the URL it was asked for (issue #25)."""
    from helpers import assert_known_outcome, run_t5peek
    from support.loophub import closed_port

    password, token = "pw-Zq81xW-secret", "tok-Rm42vK-secret"
    host = loophub.url.removeprefix("http://")
    endpoint = f"http://user:{password}@{host}" if shape == "userinfo" else f"http://{host}/?access_token={token}"
    loophub.mode = "error:400"
    for extra in ([], ["--debug"], ["--json"]):
        run = run_t5peek("info", "org/model", *extra, env={"HF_ENDPOINT": endpoint}, allowed_ports=(loophub.port,))
        assert run.exit_code == 1
        printed = run.stdout + run.stderr
        assert password not in printed and token not in printed, printed
        assert "dXNlcjpwdy1acTgxeFctc2VjcmV0" not in printed, printed  # base64 of user:password
    port = closed_port()
    for extra in ([], ["--json"]):
        unreachable = run_t5peek("info", "org/model", *extra, allowed_ports=(port,),
                                 env={"HF_ENDPOINT": endpoint.replace(host, f"127.0.0.1:{port}")})
        assert_known_outcome(unreachable, 1, "cannot reach", f"127.0.0.1:{port}")
        printed = unreachable.stdout + unreachable.stderr
        assert password not in printed and token not in printed, printed


@pytest.mark.parametrize("text, shown", [
    ("at http://user:pw@host:8080/x?token=abc&x=1", "at http://***@host:8080/x?token=***&x=1"),
    ("https://h/p?X-Amz-Signature=dead&Expires=12&sig=beef&design=1",
     "https://h/p?X-Amz-Signature=***&Expires=12&sig=***&design=1"),
    ("u?api_key=k1;password=p2&key=k3", "u?api_key=***;password=***&key=***"),
    ("{'authorization': 'Bearer abc.def'} Authorization: Basic dXNlcjpwdw==",
     "{'authorization': 'Bearer ***'} Authorization: Basic ***"),
    ("mail a@b.org about Basic information", "mail a@b.org about Basic information"),
])
def test_redact_covers_url_credentials(text, shown):
    from t5peek.errors import redact

    assert redact(text) == shown
