"""The generation settings in a model's files, checked before any weight loads.

generate() reads generation_config.json, or config.json's generation fields when the folder has none (as
transformers does). Each field it will use must hold what transformers accepts there: the checks of
`GenerationConfig.validate` and of the logits processors, and token ids inside the model's vocabulary. A broken file
is a bad model file (exit 1), named with its field, before the weights load and before anything is printed.

Settings the command line can give (--max-new-tokens, --num-beams, --sample/--greedy, --temperature, --top-p) are
checked once the run's settings are known (`check_settings`, and generate.settings.check_sizes): the option then
overrides the file. config.json's own special tokens are checked in every case: teacher forcing and t5peek's
decoder start fall back to them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from t5peek.errors import BadCheckpoint, T5PeekError, UsageError
from t5peek.loading import one_line

GENERATION_FILE = "generation_config.json"
CONFIG_FILE = "config.json"
_SHOWN_VALUE = 60  # characters of a bad value quoted in an error
_NO_PAD = -1  # a pad_token_id several Hub configs store; transformers only warns about it


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _decimal(value) -> bool:
    """A float, as the penalty and temperature processors demand (`isinstance(x, float)`): JSON's 1.2, not 1."""
    return isinstance(value, float) and math.isfinite(value)


def _token(value, vocabulary: int) -> bool:
    return _whole(value) and 0 <= value < vocabulary


def _tokens(value, vocabulary: int) -> bool:
    return _token(value, vocabulary) or (isinstance(value, list) and bool(value) and
                                          all(_token(t, vocabulary) for t in value))


def _token_list(value, vocabulary: int) -> bool:
    return isinstance(value, list) and all(_token(t, vocabulary) for t in value)


def _words(value, vocabulary: int) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(word, list) and bool(word) and _token_list(word, vocabulary) for word in value)


def _biases(value, vocabulary: int) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(pair, list) and len(pair) == 2 and _words([pair[0]], vocabulary) and _decimal(pair[1])
        for pair in value)


def _off_or_decimal_above_zero(value) -> bool:
    return (_real(value) and value == 1) or (_decimal(value) and value > 0)  # 1.0: the processor is not built


def _count_or_off(value) -> bool:
    """A count whose processor is built only above 0 (and then takes an int): 0 or less turns it off."""
    return _real(value) and (value <= 0 or _whole(value))


def _always(_get) -> bool:
    return True


def _sampling(get) -> bool:
    return get("do_sample") is True


def _beams(get) -> bool:
    beams = get("num_beams")
    return _whole(beams) and beams > 1


def _by_length(get) -> bool:
    return get("max_new_tokens") is None  # max_new_tokens, when set, decides the length


@dataclass(frozen=True)
class Rule:
    """What a field must hold (`need`, in words; {last} is the last token id) when generate() uses it."""

    need: str
    accepts: Callable[[Any, int], bool]  # (value, vocabulary size)
    used: Callable[[Callable[[str], Any]], bool] = _always  # given the settings' getter
    from_command_line: bool = False  # an option can set it: checked once the run's settings are known


def _plain(check: Callable[[Any], bool]) -> Callable[[Any, int], bool]:
    return lambda value, _vocabulary: check(value)


