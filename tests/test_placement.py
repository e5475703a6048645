"""Models bigger than one device: --max-memory plans (info, params) and disk-offloaded loading."""

from __future__ import annotations

import pytest

from helpers import assert_clean_error, json_output, run_cli
from t5peek import placement
from t5peek.errors import UsageError


def test_parse_max_memory():
    assert placement.parse_max_memory(["0=1GiB", "cpu=2GB,disk=10MB"]) == {0: 2**30, "cpu": 2 * 10**9,
                                                                             "disk": 10 * 10**6}
    assert placement.parse_max_memory(["cpu=500KB"])["disk"] >= 2**60
    for bad in (["cpu"], ["gpu=1GB"], ["cpu=lots"]):
        with pytest.raises(UsageError):
            placement.parse_max_memory(bad)


def test_params_and_info_show_the_split_without_loading(monkeypatch, tiny_t5):
    from t5peek import loading

    monkeypatch.setattr(loading, "_from_pretrained", lambda *a, **k: pytest.fail("weights were loaded"))
    record = json_output(run_cli("params", str(tiny_t5), "--max-memory", "cpu=60KB", "--json"))
    devices = [share["device"] for share in record["placement"]["shares"]]
    assert devices == ["cpu", "disk"]
    info = json_output(run_cli("info", str(tiny_t5), "--max-memory", "cpu=60KB", "--json"))
    assert info["placement"] == record["placement"]
    human = run_cli("params", str(tiny_t5), "--max-memory", "cpu=60KB")
    assert "split over --max-memory" in human.stdout and "disk" in human.stdout


def test_everything_fits_on_the_cpu(tiny_t5):
    record = json_output(run_cli("params", str(tiny_t5), "--max-memory", "cpu=1GB", "--json"))
    assert [share["device"] for share in record["placement"]["shares"]] == ["cpu"]


def test_bad_max_memory_is_a_usage_error(tiny_t5):
    assert_clean_error(run_cli("params", str(tiny_t5), "--max-memory", "cpu=lots"), 2, "not a memory size")


def test_disk_offloaded_load_matches_a_plain_load(tiny_t5):
    import torch

    from t5peek import loading

    resolved = loading.resolve_model(str(tiny_t5))
    offloaded = loading.load_model(resolved, max_memory={"cpu": 60_000, "disk": 2**40}, with_tokenizer=False)
    assert set(offloaded.model.hf_device_map.values()) == {"cpu", "disk"}
    plain = loading.load_model(resolved, with_tokenizer=False)
    ids = torch.tensor([[5, 6, 7, 1]])
    with torch.no_grad():
        a = offloaded.model.generate(ids, max_new_tokens=4, do_sample=False)
        b = plain.model.generate(ids, max_new_tokens=4, do_sample=False)
    assert torch.equal(a, b)


def test_trace_runs_with_disk_offload_and_says_where(tiny_t5):
    result = run_cli("trace", "-m", str(tiny_t5), "the red house is small", "--max-memory", "cpu=60KB",
                     "--steps", "2")
    assert result.exit_code == 0, result.stderr
    assert "split by accelerate" in result.stdout and "disk" in result.stdout


def test_generate_with_disk_offload_equals_plain_generate(tiny_t5):
    args = ["generate", "-m", str(tiny_t5), "the red house is small", "--max-new-tokens", "4", "--json"]
    offloaded = json_output(run_cli(*args, "--max-memory", "cpu=60KB"))
    plain = json_output(run_cli(*args))
    assert offloaded["output_ids"] == plain["output_ids"]


@pytest.mark.parametrize("command", [("generate", "translate English to German : the house", "-n", "2"),
                                     ("trace", "translate English to German : the house", "-n", "1")],
                         ids=["generate", "trace"])
def test_max_memory_for_a_gpu_this_machine_lacks_is_a_usage_error(monkeypatch, tiny_t5, command):
    """Loading with --max-memory for a missing GPU: a usage error naming it, before loading (issue #25, item 9).
    Planning a split for another machine (info, params) stays allowed."""
    import torch

    from helpers import assert_known_outcome, run_t5peek
    from t5peek import loading

    monkeypatch.setattr(loading, "_from_pretrained", lambda *a, **k: pytest.fail("weights were loaded"))
    missing = torch.cuda.device_count() if torch.cuda.is_available() else 0
    name, *rest = command
    run = run_t5peek(name, "-m", str(tiny_t5), *rest, "--max-memory", f"{missing}=1GiB")
    assert_known_outcome(run, UsageError.exit_code, f"GPU {missing}", "--max-memory")
    assert run.stdout == ""
    assert_known_outcome(run_t5peek("info", str(tiny_t5), "--max-memory", f"{missing}=1GiB"), 0)


def test_check_devices_names_mps_when_it_is_missing(monkeypatch):
    import torch

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UsageError, match="mps"):
        placement.check_devices({"mps": 2**30, "cpu": 2**30, "disk": 2**62})
    placement.check_devices({"cpu": 2**30, "disk": 2**62})
