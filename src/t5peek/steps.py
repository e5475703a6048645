"""Step-by-step decoding: what the decoder saw, scored and chose at every step, and where it looked.

`decode()` runs the same algorithm as transformers' `model.generate()` one step at a time, and records each
step as frozen dataclasses of plain values (ids, token strings, floats):

  1. the encoder runs once over the prompt;
  2. the decoder runs one new token per step, reusing its key/value cache (an `EncoderDecoderCache` of two
     growing `DynamicCache`s, so encoders and decoders of different depths work);
  3. the raw logits of the last position go through the same `LogitsProcessorList` generate() builds
     (min_length, forced EOS/BOS, no_repeat_ngram, temperature, top-p, ...);
  4. the next token is chosen by the same rule: argmax (greedy), `torch.multinomial` (sampling, so a seeded run
     draws the same tokens), or the beam search of `GenerationMixin._beam_search`, mirrored line by line.

The settings come from `model.generation_config`, then from `task_specific_params` when the prompt starts with
one of their prefixes, then from what the caller asked for; `DecodeSettings.generate_kwargs` is exactly what
to hand `model.generate()` for the same result, which the tests check token for token and score for score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from t5peek.errors import T5PeekError, UsageError
from t5peek.seq2seq import decoder_shape, new_cache

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
_SUPPORTED_MODES = {"greedy_search": "greedy", "sample": "sample", "beam_search": "beam", "beam_sample": "beam sample"}
_RULES = {"greedy": "greedy", "sample": "sampled", "beam": "beam", "beam sample": "beam sample"}


class DecodeError(T5PeekError):
    """Decoding cannot go on (e.g. the scores are NaN, so there is nothing to sample from)."""


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Candidate:
    """One possible next token. `score` is what generate() reports in `output_scores` (the logit after the
    logits processors; for beam search a log-probability); `prob` is softmax(score) over the vocabulary."""

    token_id: int
    token: str
    logit: float
    score: float
    prob: float


@dataclass(frozen=True)
class LayerFocus:
    """The source token one decoder layer attended to most (cross-attention, mean over heads)."""

    layer: int
    source_index: int
    source_token: str
    weight: float


@dataclass(frozen=True)
class Step:
    """One decoding step of the final output: the decoder input so far, the next-token candidates, the choice,
    and where the decoder looked in the source."""

    step: int
    input_ids: tuple[int, ...]
    input_tokens: tuple[str, ...]
    token_id: int
    token: str
    rule: str  # greedy, sampled, beam, beam sample
    chosen: Candidate
    chosen_rank: int | None  # 1-based rank of the chosen token among the top-k, None when outside it
    top_k: tuple[Candidate, ...]
    cross_attention: tuple[float, ...]  # layer `DecodeRun.layer`, mean of heads, one weight per source token
    layers: tuple[LayerFocus, ...]  # every decoder layer's strongest source token
    beam: int | None = None  # beam search: the running beam this step of the output extended


@dataclass(frozen=True)
class BeamRow:
    """A running beam at the start of a beam-search step."""

    beam: int
    input_ids: tuple[int, ...]
    input_tokens: tuple[str, ...]
    score: float  # cumulative log-probability so far
    top_k: tuple[Candidate, ...]
    focus: LayerFocus  # strongest source token at the shown layer


@dataclass(frozen=True)
class BeamChoice:
    """A continuation kept after a beam-search step: beam `parent` extended by `token`."""

    beam: int
    parent: int
    token_id: int
    token: str
    step_score: float  # this token's log-probability after the processors (generate()'s output_scores)
    score: float  # cumulative log-probability


@dataclass(frozen=True)
class BeamHypothesis:
    """A sequence that finished at this step and entered the list of best finished hypotheses."""

    parent: int
    ids: tuple[int, ...]
    text: str
    score: float  # cumulative log-probability / length ** length_penalty


@dataclass(frozen=True)
class BeamStep:
    step: int
    beams: tuple[BeamRow, ...]
    next_beams: tuple[BeamChoice, ...]
    finished: tuple[BeamHypothesis, ...]


@dataclass(frozen=True)
class SettingValue:
    value: Any
    source: str  # command line, task_specific_params.<task>, generation_config, default, ...


@dataclass(frozen=True)
class DecodePlan:
    """What a run is about to do: known before the first step (streamed as the header)."""

    strategy: str  # greedy, sample, beam, beam sample
    settings: dict[str, SettingValue]
    processors: tuple[str, ...]  # the logits processors in use, in order
    source_ids: tuple[int, ...]
    source_tokens: tuple[str, ...]
    layer: int
    decoder_layers: int
    heads: int
    top_k: int


@dataclass(frozen=True)
class DecodeRun(DecodePlan):
    """The plan, and what came of it."""

    steps: tuple[Step, ...]
    output_ids: tuple[int, ...]  # what generate() returns, decoder start token included
    output_text: str
    stop_reason: str
    beam_steps: tuple[BeamStep, ...] = ()
    sequence_score: float | None = None  # beam search: the length-normalised score of the output
    # [step][layer][head][source token], kept only when DecodeSettings.keep_heads (the HTML report)
    head_attention: tuple | None = None
    notes: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class DecodeSettings:
    """What to run. `requested` are explicit generate() arguments (the command line); `task_params` come from
    the config's task_specific_params for `task`. Everything else comes from `model.generation_config`."""

    requested: dict[str, Any] = field(default_factory=dict)
    task: str | None = None
    task_params: dict[str, Any] = field(default_factory=dict)
    top_k: int = 5  # how many candidates to show per step
    seed: int | None = None  # torch.manual_seed(seed) right before decoding, as a caller would before generate()
    seed_source: str = "command line"
    layer: int | None = None  # decoder layer whose cross-attention is shown; None: the last
    keep_heads: bool = False  # keep every layer's and head's cross-attention (for the HTML report)

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

    params = raw_config.get("task_specific_params") or {}
    if not isinstance(params, dict):
        return None, {}
    known = GenerationConfig()
    best, best_prefix = None, ""
    for task, values in params.items():
        prefix = values.get("prefix") if isinstance(values, dict) else None
        if isinstance(prefix, str) and prefix and prompt.startswith(prefix) and len(prefix) > len(best_prefix):
            best, best_prefix = task, prefix
    if best is None:
        return None, {}
    chosen = {key: value for key, value in params[best].items() if key != "prefix" and hasattr(known, key)}
    return best, chosen