TOKEN = "a token id of the model's vocabulary: a whole number from 0 to {last}"
TOKENS = "a token id from 0 to {last}, or a non-empty list of them"
RULES: dict[str, Rule] = {
    # token ids: the decoder's first token, the end, padding, forced and banned tokens
    "decoder_start_token_id": Rule(TOKEN, _token),
    "bos_token_id": Rule(TOKEN, _token),
    "eos_token_id": Rule(TOKENS, _tokens),
    "pad_token_id": Rule(f"{TOKEN}, or {_NO_PAD} for none",
                         lambda value, vocabulary: _token(value, vocabulary) or value == _NO_PAD and _whole(value)),
    "forced_bos_token_id": Rule(TOKEN, _token),
    "forced_eos_token_id": Rule(TOKENS, _tokens),
    "suppress_tokens": Rule("a list of token ids from 0 to {last}", _token_list),
    "begin_suppress_tokens": Rule("a list of token ids from 0 to {last}", _token_list),
    "bad_words_ids": Rule("a non-empty list of non-empty lists of token ids from 0 to {last}", _words),
    "sequence_bias": Rule("a non-empty list of [[token ids], bias] pairs, token ids from 0 to {last} and each bias a "
                          "decimal number, e.g. [[[12, 7], -2.5]]", _biases),
    # lengths and counts (GenerationConfig.validate, the processors' own checks)
    "max_new_tokens": Rule("a whole number from 1 up", _plain(lambda v: _whole(v) and v >= 1)),
    "max_length": Rule("a whole number", _plain(_whole), _by_length, from_command_line=True),
    "min_length": Rule("a whole number (0 turns it off)", _plain(_count_or_off)),
    "min_new_tokens": Rule("a whole number (0 turns it off)", _plain(_count_or_off)),
    "num_beams": Rule("a whole number from 1 up", _plain(lambda v: _whole(v) and v >= 1), from_command_line=True),
    "num_return_sequences": Rule("a whole number from 1 up", _plain(lambda v: _whole(v) and v >= 1)),
    "no_repeat_ngram_size": Rule("a whole number (0 turns it off)", _plain(_count_or_off)),
    "encoder_no_repeat_ngram_size": Rule("a whole number (0 turns it off)", _plain(_count_or_off)),
    "early_stopping": Rule('true, false or "never"', _plain(
        lambda v: isinstance(v, (bool, int, float, str)) and v in (True, False, "never"))),
    "length_penalty": Rule("a number", _plain(_real), _beams),
    # penalties, and what shapes sampling
    "repetition_penalty": Rule("a decimal number above 0, e.g. 1.2 (1.0 turns it off)",
                               _plain(_off_or_decimal_above_zero)),
    "encoder_repetition_penalty": Rule("a decimal number above 0, e.g. 1.2 (1.0 turns it off)",
                                       _plain(_off_or_decimal_above_zero)),
    "do_sample": Rule("true or false", _plain(lambda v: isinstance(v, bool)), from_command_line=True),
    "temperature": Rule("a decimal number above 0, e.g. 0.7", _plain(_off_or_decimal_above_zero), _sampling,
                        from_command_line=True),
    "top_p": Rule("a number from 0 to 1", _plain(lambda v: _real(v) and v >= 0), _sampling, from_command_line=True),
    "top_k": Rule("a whole number from 1 up (0 turns it off)", _plain(lambda v: _whole(v) and v >= 0), _sampling),
    "min_p": Rule("a number from 0 to 1", _plain(lambda v: _real(v) and 0 <= v <= 1), _sampling),
    "typical_p": Rule("a number above 0, at most 1", _plain(lambda v: _real(v) and v > 0), _sampling),
    "top_h": Rule("a number above 0, at most 1", _plain(lambda v: _real(v) and 0 < v <= 1), _sampling),
    "epsilon_cutoff": Rule("a number", _plain(_real), _sampling),
    "eta_cutoff": Rule("a number", _plain(_real), _sampling),
    "exponential_decay_length_penalty": Rule("a pair [start, factor]: a whole number, then a number, e.g. [10, 1.05]",
                                             _plain(lambda v: isinstance(v, list) and len(v) == 2 and _real(v[0])
                                                    and _real(v[1]))),
    "guidance_scale": Rule("1 or unset: classifier-free guidance is for decoder-only models, and generate() fails "
                           "with it on an encoder-decoder", _plain(lambda v: _real(v) and v == 1)),
    "max_time": Rule("a number of seconds", _plain(_real)),
    "stop_strings": Rule("a string or a list of strings", _plain(lambda v: isinstance(v, str) or isinstance(v, list)
                                                                 and all(isinstance(s, str) for s in v))),
    "renormalize_logits": Rule("true or false", _plain(lambda v: isinstance(v, bool))),
    "remove_invalid_values": Rule("true or false", _plain(lambda v: isinstance(v, bool))),
}
SPECIAL_TOKENS = ("decoder_start_token_id", "bos_token_id", "eos_token_id", "pad_token_id")


@dataclass(frozen=True)
class BadField:
    field: str
    value: Any
    need: str  # in words, the vocabulary filled in

    def sentence(self, origin: str) -> str:
        return f"{origin} sets {self.field} to {shown_value(self.value)}; it must be {self.need}."


def bad_field(get: Callable[[str], Any], vocabulary: int, *, command_line: bool = True,
              fields=None) -> BadField | None:
    """The first field (of RULES, or of `fields`) whose value generate() would use and refuse, read through `get`
    (None: unset). `command_line`: include the settings an option can give."""
    for name in fields or RULES:
        rule = RULES[name]
        value = get(name)
        if value is None or (rule.from_command_line and not command_line) or not rule.used(get):
            continue
        if not rule.accepts(value, vocabulary):
            return BadField(name, value, rule.need.format(last=f"{vocabulary - 1:,}"))
    return None


