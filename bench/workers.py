"""Processes the benchmarks start and measure (each one fresh, so start-up and peak RSS are its own).

  python bench/workers.py build-model FOLDER CONFIG_JSON SEED [GENERATION_JSON]
                                                random-weight T5 + word-level tokenizer
  python bench/workers.py meta FOLDER           anchor: meta instantiation, as `accelerate estimate-memory` does
  python bench/workers.py load FOLDER           t5peek's load_model (weights and tokenizer), what trace/generate do
  python bench/workers.py from-pretrained FOLDER  anchor: AutoModelForSeq2SeqLM.from_pretrained alone
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_tokenizer(folder: Path, vocab_size: int) -> None:
    """A word-level tokenizer (the `tokenizers` library) whose vocabulary covers every id of the model, so any
    generated id has a token string: <pad> </s> <unk> w3 w4 ... w{vocab_size-1}."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    vocab = {token: i for i, token in enumerate(specials + [f"w{i}" for i in range(3, vocab_size)])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=1024)
    fast.save_pretrained(folder)


def build_model(folder: Path, config: dict, seed: int, generation: dict | None = None) -> None:
    """Random weights in flan-t5's layout. transformers 5 forces tie_word_embeddings=True in T5Config, so a
    model built from the config has a tied head; like flan-t5, an untied config gets lm_head stored with its
    own values (as tests/conftest.py make_untied_t5 does), and from_pretrained keeps it apart. `generation`
    sets fields of generation_config.json (e.g. min_new_tokens)."""
    import torch
    from safetensors.torch import save_file
    from transformers import T5Config, T5ForConditionalGeneration

    values = {k: v for k, v in config.items() if k not in ("model_type",)}
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(T5Config(**values)).eval()
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()
             if k not in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")}
    if config.get("tie_word_embeddings") is False:
        state["lm_head.weight"] = torch.randn_like(state["shared.weight"]) * config["d_model"] ** -0.5
    else:
        state.pop("lm_head.weight", None)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    saved = model.config.to_dict()
    saved["tie_word_embeddings"] = config.get("tie_word_embeddings", True)
    (folder / "config.json").write_text(json.dumps(saved, indent=2))
    for key, value in (generation or {}).items():
        setattr(model.generation_config, key, value)
    model.generation_config.save_pretrained(folder)
    build_tokenizer(folder, config["vocab_size"])
    count = sum(v.numel() for v in state.values())
    print(f"built {folder}: {count:,} parameters", file=sys.stderr)


def meta(folder: str) -> None:
    """What `accelerate estimate-memory` does (accelerate.utils.create_empty_model): the config, then the model
    under init_empty_weights, then count."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    config = AutoConfig.from_pretrained(folder)
    with init_empty_weights():
        model = AutoModelForSeq2SeqLM.from_config(config)
    print(sum(p.numel() for p in model.parameters()))


def resident() -> dict:
    """This process's resident memory now, split as the kernel counts it (bytes): anonymous (heap, tensors
    allocated by torch) and file-backed (mapped files: libraries and memory-mapped safetensors)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def load(folder: str) -> None:
    from t5peek import loading

    loading.quiet_libraries()
    loaded = loading.load_model(loading.resolve_model(folder), eager_attention=True)
    print(json.dumps({"parameters": loaded.model.num_parameters(), "tokenizer": type(loaded.tokenizer).__name__,
                      "resident": resident()}))


def from_pretrained(folder: str) -> None:
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    print(json.dumps({"parameters": model.num_parameters(), "resident": resident()}))


def main(argv: list[str]) -> None:
    command, *rest = argv
    if command == "build-model":
        build_model(Path(rest[0]), json.loads(rest[1]), int(rest[2]), json.loads(rest[3]) if len(rest) > 3 else None)
    elif command == "meta":
        meta(rest[0])
    elif command == "load":
        load(rest[0])
    elif command == "from-pretrained":
        from_pretrained(rest[0])
    else:
        raise SystemExit(f"unknown worker command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