def resolve_settings(raw_config: dict, prompt: str, requested: dict[str, Any], *, top_k: int = 5,
                     seed: int | None = None, seed_source: str = "command line", layer: int | None = None,
                     keep_heads: bool = False) -> DecodeSettings:
    """Layer the settings: generation_config < task_specific_params (when the prompt has the prefix) < requested."""
    task, task_params = task_for_prompt(raw_config, prompt)
    return DecodeSettings(requested=dict(requested), task=task, task_params=task_params, top_k=top_k, seed=seed,
                          seed_source=seed_source, layer=layer, keep_heads=keep_heads)


def _prepare(model, settings: DecodeSettings, device):
    """generate()'s own preparation of the settings: the merged generation config, special tokens, lengths."""
    kwargs = settings.generate_kwargs
    has_default_max_length = kwargs.get("max_length") is None and model.generation_config.max_length is None
    has_default_min_length = kwargs.get("min_length") is None and model.generation_config.min_length is None
    try:
        config, model_kwargs = model._prepare_generation_config(None, **kwargs)
    except ValueError as exc:
        raise UsageError(f"transformers refuses these generation settings: {str(exc).splitlines()[0]}") from exc
    if model_kwargs:
        raise UsageError(f"Not generation settings: {', '.join(sorted(model_kwargs))}.")
    mode = config.get_generation_mode().value
    if mode not in _SUPPORTED_MODES:
        raise UsageError(f"These settings ask for {mode.replace('_', ' ')}, which t5peek does not follow step by "
                         "step; it shows greedy search, sampling and beam search (see --num-beams, --sample, "
                         "--greedy).")
    if (config.num_return_sequences or 1) > 1:
        raise UsageError("t5peek follows one returned sequence; num_return_sequences must be 1.")
    model._prepare_special_tokens(config, False, device=device, batch_size=1)
    config = model._prepare_generated_length(config, has_default_max_length=has_default_max_length,
                                             has_default_min_length=has_default_min_length,
                                             model_input_name="input_ids", input_ids_length=1, inputs_tensor=None)
    if config.max_length <= 1:
        raise UsageError(f"max_length is {config.max_length}: no room for a single new token.")
    return config, _SUPPORTED_MODES[mode], has_default_max_length


