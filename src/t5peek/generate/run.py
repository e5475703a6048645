"""`generate` for one Session: check the request, tokenize, check lengths, load the weights, decode."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, replace
from typing import Callable

from t5peek import anatomy, families, seq2seq, vocab
from t5peek.errors import UnsupportedModel, UsageError
from t5peek.session import RunShape, Session
from t5peek.generate.decode import decode
from t5peek.generate.settings import resolve_settings, task_for_prompt


FORCED_NOTE = ("--force: steps before {step} are the original run's; from step {step} on this is the branch, "
               "decoded with the same settings from the forced token (output_ids is the branch, original_ids the "
               "run without --force).")
# new tokens the memory check plans for when --max-new-tokens is not given (transformers' default max_length)
DEFAULT_PLANNED_TOKENS = 20
# a run's progress line (decoding, --occlusion's re-scoring) changes at most this often
PROGRESS_SECONDS = 2.0


@dataclass(frozen=True)
class GenerateRequest:
    """What the user asked for; None means "from the model's settings"."""

    prompt: str
    max_new_tokens: int | None = None
    num_beams: int | None = None
    sample: bool | None = None  # True: sample, False: greedy (one beam)
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    top_k: int = 5  # candidates shown per step (display only)
    layer: int | None = None  # the decoder layer whose cross-attention is shown
    keep_heads: bool = False  # keep every head's attention (for the HTML report)
    task_params: bool = False  # apply the task_specific_params of the prompt's task prefix (--task-params)
    self_attention: bool = False  # record the encoder's and the decoder's self-attention (--self)
    occlusion: bool = False  # re-score the output with each source token replaced by the pad token (--occlusion)
    force: tuple[int, str] | None = None  # (step, token): put the token in at that step and go on (--force)

    def __post_init__(self) -> None:
        check_request(self)  # a request that exists is a valid one, for the CLI and the API alike

    @property
    def new_views(self) -> str:
        """The options of the views that follow only the T5 and BART families, as named on the command line."""
        return " and ".join(name for name, asked in (("--self", self.self_attention),
                                                    ("--occlusion", self.occlusion)) if asked)


def check_request(request: GenerateRequest) -> None:
    """Usage errors that need nothing but the request itself."""
    seq2seq.check_text(request.prompt, "PROMPT")
    if not request.prompt.strip():
        raise UsageError('The prompt is empty: give the text to decode, e.g. "translate English to German: '
                         'the house is small".')
    if request.top_k <= 0:
        raise UsageError(f"--top-k must be at least 1 (got {request.top_k}).")
    if request.max_new_tokens is not None and request.max_new_tokens <= 0:
        raise UsageError(f"--max-new-tokens must be at least 1 (got {request.max_new_tokens}).")
    if request.num_beams is not None and request.num_beams <= 0:
        raise UsageError(f"--num-beams must be at least 1 (got {request.num_beams}).")
    if request.sample is False and request.num_beams is not None and request.num_beams > 1:
        raise UsageError(f"--greedy means one beam, but --num-beams {request.num_beams} asks for beam search.")
    temperature, top_p = request.temperature, request.top_p
    if temperature is not None and not (temperature > 0 and math.isfinite(temperature)):
        raise UsageError(f"--temperature must be greater than 0 (got {temperature}); for always the top token, "
                         "use --greedy.")
    if top_p is not None and not 0 < top_p <= 1:
        raise UsageError(f"--top-p must be in (0, 1] (got {top_p}).")
    if (temperature is not None or top_p is not None) and request.sample is False:
        raise UsageError("--temperature and --top-p shape sampling; they do nothing with --greedy.")
    if request.layer is not None and request.layer < 0:
        raise UsageError(f"--layer counts decoder layers from 0 (got {request.layer}).")
    seq2seq.check_bounded(request.max_new_tokens, "--max-new-tokens", 1, seq2seq.MAX_NEW_TOKENS)
    seq2seq.check_bounded(request.num_beams, "--num-beams", 1, seq2seq.MAX_BEAMS)
    if request.num_beams is not None and request.max_new_tokens is not None:
        seq2seq.check_beam_tokens(request.num_beams, request.max_new_tokens)
    seq2seq.check_bounded(request.seed, "--seed", 0, seq2seq.MAX_SEED)
    if request.force is not None:
        step, token = request.force
        seq2seq.check_bounded(step, "--force STEP", 0, seq2seq.MAX_NEW_TOKENS - 1)
        if not token:
            raise UsageError("--force STEP=TOKEN names no token: give a token of the vocabulary, or #ID.")
        if request.num_beams is not None and request.num_beams > 1:
            raise UsageError("--force follows one sequence (greedy or sampled); beam search keeps several.")
        if request.occlusion:
            raise UsageError("--force and --occlusion: occlusion re-scores one output; run them apart.")
    if request.temperature is not None and 0 < request.temperature < seq2seq.MIN_TEMPERATURE:
        raise UsageError(f"--temperature must be at least {seq2seq.MIN_TEMPERATURE} (got {request.temperature}): "
                         "smaller turns the logits into infinities; --greedy always takes the top token.")


def shown_top_k(session: Session, request: GenerateRequest) -> int:
    """Checks that need only config.json; returns the number of candidates to show."""
    raw, name, layer = session.config, session.name, request.layer
    family = families.style(session.model_type)
    if request.new_views and family not in (families.T5_STYLE, families.BART_STYLE):
        raise UnsupportedModel(f"t5peek generate {request.new_views} works on the T5 and BART families only; "
                               f"'{name}' is a {session.model_type} model.")
    layers = anatomy.config_value(raw, "decoder_layers")
    if layer is not None and isinstance(layers, int) and layer >= layers:
        raise UsageError(f"--layer {layer} is out of range: the decoder of '{name}' has layers 0 to {layers - 1}.")
    vocab = raw.get("vocab_size")
    if isinstance(vocab, int) and request.top_k > vocab:
        session.warn(f"--top-k {request.top_k} is more than the vocabulary of {vocab:,} tokens; showing all of them.")
        return vocab
    return request.top_k


def requested_settings(session: Session, model, request: GenerateRequest) -> tuple[dict, int | None, str]:
    """The generate() arguments the request asks for, and the seed to use with where it came from."""
    requested: dict = {}
    if request.max_new_tokens is not None:
        requested["max_new_tokens"] = request.max_new_tokens
    if request.sample is not None:
        requested["do_sample"] = request.sample
        if request.sample is False and request.num_beams is None:
            requested["num_beams"] = 1
    for key in ("num_beams", "temperature", "top_p"):
        if getattr(request, key) is not None:
            requested[key] = getattr(request, key)
    task_params = task_for_prompt(session.config, request.prompt)[1] if request.task_params else {}
    sampling = requested.get("do_sample", task_params.get("do_sample", model.generation_config.do_sample))
    if not sampling and (request.temperature is not None or request.top_p is not None):
        raise UsageError("--temperature and --top-p shape sampling, which this model does not do by default; "
                         "add --sample.")
    if not sampling:
        if request.seed is not None:
            session.warn("--seed has no effect without sampling (--sample).")
        return requested, None, "unset"
    if request.seed is not None:
        return requested, request.seed, "command line"
    import secrets

    drawn = secrets.randbelow(2**31)
    return requested, drawn, f"drawn at random; --seed {drawn} repeats this run"


def run_generate(session: Session, request: GenerateRequest, on_start: Callable | None = None,
                 on_step: Callable | None = None, progress_steps: bool | None = None):
    """The DecodeRun of the request: the tokenizer and length checks come before any weight is loaded.
    `progress_steps`: show the step reached on the session's progress line (default: when no `on_step` shows
    the steps; the CLI asks for it too when its steps go to a file or a pipe)."""
    session.require("generate")
    top_k = shown_top_k(session, request)
    tokenizer = session.tokenizer
    encoded = tokenizer(request.prompt, return_tensors="pt")
    seq2seq.check_prompt(session.config, session.name, encoded["input_ids"].shape[1], tokenizer, session.warn)
    pad = occlusion_pad(session) if request.occlusion else None
    if request.max_new_tokens is not None:
        seq2seq.check_new_tokens(session.config, session.name, request.max_new_tokens, "--max-new-tokens",
                                 tokenizer, session.warn)
    new_tokens = request.max_new_tokens or DEFAULT_PLANNED_TOKENS
    loaded = session.weights(eager_attention=True, run=RunShape(encoded["input_ids"].shape[1], new_tokens,
                                                                request.num_beams or 1, request.occlusion))
    requested, seed, seed_source = requested_settings(session, loaded.model, request)
    settings = resolve_settings(session.config, request.prompt, requested, top_k=top_k, seed=seed,
                                seed_source=seed_source, layer=request.layer, keep_heads=request.keep_heads,
                                task_params=request.task_params, self_attention=request.self_attention)
    # a warning only for a run that goes ahead, after every usage error
    seq2seq.check_unknown(session.name, request.prompt, encoded["input_ids"][0].tolist(), tokenizer, session.warn)
    input_ids = encoded["input_ids"].to(loaded.device)
    attention_mask = encoded["attention_mask"].to(loaded.device) if "attention_mask" in encoded else None
    with Progress(session) as progress:
        plan = []

        def started(decode_plan) -> None:
            plan.append(decode_plan)
            if on_start is not None:
                on_start(decode_plan)

        def stepped(step) -> None:
            if on_step is not None:
                on_step(step)
            if progress_steps or (progress_steps is None and on_step is None):
                progress.show(decoding_message(plan[0], step))

        forced, original = None, None
        if request.force is not None:
            forced, original = _original_run(session, loaded.model, request, input_ids, attention_mask, settings)
        run = decode(loaded.model, tokenizer, input_ids, settings, on_step=stepped,
                     attention_mask=attention_mask, on_start=started, force=forced)
        if original is not None:
            run = _branch(run, original, forced)
        if pad is not None:
            from t5peek.generate.occlusion import occlude

            pad_token = seq2seq.token_strings(tokenizer, [pad])[0]
            occlusion = occlude(loaded.model, input_ids, attention_mask, run, pad, pad_token,
                                set(getattr(tokenizer, "all_special_ids", ())),
                                lambda done, total: progress.show(f"--occlusion: re-scored {done:,} of {total:,} "
                                                                  "copies of the source…", now=done == 0))
            run = replace(run, occlusion=occlusion)
    return replace(run, model=session.name, prompt=request.prompt)


def parse_force(text: str | None) -> tuple[int, str] | None:
    """`--force STEP=TOKEN` as (step, token)."""
    if text is None:
        return None
    step, equals, token = text.partition("=")
    if not equals or not step.strip().isdigit():
        raise UsageError(f"--force {text!r} is not STEP=TOKEN, e.g. --force 2=azul or --force 2=#88.")
    return int(step), token


def _original_run(session: Session, model, request: GenerateRequest, input_ids, attention_mask, settings):
    """The run --force branches from, decoded first and quietly; (step, token id) of the branch point."""
    step, token = request.force
    head = model.get_output_embeddings()
    width = head.weight.shape[0] if head is not None else model.config.vocab_size
    token_id = vocab.token_id(session.tokenizer, token, width, "--force")
    original = decode(model, session.tokenizer, input_ids, settings, attention_mask=attention_mask)
    if original.strategy.is_beam:
        raise UsageError("--force follows one sequence (greedy or sampled); this model's generation config asks "
                         "for beam search: add --greedy or --sample.")
    if step >= len(original.steps):
        raise UsageError(f"--force {step}={token}: the output has steps 0 to {len(original.steps) - 1} "
                         f"({original.stop_reason}), so step {step} never happens.")
    return (step, token_id), original


def _branch(run, original, forced: tuple[int, int]):
    from t5peek.generate.records import Forced

    step = original.steps[forced[0]]
    branch_step = run.steps[forced[0]]
    tokens = tuple(s.input_tokens[-1] for s in original.steps) + (original.steps[-1].token,)
    return replace(run, forced=Forced(forced[0], forced[1], branch_step.token, step.token_id, step.token, tokens),
                   original_ids=original.output_ids, original_text=original.output_text,
                   notes=run.notes + (FORCED_NOTE.format(step=forced[0]),))


def decoding_message(plan, step) -> str:
    """The progress line of a decoding step: the step reached, the most there may be, the beams."""
    most = plan.settings["max_new_tokens"].value
    beams = plan.settings["num_beams"].value
    return f"Decoding: step {step.step + 1:,} of at most {most:,}" + (f", {beams} beams" if beams > 1 else "") + "…"


class Progress:
    """The session's progress line (a spinner on stderr when it is a terminal), its message renewed at most every
    PROGRESS_SECONDS."""

    def __init__(self, session: Session):
        self.session = session
        self.shown = -math.inf
        self.stack = contextlib.ExitStack()

    def show(self, message: str, now: bool = False) -> None:
        """Show `message`: at once when `now`, else unless the last one is younger than PROGRESS_SECONDS."""
        clock = time.monotonic()
        if now or clock - self.shown >= PROGRESS_SECONDS:
            self.shown = clock
            self.stack.close()
            self.stack.enter_context(self.session.progress(message))

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.stack.close()


def occlusion_pad(session: Session) -> int:
    """The token that stands in for an occluded source token."""
    return seq2seq.pad_token_id(session, "--occlusion replaces source tokens by the pad token")