def shown_value(value) -> str:
    """A value as the file spells it, cut short."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _SHOWN_VALUE else text[:_SHOWN_VALUE] + "…"


# ------------------------------------------------------------------------------------------ the files


def check_files(folder: Path, raw_config: dict, name: str, vocabulary: int) -> None:
    """generation_config.json (or, without it, config.json's generation fields) and config.json's special tokens,
    as the weights are about to load from `folder`. `vocabulary`: the ids the decoder reads and its logits cover."""
    settings = read_generation_file(folder, name)
    from_config = settings is None
    origin = f"{CONFIG_FILE if from_config else GENERATION_FILE} of '{name}'"
    settings = raw_config if from_config else settings
    _refuse(bad_field(settings.get, vocabulary, command_line=False), origin)
    for part, label in _config_parts(raw_config):
        _refuse(bad_field(part.get, vocabulary, fields=SPECIAL_TOKENS), f"{CONFIG_FILE}{label} of '{name}'")
    loaded = _as_transformers_loads(settings, from_config, origin)
    if loaded.decoder_start_token_id is None and loaded.bos_token_id is None:
        raise BadCheckpoint(f"{origin} sets neither decoder_start_token_id nor bos_token_id, so the decoder has no "
                            "first token: generate() refuses such a model.",
                            hint="Set decoder_start_token_id in the file (T5 and BART use the pad or eos token).")


def read_generation_file(folder: Path, name: str) -> dict | None:
    """generation_config.json as a dict; None when the folder has none. transformers would ignore a broken one and
    quietly take config.json's settings instead: that is refused here."""
    path = folder / GENERATION_FILE
    if not path.is_file():
        return None
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadCheckpoint(f"{GENERATION_FILE} of '{name}' is not valid JSON (line {exc.lineno}: {exc.msg}).",
                            hint="Fix the file, or remove it to use config.json's generation settings.") from None
    except UnicodeDecodeError:
        raise BadCheckpoint(f"{GENERATION_FILE} of '{name}' is not UTF-8 text.") from None
    except OSError as exc:
        raise BadCheckpoint(f"{GENERATION_FILE} of '{name}' cannot be read: {exc.strerror or exc}.") from None
    if not isinstance(settings, dict):
        raise BadCheckpoint(f"{GENERATION_FILE} of '{name}' is not a JSON object (it holds a "
                            f"{type(settings).__name__}).", hint="Fix the file, or remove it.")
    return settings


def _config_parts(raw_config: dict):
    yield raw_config, ""
    if isinstance(raw_config.get("decoder"), dict):  # EncoderDecoderModel: the decoder's own config
        yield raw_config["decoder"], " (decoder)"


def _refuse(found: BadField | None, origin: str) -> None:
    if found is not None:
        raise BadCheckpoint(found.sentence(origin), hint=f"Fix or remove {found.field} in the file.")


def _as_transformers_loads(settings: dict, from_config: bool, origin: str):
    """The GenerationConfig transformers makes of the settings when it loads the model, refused as it refuses it:
    what the checks above leave (combinations, the watermarking and cache fields). A field of generation_config.json
    that names one of GenerationConfig's methods would replace it on the model's generation config."""
    from transformers import GenerationConfig

    if not from_config:
        for key in settings:
            if callable(getattr(GenerationConfig, key, None)) or isinstance(getattr(GenerationConfig, key, None),
                                                                             property):
                raise BadCheckpoint(f"{origin} has a field {shown_value(key)}, the name of a method of "
                                    "transformers' GenerationConfig, which it would replace.",
                                    hint="Remove the field from the file.")
    try:
        if from_config:
            return GenerationConfig.from_model_config(dict(settings))  # it takes away a key of what it is given
        return GenerationConfig.from_dict(settings)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise BadCheckpoint(f"transformers refuses {origin}: {one_line(exc)}",
                            hint="Fix or remove the field it names.") from exc


# ------------------------------------------------------------------------------------------ a run's settings


def check_settings(config, vocabulary: int, origin: Callable[[str], str | None]) -> None:
    """The merged settings of a run (a GenerationConfig), once the command line is known: what the file checks left
    for the run's own mode. `origin(field)` names the file a value came from, None for the command line."""
    found = bad_field(lambda key: getattr(config, key, None), vocabulary)
    if found is None:
        return
    where = origin(found.field)
    if where is None:
        raise UsageError(found.sentence("the command line"))
    raise BadCheckpoint(found.sentence(where), hint=f"Fix or remove {found.field} in the file, or override it on "
                        "the command line where an option sets it.")


def refused_by_transformers(exc: Exception) -> T5PeekError:
    """What transformers raised while preparing a run's settings (what the checks above do not foresee), in one
    line."""
    return T5PeekError(f"transformers refuses the generation settings of this run: {one_line(exc)}")