def _sources(model, settings: DecodeSettings, config, strategy: str, has_default_max_length: bool
             ) -> dict[str, SettingValue]:
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
    if strategy in ("sample", "beam sample"):
        for key in _SAMPLING:
            shown[key] = SettingValue(_plain(getattr(config, key)), source(key))
        shown["seed"] = SettingValue(settings.seed, settings.seed_source if settings.seed is not None else "unset")
    if strategy in ("beam", "beam sample"):
        for key in _BEAM:
            shown[key] = SettingValue(_plain(getattr(config, key)), source(key))
    for key, neutral in _WHEN_SET.items():
        value = getattr(config, key, None)
        if value is not None and value != neutral:
            shown[key] = SettingValue(_plain(value), source(key))
    return shown


def _plain(value):
    """Tensors and tuples as plain JSON-able values."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


# ----------------------------------------------------------------------------- decoding


class _Vocab:
    """Token strings for ids, memoised (the same ids come back every step)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.cache: dict[int, str] = {}

    def __call__(self, ids) -> tuple[str, ...]:
        missing = [i for i in ids if i not in self.cache]
        if missing:
            if self.tokenizer is None:
                names = [str(i) for i in missing]
            else:
                names = self.tokenizer.convert_ids_to_tokens(missing)
            for i, name in zip(missing, names):
                self.cache[i] = name if name is not None else f"<{i}>"
        return tuple(self.cache[i] for i in ids)

    def one(self, token_id: int) -> str:
        return self((token_id,))[0]

    def text(self, ids) -> str:
        if self.tokenizer is None:
            return " ".join(str(i) for i in ids)
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


def decode(model, tokenizer, input_ids, settings: DecodeSettings | None = None, on_step: Callable | None = None,
           attention_mask=None, on_start: Callable | None = None) -> DecodeRun:
    """Decode `input_ids` (shape (1, n), on the model's device) step by step.

    `on_start` gets the `DecodePlan` before the first step. `on_step` is called as each step is computed: with a
    `Step` for greedy search and sampling, with a `BeamStep` for beam search (the path of the final output is
    known only at the end, in `DecodeRun.steps`).
    """
    import torch

    settings = settings or DecodeSettings()
    if input_ids.ndim != 2 or input_ids.shape[0] != 1:
        raise UsageError("decode() follows one prompt at a time: input_ids must have shape (1, n).")
    if input_ids.shape[1] == 0:
        raise UsageError("The prompt is empty after tokenization.")
    device = input_ids.device
    config, strategy, has_default_max_length = _prepare(model, settings, device)
    n_layers, n_heads = decoder_shape(model)
    layer = n_layers - 1 if settings.layer is None else settings.layer
    if not 0 <= layer < n_layers:
        raise UsageError(f"--layer {layer} is out of range: this decoder has layers 0 to {n_layers - 1}.")
    head = model.get_output_embeddings()
    vocab_width = head.weight.shape[0] if head is not None else model.config.vocab_size  # the logits' width
    top_k = max(1, min(settings.top_k, vocab_width))

    from transformers import LogitsProcessorList, StoppingCriteriaList

    processors = model._get_logits_processor(generation_config=config, input_ids_seq_length=1,
                                             encoder_input_ids=input_ids, prefix_allowed_tokens_fn=None,
                                             logits_processor=LogitsProcessorList(), device=device, model_kwargs={})
    criteria = model._get_stopping_criteria(generation_config=config, stopping_criteria=StoppingCriteriaList(),
                                            tokenizer=tokenizer)
    vocab = _Vocab(tokenizer)
    source_ids = tuple(input_ids[0].tolist())
    plan = DecodePlan(strategy, _sources(model, settings, config, strategy, has_default_max_length),
                      tuple(type(p).__name__ for p in processors), source_ids, vocab(source_ids), layer, n_layers,
                      n_heads, top_k)
    if on_start is not None:
        on_start(plan)
    state = _Run(model=model, config=config, strategy=strategy, processors=processors, criteria=criteria,
                 vocab=vocab, top_k=top_k, layer=layer, keep_heads=settings.keep_heads, on_step=on_step,
                 source_tokens=plan.source_tokens)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            encoder = model.get_encoder()
            encoder_outputs = encoder(input_ids=input_ids, attention_mask=attention_mask, output_attentions=False,
                                      output_hidden_states=False, return_dict=True)
            cache = new_cache()
            if settings.seed is not None:
                torch.manual_seed(settings.seed)
            if strategy in ("greedy", "sample"):
                output_ids, stop = _sample_loop(state, encoder_outputs, attention_mask, cache, device)
                sequence_score = None
            else:
                output_ids, stop, sequence_score = _beam_loop(state, encoder_outputs, attention_mask, cache, device)
    finally:
        if was_training:
            model.train()

    return DecodeRun(
        strategy=strategy, settings=plan.settings, processors=plan.processors, source_ids=source_ids,
        source_tokens=plan.source_tokens, layer=layer, decoder_layers=n_layers, heads=n_heads, top_k=top_k,
        steps=tuple(state.steps), output_ids=tuple(output_ids), output_text=vocab.text(output_ids),
        stop_reason=stop, beam_steps=tuple(state.beam_steps), sequence_score=sequence_score,
        head_attention=state.head_attention(), notes=tuple(state.notes),
    )


