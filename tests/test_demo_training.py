"""End-to-end test of scripts/train_demo.py in its tiny configuration (seconds, offline)."""

from __future__ import annotations

import importlib.util
import json
import random
import socket
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_demo.py"


@pytest.fixture(scope="module")
def train_demo():
    spec = importlib.util.spec_from_file_location("train_demo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_demo"] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_run(train_demo, tmp_path_factory):
    """One tiny end-to-end run (train, save, reload, evaluate), shared by the tests below.

    Module scoped, so it runs before the function-scoped network guard of
    conftest.py: it installs its own.
    """
    out = tmp_path_factory.mktemp("demo")
    threads = torch.get_num_threads()

    def refuse(*args, **kwargs):
        raise RuntimeError("the demo training tried to open a network connection")

    with pytest.MonkeyPatch.context() as mp:
        for target, name in ((socket.socket, "connect"), (socket.socket, "connect_ex"),
                             (socket, "create_connection"), (socket, "getaddrinfo")):
            mp.setattr(target, name, refuse)
        mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf_home")))
        try:
            cfg = train_demo.parse_args(["--out", str(out), "--tiny"])
            result = train_demo.run(cfg, log=lambda *_: None)
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(False)
    return out, result


def test_generator_targets_are_deterministic_and_aligned(train_demo):
    a = [train_demo.sample_sentence(random.Random(3)) for _ in range(1)]
    b = [train_demo.sample_sentence(random.Random(3)) for _ in range(1)]
    assert a == b
    rng = random.Random(1)
    for _ in range(200):
        s = train_demo.sample_sentence(rng)
        for lang in train_demo.LANGS:
            pair = train_demo.render(s, lang)
            assert pair == train_demo.render(s, lang)
            src = pair.source.split()
            assert len(pair.alignment) == len(pair.target.split())
            assert all(i is None or 0 <= i < len(src) for i, _ in pair.alignment)


def test_example_sentence_and_word_order(train_demo):
    house = next(i for i, n in enumerate(train_demo.OBJECT_NOUNS) if n[0] == "house")
    adj = {a[0]: i for i, a in enumerate(train_demo.ADJECTIVES)}
    s = train_demo.Sentence("copula", train_demo.NounPhrase("obj", house, adj["red"], "the", False), pred=adj["small"])
    got = {lang: train_demo.render(s, lang).target for lang in train_demo.LANGS}
    assert got == {"es": "la casa roja es pequeña", "fr": "la maison rouge est petite", "de": "das rote Haus ist klein"}
    assert train_demo.render(s, "es").source == "the red house is small"


def test_held_out_sentences_are_not_among_5000_training_samples(train_demo):
    test = train_demo.test_pairs(0, 30)
    assert len(test) == 90 and all(train_demo.is_held_out(p.source) for p in test)
    sources = {p.source for p in test}
    stream = train_demo.training_pairs(random.Random(0))
    assert not any(next(stream).source in sources for _ in range(5000))


def test_tokenizer_round_trip(train_demo):
    tok = train_demo.build_tokenizer()
    train_demo.check_tokenizer(tok)  # raises on failure
    ids = tok("translate English to German: The Red House is small")["input_ids"]
    assert ids[-1] == tok.eos_token_id == 1 and tok.unk_token_id not in ids
    target = "das rote Haus ist klein"
    assert tok.decode(tok(target)["input_ids"], skip_special_tokens=True) == target


def test_training_is_deterministic(train_demo):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        cfg = train_demo.parse_args(["--out", "unused", "--tiny", "--steps", "8"])
        tok = train_demo.build_tokenizer()
        runs = []
        for _ in range(2):
            model = train_demo.build_model(cfg, len(tok))
            runs.append(train_demo.train(cfg, model, tok, log=lambda *_: None))
    finally:
        torch.set_num_threads(threads)
    assert runs[0] == runs[1]


def test_tiny_training_loss_decreases(train_demo, tiny_run):
    _, result = tiny_run
    losses = result["losses"]
    assert len(losses) == train_demo.TINY_OVERRIDES["steps"]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.85 * first, (first, last)


def test_tiny_output_folder_loads(tiny_run):
    out, result = tiny_run
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                 "tokenizer_config.json", "eval.json", "MODEL_CARD.md"):
        assert (out / name).is_file(), name
    from transformers import AutoTokenizer, PreTrainedTokenizerFast, T5ForConditionalGeneration

    model = T5ForConditionalGeneration.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert (tok.pad_token_id, tok.eos_token_id) == (0, 1)
    assert model.config.decoder_start_token_id == 0
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    tsp = config["task_specific_params"]
    assert tsp["translation_en_to_es"]["prefix"] == "translate English to Spanish: "
    assert tsp["translation_en_to_fr"]["prefix"] == "translate English to French: "
    assert tsp["translation_en_to_de"]["prefix"] == "translate English to German: "
    gen = json.loads((out / "generation_config.json").read_text(encoding="utf-8"))
    assert (gen["decoder_start_token_id"], gen["eos_token_id"], gen["pad_token_id"]) == (0, 1, 0)
    enc = tok(["translate English to Spanish: the red house is small"], return_tensors="pt")
    with torch.no_grad():
        out_ids = model.generate(**enc, max_new_tokens=5)
    assert out_ids.shape[0] == 1
    report = json.loads((out / "eval.json").read_text(encoding="utf-8"))
    assert set(report["exact_match"]) == {"es", "fr", "de", "overall"}
    assert len(report["alignment"]["per_layer"]) == model.config.num_decoder_layers
    assert report["info"]["params"] == sum(p.numel() for p in model.parameters())
