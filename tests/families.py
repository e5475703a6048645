"""The one list of encoder-decoder families t5peek is tested on, with a builder for a tiny random checkpoint of each.

Every family names its transformers `model_type`, a builder that writes a tiny checkpoint (safetensors, config.json,
generation_config.json) and a word-level tokenizer into a folder, and which commands support it.
`tests/test_families.py` runs every command on every family; `scripts/families_table.py` turns this list into the
README table, so the two cannot drift apart.

This module imports neither torch nor transformers at import time (the table script reads it without them).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from t5peek import families as family_table

COMMANDS = ("info", "arch", "params", "trace", "generate")


@dataclass(frozen=True)
class Family:
    name: str  # the row label in the README table
    model_type: str
    build: Callable[[Path, int], Path]  # (folder, seed): writes the tiny checkpoint and tokenizer, returns the folder
    seed: int  # chosen so that greedy decoding of PROMPT gives 5 tokens, not the end of sequence at once
    example: str  # a real checkpoint of the family, for the README
    note: str = ""  # what this family shows that the others do not
    unsupported: dict[str, str] = field(default_factory=dict)  # command → why it is not supported yet
    # transformers' own generate() fails on it (the reference the test compares with then runs without a cache)
    generate_needs_no_cache: bool = False
    encoder_attention: str = "self"  # the kind of attention weights `trace` shows for the encoder

    def supports(self, command: str) -> bool:
        return command not in self.unsupported

    def make(self, folder: Path) -> Path:
        return self.build(folder, self.seed)

    @property
    def slug(self) -> str:
        """A name for test ids and folders: 'longt5, local' → 'longt5-local'."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


# ----------------------------------------------------------------------------- builders

D_MODEL, HEADS, FFN, LAYERS = 32, 4, 64, 2
SEED = 0
# Larger random weights than the default initialisation, so that tiny models do not emit the same token (or end of
# sequence) at once: greedy parity with generate() is then checked over several different tokens.
T5_INIT, BART_INIT = 8.0, 0.3


def _vocab(tokenizer: str) -> int:
    from support.builders import vocab_size

    return vocab_size(tokenizer)


def _specials(tokenizer: str) -> dict:
    """Special-token ids as conftest.build_tokenizer lays them out."""
    if tokenizer == "t5":
        return dict(pad_token_id=0, eos_token_id=1)
    return dict(bos_token_id=0, pad_token_id=1, eos_token_id=2)


def _save(model, folder: Path, tokenizer: str) -> Path:
    """save_pretrained plus the tokenizer; a generation_config.json is always written (generate() reads it)."""
    from support.builders import build_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if not (folder / "generation_config.json").is_file():
        model.generation_config.save_pretrained(folder)
    build_tokenizer(folder, tokenizer)
    return folder


def _make(model_class: str, config, folder: Path, tokenizer: str, seed: int) -> Path:
    import torch
    import transformers

    torch.manual_seed(seed)
    model = getattr(transformers, model_class)(config).eval()
    return _save(model, folder, tokenizer)


def _t5_like(config_class: str, **overrides):
    import transformers

    values = dict(vocab_size=_vocab("t5"), d_model=D_MODEL, d_kv=8, d_ff=FFN, num_layers=LAYERS, num_heads=HEADS,
                  relative_attention_num_buckets=8, relative_attention_max_distance=16, decoder_start_token_id=0,
                  dropout_rate=0.0, initializer_factor=T5_INIT, **_specials("t5"))
    values.update(overrides)
    return getattr(transformers, config_class)(**values)


def _bart_like(config_class: str, tokenizer: str = "bart", **overrides):
    import transformers

    specials = _specials(tokenizer)
    values = dict(vocab_size=_vocab(tokenizer), d_model=D_MODEL, encoder_layers=LAYERS, decoder_layers=LAYERS,
                  encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=FFN,
                  decoder_ffn_dim=FFN, max_position_embeddings=64, dropout=0.0, init_std=BART_INIT, **specials)
    values.setdefault("decoder_start_token_id", specials["eos_token_id"])
    values.update(overrides)
    return getattr(transformers, config_class)(**{key: value for key, value in values.items() if value is not None})