@dataclass
class _Attention:
    shown: list  # [beam][source]: the shown layer, mean of heads
    best_weight: list  # [layer][beam]
    best_index: list  # [layer][beam]


@dataclass
class _Run:
    """The mutable state of one decoding run (kept out of the records)."""

    model: Any
    config: Any
    strategy: str
    processors: Any
    criteria: Any
    vocab: _Vocab
    top_k: int
    layer: int
    keep_heads: bool
    on_step: Callable | None
    source_tokens: tuple[str, ...]
    steps: list = field(default_factory=list)
    beam_steps: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    heads: list = field(default_factory=list)  # per step: tensor (layers, heads, source) of the output's path
    _head_rows: list = field(default_factory=list)  # beam search: per step, tensor (layers, beams, heads, source)

    def head_attention(self):
        if not self.keep_heads:
            return None
        return tuple(h.tolist() for h in self.heads)

    def forward(self, encoder_outputs, attention_mask, decoder_input_ids, cache):
        return self.model(encoder_outputs=encoder_outputs, attention_mask=attention_mask,
                          decoder_input_ids=decoder_input_ids, past_key_values=cache, use_cache=True,
                          output_attentions=True, return_dict=True)

    def candidates(self, logits, scores):
        """Top-k by score for every row: (ids, logits, scores, probs) as nested Python lists."""
        import torch

        values, ids = torch.topk(scores, self.top_k, dim=-1)
        probs = torch.softmax(scores, dim=-1)
        packed = torch.stack([torch.gather(logits, 1, ids), values, torch.gather(probs, 1, ids)]).tolist()
        return ids.tolist(), packed[0], packed[1], packed[2], probs

    def cross_attention(self, outputs) -> tuple[Any, "_Attention"]:
        """Cross-attention of the newest position, (layers, beams, heads, source) on the device, and the little
        the records need on the CPU (one transfer): the shown layer's head mean, each layer's strongest token."""
        import torch

        stacked = torch.stack([a[:, :, -1, :] for a in outputs.cross_attentions]).float()
        mean = stacked.mean(dim=2)  # (layers, beams, source)
        best_weight, best_index = mean.max(dim=-1)  # (layers, beams)
        layers, beams, source = mean.shape
        packed = torch.cat([mean[self.layer].flatten(), best_weight.flatten(),
                            best_index.flatten().to(mean.dtype)]).tolist()
        shown = [packed[b * source:(b + 1) * source] for b in range(beams)]
        offset = beams * source
        weights = [packed[offset + i * beams: offset + (i + 1) * beams] for i in range(layers)]
        offset += layers * beams
        indices = [[int(x) for x in packed[offset + i * beams: offset + (i + 1) * beams]] for i in range(layers)]
        return stacked, _Attention(shown, weights, indices)

    def focus(self, attention: "_Attention", row: int) -> tuple[LayerFocus, ...]:
        return tuple(LayerFocus(layer, attention.best_index[layer][row],
                                self.source_tokens[attention.best_index[layer][row]],
                                attention.best_weight[layer][row]) for layer in range(len(attention.best_index)))

    def row_candidates(self, ids, logits, scores, probs, row) -> tuple[Candidate, ...]:
        names = self.vocab(ids[row])
        return tuple(Candidate(i, name, lg, sc, pr) for i, name, lg, sc, pr in
                     zip(ids[row], names, logits[row], scores[row], probs[row]))

    def check_finite(self, step: int, top_score: float, sampling: bool) -> None:
        """NaN scores (or nothing left with a finite score) cannot be sampled from; greedy goes on like generate()."""
        if math.isnan(top_score) or top_score == -math.inf:
            what = "NaN" if math.isnan(top_score) else "all -inf (every token was ruled out)"
            if sampling:
                raise DecodeError(f"At step {step} the scores are {what}: there is no distribution to sample from.",
                                  hint="The model's numbers overflowed (try --dtype float32) or the settings rule "
                                       "out every token.")
            if not self.notes:
                self.notes.append(f"From step {step} on the scores are {what}; the choices are arbitrary.")


