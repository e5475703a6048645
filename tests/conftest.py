"""Fixtures: tiny random checkpoints with real tokenizers, a loopback Hub, a hand-built Hub cache, a network guard."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import sys

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/support and tests/helpers.py

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS = ("translate English to German Spanish French : summarize the a red blue green house cat dog is "
         "small big and I love fish see eat one two three four five on of in with sun moon car tree").split()


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


LOOPBACK_PORTS: set[int] = set()  # ports of the loopback Hubs the running test started
_LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection other than to the test's own loopback Hub fails the test."""
    real_connect, real_connect_ex, real_getaddrinfo = (socket.socket.connect, socket.socket.connect_ex,
                                                      socket.getaddrinfo)

    def allowed(address) -> bool:
        return isinstance(address, tuple) and address[0] in _LOOPBACK_HOSTS and address[1] in LOOPBACK_PORTS

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not allowed(address):
            raise NetworkAccessed(f"test tried to open a network connection: {address!r}")
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not allowed(address):
            raise NetworkAccessed(f"test tried to open a network connection: {address!r}")
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in _LOOPBACK_HOSTS:
            raise NetworkAccessed(f"test tried to look up {host!r}")
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


def build_tokenizer(folder: Path, family: str) -> None:
    """A word-level tokenizer made with the `tokenizers` library, saved as standard HF files."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if family == "t5":
        specials = ["<pad>", "</s>", "<unk>"]
        post = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
        names = dict(pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    else:
        specials = ["<s>", "<pad>", "</s>", "<unk>"]
        post = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
        names = dict(bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    vocab = {token: i for i, token in enumerate(specials + list(dict.fromkeys(WORDS)))}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = post
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **names)
    fast.save_pretrained(folder)


def vocab_size(family: str) -> int:
    return len(dict.fromkeys(WORDS)) + (3 if family == "t5" else 4)


def t5_config(**overrides):
    from transformers import T5Config

    values = dict(vocab_size=vocab_size("t5"), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                  relative_attention_num_buckets=8, relative_attention_max_distance=16, decoder_start_token_id=0,
                  pad_token_id=0, eos_token_id=1, architectures=["T5ForConditionalGeneration"])
    values.update(overrides)
    return T5Config(**values)


def bart_config(**overrides):
    from transformers import BartConfig

    values = dict(vocab_size=vocab_size("bart"), d_model=32, encoder_layers=2, decoder_layers=2,
                  encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
                  max_position_embeddings=64, bos_token_id=0, pad_token_id=1, eos_token_id=2,
                  decoder_start_token_id=2, forced_eos_token_id=2, architectures=["BartForConditionalGeneration"])
    values.update(overrides)
    return BartConfig(**values)


def save_model(model, folder: Path, family: str, max_shard_size=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(folder, **kwargs)
    build_tokenizer(folder, family)
    return folder


def make_t5(folder: Path, seed: int = 0, **overrides) -> Path:
    import torch
    from transformers import T5ForConditionalGeneration

    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(t5_config(**overrides)).eval()
    return save_model(model, folder, "t5")


def make_untied_t5(folder: Path, seed: int = 1) -> Path:
    """A T5 v1.1 / flan-t5 style checkpoint: gated-gelu, and an lm_head stored with its own values."""
    import torch
    from safetensors.torch import save_file
    from transformers import T5ForConditionalGeneration

    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(t5_config(feed_forward_proj="gated-gelu")).eval()
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()
             if k not in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")}
    state["lm_head.weight"] = torch.randn_like(state["shared.weight"])
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    config = model.config.to_dict()
    config["tie_word_embeddings"] = False
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    model.generation_config.save_pretrained(folder)
    build_tokenizer(folder, "t5")
    return folder


def make_bart(folder: Path, seed: int = 2, **overrides) -> Path:
    import torch
    from transformers import BartForConditionalGeneration

    torch.manual_seed(seed)
    model = BartForConditionalGeneration(bart_config(**overrides)).eval()
    return save_model(model, folder, "bart")


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


def build_hub_cache(hf_home: Path, repo_id: str, source: Path, commit: str = "a" * 40,
                    ref: str = "main") -> Path:
    """Lay out a real Hugging Face cache entry (blobs, snapshot links, refs) holding `source`'s files."""
    import hashlib

    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    for file in sorted(source.iterdir()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    return snapshot


@pytest.fixture
def hub_cache(isolated_hf_home):
    def build(repo_id: str, source: Path, commit: str = "a" * 40) -> Path:
        return build_hub_cache(isolated_hf_home, repo_id, source, commit)

    return build