def build_t5(folder: Path, seed: int = SEED) -> Path:
    from support.builders import make_t5

    return make_t5(folder, seed=seed, initializer_factor=T5_INIT)


def build_t5_v1_1(folder: Path, seed: int = SEED) -> Path:
    from support.builders import make_untied_t5

    return make_untied_t5(folder, seed=seed)


def build_t5_asym(folder: Path, seed: int = SEED) -> Path:
    from support.builders import make_t5

    return make_t5(folder, seed=seed, num_layers=3, num_decoder_layers=1, initializer_factor=T5_INIT)


def build_t5_deep_decoder(folder: Path, seed: int = SEED) -> Path:
    from support.builders import make_t5

    return make_t5(folder, seed=seed, num_layers=1, num_decoder_layers=3, initializer_factor=T5_INIT)


def _untie_head(folder: Path, seed: int) -> Path:
    """Store lm_head.weight with its own values and say tie_word_embeddings=false, as mT5 and umT5 checkpoints do
    (transformers 5 builds them tied, so save_pretrained alone would not)."""
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(folder / "model.safetensors")
    generator = torch.Generator().manual_seed(seed)
    state["lm_head.weight"] = torch.randn(state["shared.weight"].shape, generator=generator)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def build_mt5(folder: Path, seed: int = SEED) -> Path:
    config = _t5_like("MT5Config", feed_forward_proj="gated-gelu", architectures=["MT5ForConditionalGeneration"])
    return _untie_head(_make("MT5ForConditionalGeneration", config, folder, "t5", seed=seed), seed=seed)


def build_umt5(folder: Path, seed: int = SEED) -> Path:
    config = _t5_like("UMT5Config", feed_forward_proj="gated-gelu", architectures=["UMT5ForConditionalGeneration"])
    return _untie_head(_make("UMT5ForConditionalGeneration", config, folder, "t5", seed=seed), seed=seed)


def build_longt5_local(folder: Path, seed: int = SEED) -> Path:
    config = _t5_like("LongT5Config", encoder_attention_type="local", local_radius=3, global_block_size=4,
                      architectures=["LongT5ForConditionalGeneration"])
    return _make("LongT5ForConditionalGeneration", config, folder, "t5", seed=seed)


def build_longt5_tglobal(folder: Path, seed: int = SEED) -> Path:
    config = _t5_like("LongT5Config", encoder_attention_type="transient-global", local_radius=3, global_block_size=4,
                      architectures=["LongT5ForConditionalGeneration"])
    return _make("LongT5ForConditionalGeneration", config, folder, "t5", seed=seed)


def build_switch(folder: Path, seed: int = SEED) -> Path:
    # num_decoder_layers defaults to 12 in SwitchTransformersConfig, whatever num_layers says
    config = _t5_like("SwitchTransformersConfig", num_decoder_layers=LAYERS, num_experts=4, expert_capacity=64,
                      num_sparse_encoder_layers=1, num_sparse_decoder_layers=1, router_jitter_noise=0.0,
                      architectures=["SwitchTransformersForConditionalGeneration"])
    return _make("SwitchTransformersForConditionalGeneration", config, folder, "t5", seed=seed)


def build_bart(folder: Path, seed: int = SEED) -> Path:
    from support.builders import make_bart

    return make_bart(folder, seed=seed, init_std=BART_INIT)


def build_mbart(folder: Path, seed: int = SEED) -> Path:
    config = _bart_like("MBartConfig", architectures=["MBartForConditionalGeneration"])
    return _make("MBartForConditionalGeneration", config, folder, "bart", seed=seed)