def _sample_loop(run: _Run, encoder_outputs, attention_mask, cache, device):
    """GenerationMixin._sample for one sequence: greedy (argmax) or multinomial sampling."""
    import torch

    config = run.config
    pad = config._pad_token_tensor
    has_eos_criteria = any(hasattr(c, "eos_token_id") for c in run.criteria)
    do_sample = bool(config.do_sample)
    rule = _RULES[run.strategy]
    input_ids = config._decoder_start_token_tensor.reshape(1, 1).to(device)
    unfinished = torch.ones(1, dtype=torch.long, device=device)
    next_input = input_ids
    prefix = input_ids[0].tolist()
    step = 0
    while True:
        outputs = run.forward(encoder_outputs, attention_mask, next_input, cache)
        cache = outputs.past_key_values
        logits = outputs.logits[:, -1].to(copy=True, dtype=torch.float32, device=device)
        scores = run.processors(input_ids, logits)
        ids, top_logits, top_scores, top_probs, probs = run.candidates(logits, scores)
        run.check_finite(step, top_scores[0][0], do_sample)
        if do_sample:  # `probs` is softmax(scores), the very tensor generate() hands torch.multinomial
            next_tokens = torch.multinomial(probs, num_samples=1).squeeze(1)
        else:
            next_tokens = torch.argmax(scores, dim=-1)
        if has_eos_criteria:
            next_tokens = next_tokens * unfinished + pad * (1 - unfinished)
        stacked, attention = run.cross_attention(outputs)
        del outputs
        input_ids = torch.cat([input_ids, next_tokens[:, None]], dim=-1)
        unfinished = unfinished & ~run.criteria(input_ids, None)

        token_id = int(next_tokens[0])
        top = run.row_candidates(ids, top_logits, top_scores, top_probs, 0)
        rank = next((r for r, c in enumerate(top, 1) if c.token_id == token_id), None)
        if rank is not None:
            chosen = top[rank - 1]
        else:
            lg, sc, pr = torch.stack([logits[0, token_id], scores[0, token_id], probs[0, token_id]]).tolist()
            chosen = Candidate(token_id, run.vocab.one(token_id), lg, sc, pr)
        if run.keep_heads:
            run.heads.append(stacked[:, 0].cpu())
        record = Step(step=step, input_ids=tuple(prefix), input_tokens=run.vocab(prefix), token_id=token_id,
                      token=chosen.token, rule=rule, chosen=chosen, chosen_rank=rank, top_k=top,
                      cross_attention=tuple(attention.shown[0]), layers=run.focus(attention, 0))
        run.steps.append(record)
        if run.on_step is not None:
            run.on_step(record)
        prefix.append(token_id)
        step += 1
        if unfinished.max() == 0:
            break
        next_input = input_ids[:, -1:]
    output_ids = prefix
    return output_ids, _stop_reason(config, output_ids)


def _stop_reason(config, output_ids: list[int]) -> str:
    eos = config._eos_token_tensor.tolist() if config._eos_token_tensor is not None else []
    if output_ids and output_ids[-1] in eos and len(output_ids) > 1:
        return "end-of-sequence token"
    if len(output_ids) >= config.max_length:
        return f"max_new_tokens ({config.max_length - 1}) reached"
    return "a stopping criterion"


# ----------------------------------------------------------------------------- beam search
# GenerationMixin._beam_search (transformers 5.23) for one prompt, with the batch dimension kept so every tensor
# operation is the same as generate()'s. The helpers below are its `_get_top_k_continuations`,
# `_get_running_beams_for_next_iteration`, `_update_finished_beams`, `_check_early_stop_heuristic` and
# `_beam_search_has_unfinished_sequences`, unchanged in substance.


def _gather_beams(tensor, beam_indices):
    import torch

    while len(beam_indices.shape) < len(tensor.shape):
        beam_indices = beam_indices.unsqueeze(-1)
    return torch.take_along_dim(input=tensor, indices=beam_indices, dim=1)


