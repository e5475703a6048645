"""Fixtures: tiny random checkpoints with real tokenizers, a loopback Hub, a hand-built Hub cache, a network guard."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from helpers import LOOPBACK_PORTS, NETWORK_VIOLATIONS
from support.builders import build_hub_cache, make_bart, make_t5, make_untied_t5, save_model, t5_config

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_addoption(parser):
    parser.addoption("--update-goldens", action="store_true", default=False,
                     help="rewrite tests/golden/*.txt from the current output instead of comparing (test_golden.py)")



@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models run faster on one thread, and CI machines are small and shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class NetworkAccessed(RuntimeError):
    pass


_LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection other than to the test's own loopback Hub fails the test."""
    real_connect, real_connect_ex, real_getaddrinfo = (socket.socket.connect, socket.socket.connect_ex,
                                                      socket.getaddrinfo)

    def allowed(address) -> bool:
        return isinstance(address, tuple) and address[0] in _LOOPBACK_HOSTS and address[1] in LOOPBACK_PORTS

    def refuse(message: str):
        NETWORK_VIOLATIONS.append(message)
        raise NetworkAccessed(message)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not allowed(address):
            refuse(f"test tried to open a network connection: {address!r}")
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not allowed(address):
            refuse(f"test tried to open a network connection: {address!r}")
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in _LOOPBACK_HOSTS:
            refuse(f"test tried to look up {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield


@pytest.fixture
def loophub(monkeypatch):
    """A Hub on 127.0.0.1 for this test, with HF_ENDPOINT pointed at it (in this process and its children)."""
    from support.loophub import LoopbackHub

    with LoopbackHub() as hub:
        LOOPBACK_PORTS.add(hub.port)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("T5PEEK_HUB_TIMEOUT", "3")
        try:
            yield hub
        finally:
            LOOPBACK_PORTS.discard(hub.port)


@pytest.fixture(autouse=True)
def isolated_hf_home(tmp_path, monkeypatch):
    """Each test gets an empty Hugging Face cache, so nothing from the machine leaks in."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    # set, not deleted, so that monkeypatch restores them after code that switches itself offline (hub.go_offline)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("NO_COLOR", "1")
    yield tmp_path / "hf_home"


# ----------------------------------------------------------------------------- builders


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory) -> Path:
    """T5 v1.0 style: relu feed-forward, output head tied to the shared embedding."""
    return make_t5(tmp_path_factory.mktemp("models") / "tiny-t5")


@pytest.fixture(scope="session")
def tiny_t5_untied(tmp_path_factory) -> Path:
    return make_untied_t5(tmp_path_factory.mktemp("models") / "tiny-t5-v1_1")


@pytest.fixture(scope="session")
def tiny_t5_sharded(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "tiny-t5-sharded"
    import torch
    from transformers import T5ForConditionalGeneration

    torch.manual_seed(3)
    model = T5ForConditionalGeneration(t5_config(num_layers=3)).eval()
    save_model(model, folder, "t5", max_shard_size="20KB")
    assert (folder / "model.safetensors.index.json").is_file()
    return folder


@pytest.fixture(scope="session")
def tiny_t5_asym(tmp_path_factory) -> Path:
    """t5-efficient style: encoder and decoder of different depths."""
    return make_t5(tmp_path_factory.mktemp("models") / "tiny-t5-asym", seed=4, num_layers=3,
                   num_decoder_layers=1)


@pytest.fixture(scope="session")
def tiny_bart(tmp_path_factory) -> Path:
    return make_bart(tmp_path_factory.mktemp("models") / "tiny-bart")


@pytest.fixture
def copy_model(tmp_path):
    """Copy a fixture model to a private folder a test may damage."""
    import shutil

    def copy(source: Path, name: str = "model") -> Path:
        target = tmp_path / name
        shutil.copytree(source, target)
        return target

    return copy


@pytest.fixture
def hub_cache(isolated_hf_home):
    def build(repo_id: str, source: Path, commit: str = "a" * 40) -> Path:
        return build_hub_cache(isolated_hf_home, repo_id, source, commit)

    return build


@pytest.fixture(scope="module")
def models(tiny_t5, tiny_bart):
    """The tiny T5 and BART with eager attention (so attention weights exist), and their tokenizers."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    def load(folder):
        model = AutoModelForSeq2SeqLM.from_pretrained(str(folder), attn_implementation="eager").eval()
        return model, AutoTokenizer.from_pretrained(str(folder))

    return {"t5": load(tiny_t5), "bart": load(tiny_bart)}