def build_marian(folder: Path, seed: int = SEED) -> Path:
    # Marian starts the decoder with the pad token, and its eos is 0 in real checkpoints; here the ids follow the
    # t5 tokenizer layout (<pad> 0, </s> 1).
    config = _bart_like("MarianConfig", tokenizer="t5", decoder_start_token_id=0, forced_eos_token_id=1,
                        architectures=["MarianMTModel"])
    return _make("MarianMTModel", config, folder, "t5", seed=seed)


def build_pegasus(folder: Path, seed: int = SEED) -> Path:
    config = _bart_like("PegasusConfig", tokenizer="t5", decoder_start_token_id=0, forced_eos_token_id=1,
                        architectures=["PegasusForConditionalGeneration"])
    return _make("PegasusForConditionalGeneration", config, folder, "t5", seed=seed)


def build_m2m_100(folder: Path, seed: int = SEED) -> Path:
    config = _bart_like("M2M100Config", encoder_layerdrop=0.0, decoder_layerdrop=0.0, init_std=0.02,
                        architectures=["M2M100ForConditionalGeneration"])
    return _make("M2M100ForConditionalGeneration", config, folder, "bart", seed=seed)


def build_blenderbot(folder: Path, seed: int = SEED) -> Path:
    # encoder_no_repeat_ngram_size=3 (the default) stays: generate() then bans repeating the prompt's 3-grams
    config = _bart_like("BlenderbotConfig", decoder_start_token_id=0, forced_eos_token_id=2,
                        architectures=["BlenderbotForConditionalGeneration"])
    return _make("BlenderbotForConditionalGeneration", config, folder, "bart", seed=seed)


def build_led(folder: Path, seed: int = SEED) -> Path:
    config = _bart_like("LEDConfig", max_position_embeddings=None, max_encoder_position_embeddings=64,
                        max_decoder_position_embeddings=64, attention_window=4,
                        architectures=["LEDForConditionalGeneration"])
    return _make("LEDForConditionalGeneration", config, folder, "bart", seed=seed)


def build_plbart(folder: Path, seed: int = SEED) -> Path:
    config = _bart_like("PLBartConfig", architectures=["PLBartForConditionalGeneration"])
    return _make("PLBartForConditionalGeneration", config, folder, "bart", seed=seed)


def build_blenderbot_small(folder: Path, seed: int = SEED) -> Path:
    config = _bart_like("BlenderbotSmallConfig", decoder_start_token_id=0, forced_eos_token_id=2,
                        architectures=["BlenderbotSmallForConditionalGeneration"])
    return _make("BlenderbotSmallForConditionalGeneration", config, folder, "bart", seed=seed)


def build_mvp(folder: Path, seed: int = SEED) -> Path:
    config = _bart_like("MvpConfig", forced_eos_token_id=2, architectures=["MvpForConditionalGeneration"])
    return _make("MvpForConditionalGeneration", config, folder, "bart", seed=seed)


def build_pegasus_x(folder: Path, seed: int = SEED) -> Path:
    config = _bart_like("PegasusXConfig", tokenizer="t5", decoder_start_token_id=0, forced_eos_token_id=1, block_size=4,
                        num_global_tokens=2, stagger_local_blocks=True,
                        architectures=["PegasusXForConditionalGeneration"])
    return _make("PegasusXForConditionalGeneration", config, folder, "t5", seed=seed)


def build_bigbird_pegasus(folder: Path, seed: int = SEED) -> Path:
    # block_sparse (the default) needs more than (5 + 2 * num_random_blocks) * block_size tokens, else transformers
    # runs full attention, as it does for the test prompt
    config = _bart_like("BigBirdPegasusConfig", tokenizer="t5", decoder_start_token_id=0, forced_eos_token_id=1,
                        attention_type="block_sparse", block_size=4, num_random_blocks=2,
                        architectures=["BigBirdPegasusForConditionalGeneration"])
    return _make("BigBirdPegasusForConditionalGeneration", config, folder, "t5", seed=seed)