def _flatten(tensor):
    shape = list(tensor.shape)
    return tensor.reshape([shape[0] * shape[1]] + shape[2:])


def _unflatten(tensor, batch_size: int, num_beams: int):
    shape = list(tensor.shape)
    return tensor.reshape([batch_size, num_beams] + shape[1:])


def _beam_loop(run: _Run, encoder_outputs, attention_mask, cache, device):
    import torch
    from torch import nn

    config = run.config
    eos_token_id = config._eos_token_tensor
    pad_token_id = config._pad_token_tensor
    do_sample = bool(config.do_sample)
    early_stopping = config.early_stopping
    length_penalty = config.length_penalty
    max_length = config.max_length
    num_beams = config.num_beams
    batch_size, cur_len = 1, 1
    decoder_prompt_len = cur_len

    # generate() runs the encoder once, then repeats its outputs for every beam
    encoder_outputs["last_hidden_state"] = encoder_outputs.last_hidden_state.repeat_interleave(num_beams, dim=0)
    if attention_mask is not None:
        attention_mask = attention_mask.repeat_interleave(num_beams, dim=0)
    input_ids = config._decoder_start_token_tensor.reshape(1, 1).to(device).repeat_interleave(num_beams, dim=0)

    n_eos_tokens = eos_token_id.shape[0] if eos_token_id is not None else 0
    beams_to_keep = max(2, 1 + n_eos_tokens) * num_beams
    top_num_beam_mask = torch.cat((torch.ones((num_beams), dtype=torch.bool),
                                   torch.zeros((beams_to_keep - num_beams), dtype=torch.bool)), dim=0).to(device)
    output_fill_value = pad_token_id or eos_token_id[0] if eos_token_id is not None else -1
    running_sequences = torch.full((batch_size, num_beams, max_length), fill_value=output_fill_value,
                                   dtype=torch.int64, device=device)
    running_sequences[:, :, :cur_len] = _unflatten(input_ids, batch_size, num_beams)
    sequences = running_sequences.detach().clone()
    running_beam_scores = torch.zeros((batch_size, num_beams), dtype=torch.float, device=device)
    running_beam_scores[:, 1:] = -1e9
    beam_scores = torch.full((batch_size, num_beams), fill_value=-1e9, dtype=torch.float, device=device)
    is_sent_finished = torch.zeros((batch_size, num_beams), dtype=torch.bool, device=device)
    is_early_stop_heuristic_unsatisfied = torch.ones((batch_size, 1), dtype=torch.bool, device=device)
    next_token_hits_stopping_criteria = torch.zeros((batch_size, num_beams), dtype=torch.bool, device=device)
    running_beam_indices = torch.full((batch_size, num_beams, max_length - cur_len), fill_value=-1,
                                      dtype=torch.int32, device=device)
    beam_indices = running_beam_indices.detach().clone()

    flat_running_sequences = input_ids
    decoder_input = input_ids
    per_step: list[tuple] = []  # (candidate lists, head-mean rows) per step, to build the output's path
    step = 0
    while True:
        outputs = run.forward(encoder_outputs, attention_mask, decoder_input, cache)
        cache = outputs.past_key_values
        logits = outputs.logits[:, -1, :].to(copy=True, dtype=torch.float32, device=device)
        log_probs = nn.functional.log_softmax(logits, dim=-1)
        log_probs = run.processors(flat_running_sequences, log_probs)

        processed = log_probs
        ids, top_logits, top_scores, top_probs, probs = run.candidates(logits, processed)
        stacked, attention = run.cross_attention(outputs)
        del outputs
        prefix_rows = flat_running_sequences.tolist()
        scores_before = running_beam_scores[0].tolist()
        for row in range(num_beams):
            if scores_before[row] > -1e8:
                run.check_finite(step, top_scores[row][0], do_sample)

        log_probs = _unflatten(log_probs, batch_size, num_beams)
        log_probs = log_probs + running_beam_scores[:, :, None]
        log_probs = torch.reshape(log_probs, (batch_size, -1))

        # c. top-K continuations (greedy or sampled)
        if do_sample:
            topk_indices = torch.multinomial(nn.functional.softmax(log_probs, dim=-1), num_samples=beams_to_keep)
            topk_log_probs = torch.gather(input=log_probs, dim=1, index=topk_indices)
        else:
            topk_log_probs, topk_indices = torch.topk(log_probs, k=beams_to_keep)
        vocab_size = log_probs.shape[-1] // num_beams
        topk_current_beam_indices = topk_indices // vocab_size
        topk_running_beam_indices = _gather_beams(running_beam_indices, topk_current_beam_indices)
        topk_running_sequences = _gather_beams(running_sequences, topk_current_beam_indices)
        topk_ids = topk_indices % vocab_size
        topk_running_sequences[:, :, cur_len] = topk_ids
        batch_offset = torch.arange(batch_size, device=topk_ids.device).view(-1, 1) * num_beams
        topk_running_beam_indices[:, :, cur_len - decoder_prompt_len] = topk_current_beam_indices + batch_offset

        # this step's numbers for every continuation: [parent, token, logit, score, prob, cumulative]
        flat_index = (topk_current_beam_indices[0], topk_ids[0])
        continuations = list(zip(*torch.stack([t.to(torch.float64) for t in (
            topk_current_beam_indices[0], topk_ids[0], logits[flat_index], processed[flat_index], probs[flat_index],
            topk_log_probs[0])]).tolist()))

        # d. which continuations hit a stopping criterion
        next_token_hits_stopping_criteria = run.criteria(_flatten(topk_running_sequences[:, :, : cur_len + 1]), None)
        next_token_hits_stopping_criteria = _unflatten(next_token_hits_stopping_criteria, batch_size, beams_to_keep)

        # e. the best `num_beams` unfinished continuations run on
        topk_running_log_probs = topk_log_probs + next_token_hits_stopping_criteria.to(torch.float32) * -1.0e9
        next_topk_indices = torch.topk(topk_running_log_probs, k=num_beams)[1]
        running_sequences = _gather_beams(topk_running_sequences, next_topk_indices)
        running_beam_scores = _gather_beams(topk_running_log_probs, next_topk_indices)
        running_beam_indices = _gather_beams(topk_running_beam_indices, next_topk_indices)

        # f. finished continuations among the top `num_beams` join the finished hypotheses if good enough
        did_top_num_beams_just_finished = next_token_hits_stopping_criteria & top_num_beam_mask[None, :]
        finished_log_probs = topk_log_probs / ((cur_len + 1 - decoder_prompt_len) ** length_penalty)
        beams_in_batch_are_full = torch.all(is_sent_finished, axis=-1, keepdims=True) & (early_stopping is True)
        finished_log_probs += beams_in_batch_are_full.to(torch.float32) * -1.0e9
        finished_log_probs += (~is_early_stop_heuristic_unsatisfied).to(torch.float32) * -1.0e9
        finished_log_probs += (~did_top_num_beams_just_finished) * -1.0e9
        merged_sequences = torch.cat((sequences, topk_running_sequences), dim=1)
        merged_scores = torch.cat((beam_scores, finished_log_probs), dim=1)
        merged_beam_indices = torch.cat((beam_indices, topk_running_beam_indices), dim=1)
        merged_is_sent_finished = torch.cat((is_sent_finished, did_top_num_beams_just_finished), dim=1)
        topk_merged_indices = torch.topk(merged_scores, k=num_beams)[1]
        sequences = _gather_beams(merged_sequences, topk_merged_indices)
        beam_scores = _gather_beams(merged_scores, topk_merged_indices)
        beam_indices = _gather_beams(merged_beam_indices, topk_merged_indices)
        is_sent_finished = _gather_beams(merged_is_sent_finished, topk_merged_indices)

        # g. reorder the cache for the beams that run on
        beam_idx = _flatten(running_beam_indices[..., cur_len - decoder_prompt_len])
        cache.reorder_cache(beam_idx)

        # the record of this step (before cur_len moves on)
        record = _beam_record(run, step, prefix_rows, scores_before, (ids, top_logits, top_scores, top_probs),
                              attention, continuations, next_topk_indices, topk_running_sequences,
                              finished_log_probs, topk_merged_indices, cur_len, num_beams)
        run.beam_steps.append(record)
        per_step.append(((ids, top_logits, top_scores, top_probs), attention, continuations,
                         stacked if run.keep_heads else None))
        if run.on_step is not None:
            run.on_step(record)

        cur_len = cur_len + 1
        if early_stopping == "never" and length_penalty > 0.0:
            best_hypothetical_length = max_length - decoder_prompt_len
        else:
            best_hypothetical_length = cur_len - decoder_prompt_len
        best_possible_running_score = running_beam_scores[:, :1] / (best_hypothetical_length**length_penalty)
        worst_finished_score = torch.where(is_sent_finished, torch.min(beam_scores, dim=1, keepdim=True)[0], -1.0e9)
        is_early_stop_heuristic_unsatisfied = is_early_stop_heuristic_unsatisfied & torch.any(
            best_possible_running_score > worst_finished_score, dim=-1, keepdim=True)
        improvement_possible = torch.any(is_early_stop_heuristic_unsatisfied)
        exists_open_beam = ~(torch.all(is_sent_finished) & (early_stopping is True))
        valid_continuations = ~torch.all(next_token_hits_stopping_criteria)
        step += 1
        if not bool(improvement_possible & exists_open_beam & valid_continuations):
            break
        flat_running_sequences = _flatten(running_sequences[:, :, :cur_len])
        decoder_input = flat_running_sequences[:, -1:]

    # 5. the best finished hypothesis, cropped like generate() crops it
    sequences = _flatten(sequences[:, :1, :])
    final_scores = _flatten(beam_scores[:, :1])
    path = _flatten(beam_indices[:, :1, :])
    max_generated_length = int(((path + 1).bool()).sum(dim=1).max())
    output_ids = sequences[0, : decoder_prompt_len + max_generated_length].tolist()
    path_rows = path[0, :max_generated_length].tolist()
    _build_path(run, output_ids, path_rows, per_step)
    return output_ids, _stop_reason(config, output_ids), float(final_scores[0])


