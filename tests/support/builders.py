"""Tiny checkpoints with real tokenizers, built offline, and a hand-built Hugging Face cache entry."""

from __future__ import annotations

import json
import os
from pathlib import Path

WORDS = ("translate English to German Spanish French : summarize the a red blue green house cat dog is "
         "small big and I love fish see eat one two three four five on of in with sun moon car tree").split()


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
    """A T5 v1.1 / flan-t5 style checkpoint: gated-gelu, and an lm_head stored with its own values (so, as for the
    real flan-t5, transformers does not rescale the decoder output by d_model**-0.5)."""
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
    config.pop("scale_decoder_outputs", None)  # as in a real flan-t5 config.json: transformers derives it (False)
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