def build_nllb_moe(folder: Path, seed: int = SEED) -> Path:
    config = _bart_like("NllbMoeConfig", num_experts=4, expert_capacity=8, encoder_sparse_step=2,
                        decoder_sparse_step=2, router_dtype="float32", init_std=1.0,
                        architectures=["NllbMoeForConditionalGeneration"])
    return _make("NllbMoeForConditionalGeneration", config, folder, "bart", seed=seed)


def build_fsmt(folder: Path, seed: int = SEED) -> Path:
    import transformers

    specials = _specials("bart")
    config = transformers.FSMTConfig(langs=["en", "de"], src_vocab_size=_vocab("bart"), tgt_vocab_size=_vocab("bart"),
                                     d_model=D_MODEL, encoder_layers=LAYERS, decoder_layers=LAYERS,
                                     encoder_attention_heads=HEADS, decoder_attention_heads=HEADS,
                                     encoder_ffn_dim=FFN, decoder_ffn_dim=FFN, max_position_embeddings=64,
                                     init_std=BART_INIT, decoder_start_token_id=specials["eos_token_id"],
                                     architectures=["FSMTForConditionalGeneration"], **specials)
    return _make("FSMTForConditionalGeneration", config, folder, "bart", seed=seed)


def build_prophetnet(folder: Path, seed: int = SEED) -> Path:
    """ProphetNet: info, arch and params work; trace and generate refuse it (t5peek.families). Not in FAMILIES
    until `t5peek generate` refuses it too (it now fails with exit 1 inside the decoder)."""
    import transformers

    specials = _specials("bart")
    config = transformers.ProphetNetConfig(vocab_size=_vocab("bart"), hidden_size=D_MODEL, encoder_ffn_dim=FFN,
                                           decoder_ffn_dim=FFN, num_encoder_layers=LAYERS, num_decoder_layers=LAYERS,
                                           num_encoder_attention_heads=HEADS, num_decoder_attention_heads=HEADS,
                                           max_position_embeddings=64, ngram=2, num_buckets=8, relative_max_distance=16,
                                           decoder_start_token_id=specials["bos_token_id"],
                                           architectures=["ProphetNetForConditionalGeneration"], **specials)
    return _make("ProphetNetForConditionalGeneration", config, folder, "bart", seed=seed)


def build_bert2bert(folder: Path, seed: int = SEED) -> Path:
    """EncoderDecoderModel: a BERT encoder and a BERT decoder whose layers hold the cross-attention."""
    import torch
    from transformers import BertConfig, EncoderDecoderConfig, EncoderDecoderModel

    specials = _specials("bart")
    bert = dict(vocab_size=_vocab("bart"), hidden_size=D_MODEL, num_hidden_layers=LAYERS,
                num_attention_heads=HEADS, intermediate_size=FFN, max_position_embeddings=64,
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=BART_INIT, **specials)
    encoder = BertConfig(**bert)
    decoder = BertConfig(**bert, is_decoder=True, add_cross_attention=True)
    config = EncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = specials["bos_token_id"]
    config.pad_token_id = specials["pad_token_id"]
    config.eos_token_id = specials["eos_token_id"]
    config.architectures = ["EncoderDecoderModel"]
    torch.manual_seed(seed)
    model = EncoderDecoderModel(config=config).eval()
    model.generation_config.decoder_start_token_id = specials["bos_token_id"]
    model.generation_config.pad_token_id = specials["pad_token_id"]
    model.generation_config.eos_token_id = specials["eos_token_id"]
    return _save(model, folder, "bart")


# ----------------------------------------------------------------------------- the list

PROMPT = "translate English to German : the red house is small"