def _beam_record(run: _Run, step, prefix_rows, scores_before, top, attention, continuations, next_topk,
                 topk_sequences, finished_scores, merged, cur_len, num_beams) -> BeamStep:
    ids, top_logits, top_scores, top_probs = top
    beams = []
    for row, prefix in enumerate(prefix_rows):
        if scores_before[row] <= -1e8:  # the placeholder beams of the first step
            continue
        focus = LayerFocus(run.layer, attention.best_index[run.layer][row],
                           run.source_tokens[attention.best_index[run.layer][row]],
                           attention.best_weight[run.layer][row])
        beams.append(BeamRow(row, tuple(prefix), run.vocab(prefix), scores_before[row],
                             run.row_candidates(ids, top_logits, top_scores, top_probs, row), focus))
    next_beams = []
    for new, k in enumerate(next_topk[0].tolist()):
        parent, token_id, _, score, _, cumulative = continuations[k]
        next_beams.append(BeamChoice(new, int(parent), int(token_id), run.vocab.one(int(token_id)), score,
                                     cumulative))
    finished = []
    finished_list = finished_scores[0].tolist()
    for index in merged[0].tolist():
        k = index - num_beams
        # a new entry among the best finished hypotheses (entries that may not finish carry -1e9 penalties)
        if k >= 0 and finished_list[k] > -1e8:
            seq = topk_sequences[0, k, : cur_len + 1].tolist()
            finished.append(BeamHypothesis(int(continuations[k][0]), tuple(seq), run.vocab.text(seq),
                                           finished_list[k]))
    return BeamStep(step, tuple(beams), tuple(next_beams), tuple(finished))


