"""What every decoding core shares about a sequence-to-sequence model: one home for each fact.

- Where the encoder's and the decoder's settings live in config.json (EncoderDecoderModel nests them).
- One position-limit rule for the prompt, the target, trace steps and generated tokens.
- Which pieces of a text the tokenizer does not know (they all become the same unknown token).
- The decoder's first token, the end-of-sequence ids, the teacher-forcing shift, a fresh KV cache, and
  token strings.

Nothing here imports torch at module level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from t5peek import anatomy, families
from t5peek.errors import BadCheckpoint, UnsupportedModel, UsageError
from t5peek.loading import DEMO_NAME

_SANE_MAX_LENGTH = 1_000_000  # tokenizers without a limit report int(1e30)


def encoder_config(raw: dict) -> dict:
    """The part of config.json that describes the encoder (EncoderDecoderModel nests it under "encoder")."""
    return raw["encoder"] if isinstance(raw.get("encoder"), dict) else raw


def decoder_config(raw: dict) -> dict:
    return raw["decoder"] if isinstance(raw.get("decoder"), dict) else raw


def relative_positions(raw: dict) -> bool:
    """T5-family models encode relative positions: no learned table caps the sequence length."""
    return families.position_kind(raw.get("model_type")) == families.RELATIVE


@dataclass(frozen=True)
class PositionLimit:
    """The longest sequence a stack takes. `hard`: a learned position table ends there (going past fails);
    otherwise it is only the length the model was trained for (the tokenizer's model_max_length)."""

    positions: int | None
    source: str = ""
    hard: bool = True


def encoder_limit(raw: dict, tokenizer=None) -> PositionLimit:
    return _limit(raw, encoder_config(raw), "max_positions", tokenizer, "the encoder's ")


def decoder_limit(raw: dict, tokenizer=None) -> PositionLimit:
    return _limit(raw, decoder_config(raw), "decoder_max_positions", tokenizer, "the decoder's ")


def _limit(raw: dict, part: dict, field: str, tokenizer, nested_label: str) -> PositionLimit:
    if not relative_positions(raw):
        for key in anatomy.CONFIG_KEYS[field]:  # LED: max_encoder_position_embeddings, ...
            value = part.get(key)
            if isinstance(value, int) and value > 0:
                return PositionLimit(value, (nested_label if part is not raw else "") + f"{key} in config.json")
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value <= _SANE_MAX_LENGTH:
        return PositionLimit(value, "the tokenizer's model_max_length", hard=not relative_positions(raw))
    return PositionLimit(None)


def _check(limit: PositionLimit, needed: int, too_long: str, name: str, warn: Callable[[str], None]) -> None:
    """`too_long` completes "… at most N positions" for the error, and "more than …" for the warning."""
    if limit.positions is None or needed <= limit.positions:
        return
    if limit.hard:
        raise UsageError(f"{too_long}; '{name}' reads at most {limit.positions:,} positions ({limit.source}).")
    warn(f"{too_long}, more than the {limit.positions:,} positions '{name}' was trained for ({limit.source}); "
         "its relative positions let it run, but quality may drop.")


# Bounds on what one run may ask for, whatever the model allows: past them a run would take hours or more memory
# than a machine has (every step is kept, with its attention), and the useful questions are answered far sooner.
MAX_SOURCE_TOKENS = 8192
MAX_NEW_TOKENS = 2048
MAX_TRACE_STEPS = 256
MAX_BEAMS = 64
# Beam search keeps every running beam's decoder input at every step (beams x n x (n + 1) / 2 tokens after n steps):
# the records grow with the square of the length. Past this many kept tokens a run takes minutes and gigabytes.
MAX_BEAM_TOKENS = 2**21
MIN_TEMPERATURE = 1e-4
MAX_SEED = 2**63 - 1


def check_text(text: str | None, what: str) -> None:
    """A prompt from the command line that is not valid text (bytes that are not UTF-8 arrive as surrogates)."""
    if text is None:
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} is not valid UTF-8 text; check the terminal's encoding or the file it came "
                         "from.") from None


def check_bounded(value: int | float | None, option: str, low, high, why: str = "") -> None:
    """A number the user gave, inside the range a run can handle."""
    if value is not None and not low <= value <= high:
        raise UsageError(f"{option} must be between {low:,} and {high:,} (got {value:,}){why}.")


def most_beam_tokens(beams: int) -> int:
    """The most new tokens a run with `beams` beams may ask for: MAX_NEW_TOKENS, fewer for a beam search that would
    keep more than MAX_BEAM_TOKENS."""
    most = MAX_NEW_TOKENS
    while beams > 1 and beams * most * (most + 1) // 2 > MAX_BEAM_TOKENS:
        most -= 1
    return most


