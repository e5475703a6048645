"""Write big checkpoints without their data: real safetensors headers, holes (sparse files) for the tensors.

Used by the benchmarks and by tests that need flan-t5-base or 11B shapes without downloading anything.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

DTYPE_CODES = {"float32": ("F32", 4), "bfloat16": ("BF16", 2), "float16": ("F16", 2)}

FLAN_T5_BASE = dict(model_type="t5", architectures=["T5ForConditionalGeneration"], vocab_size=32128, d_model=768,
                    d_kv=64, d_ff=2048, num_layers=12, num_decoder_layers=12, num_heads=12,
                    feed_forward_proj="gated-gelu", tie_word_embeddings=False, decoder_start_token_id=0,
                    pad_token_id=0, eos_token_id=1, relative_attention_num_buckets=32)
FLAN_T5_SMALL = dict(FLAN_T5_BASE, d_model=512, d_kv=64, d_ff=1024, num_layers=8, num_decoder_layers=8, num_heads=6)
FLAN_T5_XXL = dict(FLAN_T5_BASE, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_decoder_layers=24,
                   num_heads=64)
T5_XXL_11B = dict(FLAN_T5_BASE, d_model=1024, d_kv=128, d_ff=65536, num_layers=24, num_decoder_layers=24,
                  num_heads=128, feed_forward_proj="relu", tie_word_embeddings=True)


def t5_tensor_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """The tensors a T5 checkpoint stores (what save_pretrained writes), derived from the config alone."""
    d, kv, ff, heads = config["d_model"], config["d_kv"], config["d_ff"], config["num_heads"]
    inner = kv * heads
    gated = config.get("feed_forward_proj", "relu").startswith("gated")
    shapes: dict[str, tuple[int, ...]] = {"shared.weight": (config["vocab_size"], d)}
    for stack, layers in (("encoder", config["num_layers"]), ("decoder", config["num_decoder_layers"])):
        for i in range(layers):
            prefix = f"{stack}.block.{i}.layer"
            attention = ["SelfAttention"] + (["EncDecAttention"] if stack == "decoder" else [])
            for j, name in enumerate(attention):
                for proj in "qkv":
                    shapes[f"{prefix}.{j}.{name}.{proj}.weight"] = (inner, d)
                shapes[f"{prefix}.{j}.{name}.o.weight"] = (d, inner)
                if i == 0 and name == "SelfAttention":
                    shapes[f"{prefix}.{j}.{name}.relative_attention_bias.weight"] = (
                        config.get("relative_attention_num_buckets", 32), heads)
                shapes[f"{prefix}.{j}.layer_norm.weight"] = (d,)
            ffn = len(attention)
            if gated:
                shapes[f"{prefix}.{ffn}.DenseReluDense.wi_0.weight"] = (ff, d)
                shapes[f"{prefix}.{ffn}.DenseReluDense.wi_1.weight"] = (ff, d)
            else:
                shapes[f"{prefix}.{ffn}.DenseReluDense.wi.weight"] = (ff, d)
            shapes[f"{prefix}.{ffn}.DenseReluDense.wo.weight"] = (d, ff)
            shapes[f"{prefix}.{ffn}.layer_norm.weight"] = (d,)
        shapes[f"{stack}.final_layer_norm.weight"] = (d,)
    if config.get("tie_word_embeddings") is False:
        shapes["lm_head.weight"] = (config["vocab_size"], d)
    return shapes


def write_sparse_checkpoint(folder: Path, config: dict, shards: int = 1, dtype: str = "float32") -> Path:
    """Write config.json and `shards` safetensors files whose data regions are holes."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    code, size = DTYPE_CODES[dtype]
    shapes = t5_tensor_shapes(config)
    names = list(shapes)
    per_shard = -(-len(names) // shards)
    weight_map = {}
    total_size = 0
    for index in range(shards):
        chunk = names[index * per_shard:(index + 1) * per_shard]
        file = "model.safetensors" if shards == 1 else f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for name in chunk:
            nbytes = size
            for dim in shapes[name]:
                nbytes *= dim
            header[name] = {"dtype": code, "shape": list(shapes[name]), "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            weight_map[name] = file
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % 8)
        with open(folder / file, "wb") as handle:
            handle.write(struct.pack("<Q", len(encoded)))
            handle.write(encoded)
            handle.truncate(8 + len(encoded) + offset)
        total_size += offset
    if shards > 1:
        index_doc = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index_doc, indent=2))
    return folder