def _build_path(run: _Run, output_ids: list[int], path_rows: list[int], per_step: list[tuple]) -> None:
    """The steps of the returned sequence: at step t it extended beam path_rows[t]."""
    rule = _RULES[run.strategy]
    for step, row in enumerate(path_rows):
        (ids, top_logits, top_scores, top_probs), attention, continuations, stacked = per_step[step]
        top = run.row_candidates(ids, top_logits, top_scores, top_probs, row)
        token_id = output_ids[step + 1]
        rank = next((r for r, c in enumerate(top, 1) if c.token_id == token_id), None)
        if rank is not None:
            chosen = top[rank - 1]
        else:  # beam sampling may pick a token outside the shown top-k: it is among this step's continuations
            _, _, logit, score, prob, _ = next(c for c in continuations if int(c[0]) == row and int(c[1]) == token_id)
            chosen = Candidate(token_id, run.vocab.one(token_id), logit, score, prob)
        prefix = output_ids[: step + 1]
        run.steps.append(Step(step=step, input_ids=tuple(prefix), input_tokens=run.vocab(prefix), token_id=token_id,
                              token=chosen.token, rule=rule, chosen=chosen, chosen_rank=rank, top_k=top,
                              cross_attention=tuple(attention.shown[row]), layers=run.focus(attention, row),
                              beam=row))
        if stacked is not None:
            run.heads.append(stacked[:, row].cpu())
