"""The checkpoints the benchmarks need, built locally and cached (nothing is downloaded).

- sparse checkpoints (config.json + real safetensors headers over holes) for `params` and `arch`, which read
  headers and config only: small, base and 11B (T5-XXL) shapes, 5 shards each;
- one runnable checkpoint with random weights and a word-level tokenizer for `trace`, `generate`, `attend`, `lens`,
  `generate --occlusion` and `load`: flan-t5-base shaped (248M parameters, float32, ~990 MB on disk);
- one for the size of the `generate --html` report: flan-t5-small shaped (77M parameters), whose
  generation_config sets min_new_tokens so that a random model writes every token asked for (no early `</s>`).

`--smoke` uses tiny configs of the same structure. Building the runnable one needs torch, so it happens in a
worker process (bench/workers.py build-model); this module itself stays free of torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sparse_checkpoint import FLAN_T5_BASE, FLAN_T5_SMALL, T5_XXL_11B, write_sparse_checkpoint

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_CACHE = BENCH_DIR / ".cache"
BUILDER_VERSION = 1  # bump to rebuild every cached checkpoint
SHARDS = 5

# model size scaling: name → config (shapes only; the data regions are holes)
SIZES = {"small": FLAN_T5_SMALL, "base": FLAN_T5_BASE, "xxl": T5_XXL_11B}
HEADLINE_SIZE = "xxl"

_TINY = dict(FLAN_T5_BASE, vocab_size=128, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
             num_heads=4, relative_attention_max_distance=16, relative_attention_num_buckets=8)
SMOKE_SIZES = {"small": dict(_TINY, d_model=16, d_kv=4, num_heads=4, d_ff=32),
               "base": _TINY,
               "xxl": dict(_TINY, d_model=64, d_ff=256, num_layers=4, num_decoder_layers=4, feed_forward_proj="relu",
                           tie_word_embeddings=True)}
RUNNABLE = FLAN_T5_BASE
SMOKE_RUNNABLE = _TINY
HTML_MODEL = FLAN_T5_SMALL  # T5Config(d_model=512, d_ff=1024, num_layers=8, num_heads=6, d_kv=64, gated-gelu)
SMOKE_HTML_MODEL = _TINY


def parameter_count(config: dict) -> int:
    """Distinct parameters of a T5 config (tied embeddings once), as the headers give them."""
    from sparse_checkpoint import t5_tensor_shapes

    total = 0
    for shape in t5_tensor_shapes(config).values():
        count = 1
        for dim in shape:
            count *= dim
        total += count
    return total


def _stamp(config: dict, kind: str, **extra) -> dict:
    return {"builder": BUILDER_VERSION, "kind": kind, "config": config, **extra}


def _is_current(folder: Path, stamp: dict) -> bool:
    stamp_file = folder.parent / f"{folder.name}.stamp.json"
    try:
        return folder.is_dir() and json.loads(stamp_file.read_text()) == stamp
    except (OSError, ValueError):
        return False


def _write_stamp(folder: Path, stamp: dict) -> None:
    (folder.parent / f"{folder.name}.stamp.json").write_text(json.dumps(stamp, indent=1, sort_keys=True))


def _clear(folder: Path) -> None:
    import shutil

    if folder.exists():
        shutil.rmtree(folder)


def sparse_checkpoint(cache: Path, name: str, config: dict, shards: int = SHARDS) -> Path:
    """A checkpoint of `config`'s shapes whose tensor data are holes (a few KB on disk, any apparent size)."""
    folder = cache / "sparse" / f"{name}-{shards}shards"
    stamp = _stamp(config, "sparse", shards=shards)
    if not _is_current(folder, stamp):
        _clear(folder)
        write_sparse_checkpoint(folder, config, shards=shards)
        _write_stamp(folder, stamp)
    return folder


def runnable_checkpoint(cache: Path, config: dict, name: str, seed: int = 0, in_process: bool = False,
                        generation: dict | None = None) -> Path:
    """A checkpoint with random weights and a tokenizer, built once: by a worker process, or in this process
    when it has torch loaded anyway (`in_process`, the in-process benchmark worker). `generation` overrides
    settings of its generation_config.json (e.g. min_new_tokens)."""
    folder = cache / name
    stamp = _stamp(config, "runnable", seed=seed, **({"generation": generation} if generation else {}))
    if not _is_current(folder, stamp):
        _clear(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        if in_process:
            from workers import build_model

            build_model(folder, config, seed, generation)
        else:
            subprocess.run([sys.executable, str(BENCH_DIR / "workers.py"), "build-model", str(folder),
                            json.dumps(config), str(seed), json.dumps(generation or {})], check=True)
        _write_stamp(folder, stamp)
    return folder


def runnable_name(config: dict) -> str:
    return "flan-t5-base-random" if config == RUNNABLE else "tiny-t5-random"


def html_checkpoint(cache: Path, config: dict, new_tokens: int) -> Path:
    """The model of the HTML report's size: random weights that write exactly `new_tokens` tokens (the
    generation_config bans `</s>` until then)."""
    name = ("flan-t5-small-random" if config == HTML_MODEL else "tiny-t5-random") + f"-min{new_tokens}"
    return runnable_checkpoint(cache, config, name, generation={"min_new_tokens": new_tokens})


def weights_size(folder: Path) -> int:
    """Bytes of the safetensors files (allocated size equals apparent size: they are not sparse)."""
    return sum(path.stat().st_size for path in folder.glob("*.safetensors"))


def prompt_words(length: int) -> str:
    """A prompt that tokenizes to exactly `length` tokens with the word-level tokenizer (its words, then </s>)."""
    return " ".join(f"w{3 + (i * 7) % 97}" for i in range(length - 1))
