"""The settings of a run, layered like generate() layers them, and generate()'s own preparation of them.

generation_config < what the caller asked for, as in `model.generate(**requested)`. The config's
task_specific_params (chosen by the prompt's task prefix) come in between only when asked for (`--task-params`),
as in `model.generate(**task_specific_params, **requested)`: generate() itself never reads them. Every call to a
private `GenerationMixin` method lives in this module, so a transformers upgrade that renames one touches only this
file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from t5peek.errors import BadCheckpoint, UsageError
from t5peek.generate.records import SettingValue
from t5peek.generation_file import check_settings, refused_by_transformers
from t5peek.kinds import Strategy
from t5peek.seq2seq import MAX_BEAMS, MAX_NEW_TOKENS, check_beam_tokens, vocabulary_size

# Settings shown to the user, in this order; the ones after `_ALWAYS` only when they do something.
_ALWAYS = ("max_new_tokens", "num_beams", "do_sample", "decoder_start_token_id", "eos_token_id")
_SAMPLING = ("temperature", "top_p", "top_k")
_BEAM = ("length_penalty", "early_stopping")
_WHEN_SET = {
    "min_length": 0, "min_new_tokens": None, "no_repeat_ngram_size": 0, "encoder_no_repeat_ngram_size": 0,
    "repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "forced_bos_token_id": None,
    "forced_eos_token_id": None, "bad_words_ids": None, "suppress_tokens": None, "begin_suppress_tokens": None,
    "exponential_decay_length_penalty": None, "typical_p": 1.0, "min_p": None, "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0, "top_h": None, "renormalize_logits": False, "remove_invalid_values": False,
    "max_time": None, "stop_strings": None, "sequence_bias": None,
}
# The row of the plan's settings that tells what --task-params would change (only when the prompt has a task prefix)
TASK_PARAMS = "task_specific_params"
_SUPPORTED_MODES = {"greedy_search": Strategy.GREEDY, "sample": Strategy.SAMPLE, "beam_search": Strategy.BEAM,
                    "beam_sample": Strategy.BEAM_SAMPLE}


@dataclass(frozen=True)
class DecodeSettings:
    """What to run. `requested` are explicit generate() arguments (the command line); `task_params` come from
    the config's task_specific_params for `task`, when applied. Everything else comes from
    `model.generation_config`. `task_params_available` are the task's parameters left out (no --task-params)."""

    requested: dict[str, Any] = field(default_factory=dict)
    task: str | None = None  # the task whose prefix the prompt starts with, applied or not
    task_params: dict[str, Any] = field(default_factory=dict)
    task_prefix: str | None = None
    task_params_available: dict[str, Any] = field(default_factory=dict)
    top_k: int = 5  # how many candidates to show per step
    seed: int | None = None  # torch.manual_seed(seed) right before decoding, as a caller would before generate()
    seed_source: str = "command line"
    layer: int | None = None  # decoder layer whose cross-attention is shown; None: the last
    keep_heads: bool = False  # keep every layer's and head's attention, self-attention too (the HTML report)
    self_attention: bool = False  # record the encoder's and the decoder's self-attention at the shown layer

    @property
    def generate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments that make `model.generate()` do the same thing."""
        kwargs = {**self.task_params, **self.requested}
        if "max_new_tokens" in self.requested:
            kwargs.pop("max_length", None)  # max_new_tokens wins anyway; passing both only makes generate() warn
        return kwargs


def task_for_prompt(raw_config: dict, prompt: str) -> tuple[str | None, dict[str, Any]]:
    """The task whose prefix the prompt starts with (the longest one), and its generation parameters."""
    from transformers import GenerationConfig

    best = _task_of(raw_config, prompt)
    if best is None:
        return None, {}
    known = GenerationConfig()
    params = raw_config["task_specific_params"][best]
    return best, {key: value for key, value in params.items() if key != "prefix" and hasattr(known, key)}


def _task_of(raw_config: dict, prompt: str) -> str | None:
    best, best_prefix = None, ""
    for task, prefix in _prefixes(raw_config).items():
        if prompt.startswith(prefix) and len(prefix) > len(best_prefix):
            best, best_prefix = task, prefix
    return best


def _prefixes(raw_config: dict) -> dict[str, str]:
    params = raw_config.get("task_specific_params") or {}
    if not isinstance(params, dict):
        return {}
    return {task: values["prefix"] for task, values in params.items()
            if isinstance(values, dict) and isinstance(values.get("prefix"), str) and values["prefix"]}


def resolve_settings(raw_config: dict, prompt: str, requested: dict[str, Any], *, task_params: bool = False,
                     top_k: int = 5, seed: int | None = None, seed_source: str = "command line",
                     layer: int | None = None, keep_heads: bool = False, self_attention: bool = False
                     ) -> DecodeSettings:
    """Layer the settings: generation_config < task_specific_params (only with `task_params`, when the prompt has
    the task's prefix) < requested."""
    task, params = task_for_prompt(raw_config, prompt)
    prefix = _prefixes(raw_config).get(task) if task else None
    applied, available = (params, {}) if task_params else ({}, params)
    return DecodeSettings(requested=dict(requested), task=task, task_params=applied, task_prefix=prefix,
                          task_params_available=available, top_k=top_k, seed=seed, seed_source=seed_source,
                          layer=layer, keep_heads=keep_heads, self_attention=self_attention)


def prepare(model, settings: DecodeSettings, device):
    """generate()'s own preparation of the settings: the merged generation config, special tokens, lengths, and
    notes on what a model file asked for that a step-by-step run follows differently."""
    kwargs = settings.generate_kwargs
    has_default_max_length = kwargs.get("max_length") is None and model.generation_config.max_length is None
    has_default_min_length = kwargs.get("min_length") is None and model.generation_config.min_length is None
    try:
        config, model_kwargs = model._prepare_generation_config(None, **kwargs)
    except ValueError as exc:
        raise UsageError(f"transformers refuses these generation settings: {str(exc).splitlines()[0]}") from exc
    if model_kwargs:
        raise UsageError(f"Not generation settings: {', '.join(sorted(model_kwargs))}.")
    check_sizes(model, settings, config)
    check_settings(config, vocabulary_size(model), lambda key: _origin(model, settings, key))
    mode = config.get_generation_mode().value
    if mode not in _SUPPORTED_MODES:
        raise UsageError(f"These settings ask for {mode.replace('_', ' ')}, which t5peek does not follow step by "
                         "step; it shows greedy search, sampling and beam search (see --num-beams, --sample, "
                         "--greedy).")
    notes = []
    if (config.num_return_sequences or 1) > 1:
        origin = _origin(model, settings, "num_return_sequences")
        if origin is None:
            raise UsageError("t5peek follows one returned sequence; num_return_sequences must be 1.")
        notes.append(f"{origin} asks for {config.num_return_sequences} returned sequences; t5peek follows one, "
                     "the run model.generate(num_return_sequences=1) makes.")
        config.num_return_sequences = 1
    try:
        model._prepare_special_tokens(config, False, device=device, batch_size=1)
        config = model._prepare_generated_length(config, has_default_max_length=has_default_max_length,
                                                 has_default_min_length=has_default_min_length,
                                                 model_input_name="input_ids", input_ids_length=1,
                                                 inputs_tensor=None)
    except ValueError as exc:
        raise refused_by_transformers(exc) from exc
    if config.max_length <= 1:
        raise UsageError(f"max_length is {config.max_length}: no room for a single new token.")
    check_beam_tokens(config.num_beams or 1, config.max_length - 1)
    return config, _SUPPORTED_MODES[mode], has_default_max_length, notes


# what a run can follow, whatever a model file asks for: (setting, lowest, highest)
_SIZES = (("num_beams", 1, MAX_BEAMS), ("max_new_tokens", 1, MAX_NEW_TOKENS), ("max_length", 2, MAX_NEW_TOKENS + 1))
_OVERRIDE = {"num_beams": "--num-beams 1", "max_new_tokens": "--max-new-tokens 20", "max_length": "--max-new-tokens 20"}


def check_sizes(model, settings: DecodeSettings, config) -> None:
    """Beam counts and lengths inside what a run can follow. A bad value from a model file is a bad model file
    (exit 1) named with its field; from the caller it is a usage error."""
    for key, low, high in _SIZES:
        value = getattr(config, key, None)
        if value is None or (key == "max_length" and config.max_new_tokens is not None):
            continue  # max_new_tokens, when set, decides the length: generate() ignores max_length then
        if not isinstance(value, bool) and isinstance(value, int) and low <= value <= high:
            continue
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else repr(value)
        bounds = f"t5peek follows {low:,} to {high:,}"
        if key == "max_length" and isinstance(value, int) and value < low:
            bounds += " (the decoder start token, then at least one new token)"
        origin = _origin(model, settings, key)
        if origin is None:
            raise UsageError(f"{key} is {shown}; {bounds}.")
        raise BadCheckpoint(f"{origin} sets {key} to {shown}; {bounds}.",
                            hint=f"Fix the file, or override it on the command line (e.g. {_OVERRIDE[key]}).")


def _origin(model, settings: DecodeSettings, key: str) -> str | None:
    """The model file a setting's value came from, in words; None when the caller asked for it."""
    if key in settings.requested:
        return None
    if key in settings.task_params:
        return f"config.json (task_specific_params.{settings.task}.{key})"
    if key in model.generation_config.to_diff_dict():
        return "the model's generation_config.json"
    return "the model's config.json"


def processors_and_criteria(model, config, input_ids, tokenizer, device):
    """The `LogitsProcessorList` and `StoppingCriteriaList` generate() builds for `config` and this prompt."""
    from transformers import LogitsProcessorList, StoppingCriteriaList

    try:
        processors = model._get_logits_processor(generation_config=config, input_ids_seq_length=1,
                                                 encoder_input_ids=input_ids, prefix_allowed_tokens_fn=None,
                                                 logits_processor=LogitsProcessorList(), device=device,
                                                 model_kwargs={})
        criteria = model._get_stopping_criteria(generation_config=config, stopping_criteria=StoppingCriteriaList(),
                                                tokenizer=tokenizer)
    except (ValueError, TypeError, RuntimeError) as exc:  # building them runs no model: the settings are at fault
        raise refused_by_transformers(exc) from exc
    return processors, criteria


def setting_sources(model, settings: DecodeSettings, config, strategy: Strategy, has_default_max_length: bool
                    ) -> dict[str, SettingValue]:
    """Each shown setting with where its value came from: the command line, the task, generation_config, default."""
    diff = model.generation_config.to_diff_dict()
    task_source = f"task_specific_params.{settings.task}"

    def source(key: str) -> str:
        if key in settings.requested:
            return "command line"
        if key in settings.task_params:
            return task_source
        if key in diff:
            return "generation_config"
        return "default"

    shown: dict[str, SettingValue] = {}
    new_tokens = config.max_length - 1
    if "max_new_tokens" in settings.requested or "max_new_tokens" in settings.task_params or \
            model.generation_config.max_new_tokens is not None:
        shown["max_new_tokens"] = SettingValue(new_tokens, source("max_new_tokens"))
    elif not has_default_max_length:
        shown["max_new_tokens"] = SettingValue(new_tokens, f"{source('max_length')} (max_length "
                                                          f"{config.max_length} - 1 start token)")
    else:
        shown["max_new_tokens"] = SettingValue(new_tokens, "default (max_length 20)" if new_tokens == 20 else
                                               "default (max_length 20, capped by max_position_embeddings)")
    for key in _ALWAYS[1:]:
        value = getattr(config, key, None)
        if key == "decoder_start_token_id" and value is None:
            value = config.bos_token_id
        shown[key] = SettingValue(_plain(value), source(key))
    if strategy.samples:
        for key in _SAMPLING:
            shown[key] = SettingValue(_plain(getattr(config, key)), source(key))
        shown["seed"] = SettingValue(settings.seed, settings.seed_source if settings.seed is not None else "unset")
    if strategy.is_beam:
        for key in _BEAM:
            shown[key] = SettingValue(_plain(getattr(config, key)), source(key))
    for key, neutral in _WHEN_SET.items():
        value = getattr(config, key, None)
        if value is not None and value != neutral:
            shown[key] = SettingValue(_plain(value), source(key))
    left_out = task_params_left_out(settings, config)
    if left_out:
        shown[TASK_PARAMS] = SettingValue(left_out, f"task prefix {settings.task_prefix!r} ({settings.task}): not "
                                                    "applied, as model.generate() does not; --task-params would "
                                                    "set these")
    return shown


def task_params_left_out(settings: DecodeSettings, config) -> dict[str, Any]:
    """What --task-params would change: the task's parameters that neither the command line overrides nor the
    generation config already has."""
    changes = {}
    for key, value in settings.task_params_available.items():
        overridden = key in settings.requested or (key == "max_length" and "max_new_tokens" in settings.requested)
        if not overridden and _plain(getattr(config, key, None)) != _plain(value):
            changes[key] = _plain(value)
    return changes


def _plain(value):
    """Tensors and tuples as plain JSON-able values."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


def top_k_continuations(model, **arguments):
    """generate()'s own choice of the K continuations over all beams (the top K, or K sampled), called rather than
    mirrored: how it samples has changed between transformers releases (5.24 sorts the sampled ones by score)."""
    return model._get_top_k_continuations(**arguments)