def check_beam_tokens(beams: int, new_tokens: int) -> None:
    """Beam search keeps every beam's decoder input at every step: refuse what would keep more than
    MAX_BEAM_TOKENS (greedy search and sampling have check_bounded's MAX_NEW_TOKENS)."""
    most = most_beam_tokens(beams)
    if beams > 1 and new_tokens > most:
        raise UsageError(f"Beam search with {beams} beams and {new_tokens:,} new tokens would keep "
                         f"{beams * new_tokens * (new_tokens + 1) // 2:,} tokens (every beam's, at every step); "
                         f"t5peek keeps at most {MAX_BEAM_TOKENS:,}: with {beams} beams, at most {most:,} new tokens.",
                         hint="Ask for fewer with --max-new-tokens, or fewer beams with --num-beams.")


def check_prompt(raw: dict, name: str, length: int, tokenizer, warn: Callable[[str], None]) -> None:
    """The prompt's tokens against the encoder's positions: refused past a learned table, warned past training."""
    if length == 0:
        raise UsageError("PROMPT tokenizes to no tokens.")
    if length > MAX_SOURCE_TOKENS:
        raise UsageError(f"PROMPT is {length:,} tokens long; t5peek shows runs of up to {MAX_SOURCE_TOKENS:,} source "
                         "tokens (every step keeps its attention over all of them).")
    _check(encoder_limit(raw, tokenizer), length, f"PROMPT is {length:,} tokens long", name, warn)


# what the bundled demo's tokenizer knows (src/t5peek/demo/MODEL_CARD.md, scripts/train_demo.py)
DEMO_VOCABULARY = ("The demo model knows only the words of its synthetic training sentences: 138 English words "
                   "(46 nouns such as house and dog, 23 adjectives such as red and small, 11 verbs such as see and "
                   "paint, two to ten, the, a, is, are, very, I), their Spanish, French and German translations, and "
                   "no punctuation but the ':' that ends its 'translate English to Spanish/French/German:' prefixes.")
_UNKNOWN_SHOWN = 10


def check_unknown(name: str, text: str, ids, tokenizer, warn: Callable[[str], None], what: str = "source") -> None:
    """Tokens the tokenizer does not know become its unknown token, all alike to the model: say which."""
    unk = getattr(tokenizer, "unk_token_id", None)
    ids = list(ids)
    count = ids.count(unk) if unk is not None else 0
    if not count:
        return
    spans = list(dict.fromkeys(unknown_spans(tokenizer, text, ids, unk)))
    shown = ", ".join(repr(span) for span in spans[:_UNKNOWN_SHOWN])
    shown += f" and {len(spans) - _UNKNOWN_SHOWN} more" if len(spans) > _UNKNOWN_SHOWN else ""
    message = (f"{count} of the {len(ids)} {what} tokens became {tokenizer.unk_token}, unknown to the tokenizer"
               + (f": {shown}" if shown else "") + "; the model reads them all as the same token, so its output may "
               "be wrong.")
    if name == DEMO_NAME:
        message += " " + DEMO_VOCABULARY
    warn(message)


def unknown_spans(tokenizer, text: str, ids: list[int], unk: int) -> list[str]:
    """The pieces of `text` that became the unknown token, where the tokenizer reports offsets (fast ones do)."""
    try:
        encoded = tokenizer(text, return_offsets_mapping=True)
    except (NotImplementedError, TypeError, ValueError):
        return []
    offsets = encoded.get("offset_mapping")
    if offsets is None or list(encoded["input_ids"]) != ids:
        return []
    return [text[start:end].strip() or text[start:end] for token, (start, end) in zip(ids, offsets) if token == unk]


def check_target(raw: dict, name: str, length: int, tokenizer, warn: Callable[[str], None]) -> None:
    """Teacher forcing: the decoder reads the shifted target, one position per target token."""
    if length == 0:
        raise UsageError("--target tokenizes to no tokens.")
    _check(decoder_limit(raw, tokenizer), length, f"--target is {length:,} tokens long", name, warn)


def check_new_tokens(raw: dict, name: str, count: int, option: str, tokenizer, warn: Callable[[str], None]) -> None:
    """Generation: the decoder sequence is the start token plus `count` new tokens."""
    if count < 1:
        raise UsageError(f"{option} must be at least 1 (got {count}).")
    _check(decoder_limit(raw, tokenizer), count + 1,
           f"{option} {count:,} needs {count + 1:,} decoder positions (the start token too)", name, warn)


# ---------------------------------------------------------------------------------------------- the model


def vocabulary_size(model) -> int:
    """The token ids the decoder can read and its logits cover: rows of its input embedding and of the output head
    (the fewer, where they differ), as built by transformers (meta-device models too)."""
    sizes = [module.weight.shape[0] for module in (model.get_output_embeddings(), _decoder_embedding(model))
             if module is not None and getattr(module, "weight", None) is not None]
    return int(min(sizes)) if sizes else int(model.config.get_text_config(decoder=True).vocab_size)


def _decoder_embedding(model):
    try:
        return model.get_decoder().get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return model.get_input_embeddings()