FAMILIES: tuple[Family, ...] = (
    Family("t5 (v1.0)", "t5", build_t5, 1, "google-t5/t5-small", "output head tied to the embedding"),
    Family("t5 v1.1 / flan-t5", "t5", build_t5_v1_1, 1, "google/flan-t5-base",
           "untied output head, gated-gelu feed-forward"),
    Family("t5-efficient, deeper encoder", "t5", build_t5_asym, 1, "google/t5-efficient-small-el16",
           "3 encoder blocks, 1 decoder block"),
    Family("t5-efficient, deeper decoder", "t5", build_t5_deep_decoder, 2, "google/t5-efficient-small-dl12",
           "1 encoder block, 3 decoder blocks (transformers' generate() fails on it; t5peek does not)",
           generate_needs_no_cache=True),
    Family("mt5", "mt5", build_mt5, 6, "google/mt5-small", "untied output head"),
    Family("umt5", "umt5", build_umt5, 1, "google/umt5-small",
           "a relative position bias in every block, untied output head"),
    Family("longt5, local", "longt5", build_longt5_local, 1, "google/long-t5-local-base",
           "local attention in the encoder", encoder_attention="local"),
    Family("longt5, transient-global", "longt5", build_longt5_tglobal, 0, "google/long-t5-tglobal-base",
           "transient-global attention in the encoder", encoder_attention="transient-global"),
    Family("switch_transformers", "switch_transformers", build_switch, 0, "google/switch-base-8",
           "mixture of experts: the router and experts in arch/params, the expert of each token in trace"),
    Family("bart", "bart", build_bart, 0, "facebook/bart-base"),
    Family("mbart", "mbart", build_mbart, 0, "facebook/mbart-large-50"),
    Family("marian", "marian", build_marian, 4, "Helsinki-NLP/opus-mt-en-de", "the decoder starts with the pad token"),
    Family("pegasus", "pegasus", build_pegasus, 4, "google/pegasus-xsum"),
    Family("m2m_100 / nllb", "m2m_100", build_m2m_100, 14, "facebook/nllb-200-distilled-600M",
           "sinusoidal positions, computed (no parameters)"),
    Family("blenderbot", "blenderbot", build_blenderbot, 4, "facebook/blenderbot-400M-distill"),
    Family("led", "led", build_led, 3, "allenai/led-base-16384",
           "sliding-window (local) attention in the encoder; global tokens with Model.trace(global_attention_mask=)",
           encoder_attention="local"),
    Family("plbart", "plbart", build_plbart, 6, "uclanlp/plbart-base"),
    Family("blenderbot-small", "blenderbot-small", build_blenderbot_small, 6, "facebook/blenderbot_small-90M"),
    Family("mvp", "mvp", build_mvp, 11, "RUCAIBox/mvp"),
    Family("pegasus_x", "pegasus_x", build_pegasus_x, 11, "google/pegasus-x-base",
           "block-local attention with global tokens in the encoder", encoder_attention="local"),
    Family("bigbird_pegasus", "bigbird_pegasus", build_bigbird_pegasus, 20, "google/bigbird-pegasus-large-arxiv",
           "block-sparse attention in the encoder (transformers falls back to full attention for short prompts)"),
    Family("nllb-moe", "nllb-moe", build_nllb_moe, 0, "facebook/nllb-moe-54b",
           "mixture of experts with top-2 routing: both experts of each token in trace"),
    Family("fsmt", "fsmt", build_fsmt, 12, "facebook/wmt19-en-de", "separate source and target vocabularies"),
    Family("encoder-decoder (bert2bert)", "encoder-decoder", build_bert2bert, 10,
           "patrickvonplaten/bert2bert_cnn_daily_mail", "EncoderDecoderModel: the cross-attention sits inside the "
           "decoder's BERT layers"),
    Family("prophetnet", "prophetnet", build_prophetnet, 0, "microsoft/prophetnet-large-uncased",
           unsupported=dict(family_table.family("prophetnet").refused)),
)


def by_name(name: str) -> Family:
    return next(family for family in FAMILIES if family.name == name)