def decoder_start_id(model) -> int:
    for source in (getattr(model, "generation_config", None), model.config):
        value = getattr(source, "decoder_start_token_id", None) if source is not None else None
        if isinstance(value, int):
            return value
    pad = getattr(model.config, "pad_token_id", None)
    if isinstance(pad, int):
        return pad
    raise UnsupportedModel("The model's config has no decoder_start_token_id, so the decoder has no first token.")


def eos_ids(model) -> set[int]:
    found: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, (list, tuple)):
            found.update(v for v in value if isinstance(v, int))
    return found


def pad_token_id(session, needed_for: str) -> int:
    """The tokenizer's pad token (the config's without), which `needed_for` (a clause) stands on."""
    pad = getattr(session.tokenizer, "pad_token_id", None)
    if pad is None:
        pad = session.config.get("pad_token_id")
    if not isinstance(pad, int) or isinstance(pad, bool):
        raise UsageError(f"{needed_for}, and '{session.name}' has no pad token (neither its tokenizer nor its "
                         "config.json names one).")
    return pad


def shift_right(model, labels):
    """The decoder input for teacher forcing: the model's own shift (start token, then labels[:-1]), which reads
    config.json's decoder_start_token_id and pad_token_id (checked against the vocabulary before loading)."""
    for key in ("decoder_start_token_id", "pad_token_id"):
        value = getattr(model.config, key, None)
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadCheckpoint(f"The model's config.json sets no {key}, which teacher forcing (--target) needs: "
                                "the model shifts the target right behind its start token, padding with the pad "
                                "token.", hint=f"Set {key} in config.json.")
    if hasattr(model, "prepare_decoder_input_ids_from_labels"):
        return model.prepare_decoder_input_ids_from_labels(labels=labels)
    if hasattr(model, "_shift_right"):
        return model._shift_right(labels)
    from transformers.models.bart.modeling_bart import shift_tokens_right

    return shift_tokens_right(labels, model.config.pad_token_id, decoder_start_id(model))


def new_cache():
    """An empty EncoderDecoderCache whose layers are created as the decoder fills them.

    No config, so nothing is sized by the encoder's depth: this works when encoder and decoder depths differ.
    """
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    return EncoderDecoderCache(DynamicCache(), DynamicCache())


def decoder_shape(model) -> tuple[int, int]:
    """(layers, heads) of the decoder."""
    config = model.config
    layers = getattr(config, "num_decoder_layers", None) or getattr(config, "decoder_layers", None) or \
        getattr(config, "num_layers", None) or config.get_text_config(decoder=True).num_hidden_layers
    heads = getattr(config, "decoder_attention_heads", None) or getattr(config, "num_heads", None) or \
        config.get_text_config(decoder=True).num_attention_heads
    return int(layers), int(heads)


def token_strings(tokenizer, ids) -> tuple[str, ...]:
    """Each id as the tokenizer spells it; `<id>` for an id past its vocabulary (a padded row of the embedding)."""
    ids = list(ids)
    if tokenizer is None:
        return tuple(str(i) for i in ids)
    return tuple(f"<{i}>" if t is None else str(t) for i, t in zip(ids, tokenizer.convert_ids_to_tokens(ids)))


class TokenNames:
    """`token_strings`, memoised: a run asks for the same ids again at every step and depth."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.known: dict[int, str] = {}

    def __call__(self, ids) -> tuple[str, ...]:
        ids = list(ids)
        missing = [i for i in dict.fromkeys(ids) if i not in self.known]
        if missing:
            self.known.update(zip(missing, token_strings(self.tokenizer, missing)))
        return tuple(self.known[i] for i in ids)

    def one(self, token_id: int) -> str:
        return self((token_id,))[0]

    def text(self, ids) -> str:
        """The decoded text, special tokens skipped (ids joined by spaces without a tokenizer)."""
        if self.tokenizer is None:
            return " ".join(str(i) for i in ids)
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


def encode(session, prompt: str, target: str | None, new_tokens: int, new_tokens_option: str):
    """Token ids and attention mask of `prompt` (and the labels of `target`), checked against the model's positions
    before any weight is loaded; `<unk>` warnings come last, for a run that goes ahead."""
    import torch

    tokenizer = session.tokenizer
    encoded = tokenizer(prompt, return_tensors="pt")
    input_ids = encoded["input_ids"]
    attention_mask = encoded.get("attention_mask")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    check_prompt(session.config, session.name, input_ids.shape[-1], tokenizer, session.warn)
    labels = None
    if target is not None:
        labels = tokenizer(text_target=target, return_tensors="pt")["input_ids"]
        check_target(session.config, session.name, labels.shape[-1], tokenizer, session.warn)
    else:
        check_new_tokens(session.config, session.name, new_tokens, new_tokens_option, tokenizer, session.warn)
    check_unknown(session.name, prompt, input_ids[0].tolist(), tokenizer, session.warn)
    if labels is not None:
        check_unknown(session.name, target, labels[0].tolist(), tokenizer, session.warn, "--target")
    return input_ids, attention_mask, labels
