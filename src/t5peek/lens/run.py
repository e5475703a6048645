"""`lens` for one Session: check the request, tokenize, check lengths, load, then decode greedily (or teacher
force `--target`) with hooks on the decoder's sublayers, reading every depth of every step."""

from __future__ import annotations

from dataclasses import dataclass, replace

from t5peek import anatomy, finite, seq2seq, vocab
from t5peek.errors import UsageError
from t5peek.kinds import View
from t5peek.lens import encoder, heads
from t5peek.lens.project import Reading, read
from t5peek.lens.records import DepthReading, LensCandidate, LensRun, LensStep, WatchedToken
from t5peek.lens.stream import POST_NORM, Anatomy, Recorder, check_family, read_anatomy
from t5peek.probe.hooks import OUTPUT, Hook, hooked
from t5peek.session import RunShape, Session

DEFAULT_NEW_TOKENS = 8
DEFAULT_TOP_K = 3
MAX_TOP_K = 100  # per depth per step: past this the record is mostly noise
MAX_WATCH = 10  # rival tokens: each is a column of the --step table
ROWS_PER_READ = 512  # (depth, step) rows read through the head at once while decoding
POST_NORM_NOTE = ("post-norm model: each depth is read after its sublayer's LayerNorm, so the lens reads normalized "
                  "states, and each increment is what the sublayer and its LayerNorm changed together.")
PROCESSOR_NOTE = ("at step {step} the logits processors of the generation config chose '{token}', which is not "
                  "the model's top-1 (rank {rank} at the last depth).")


@dataclass(frozen=True)
class LensRequest:
    prompt: str
    target: str | None = None  # teacher forcing instead of greedy generation
    max_new_tokens: int | None = None  # generation; None: DEFAULT_NEW_TOKENS
    top_k: int = DEFAULT_TOP_K  # tokens shown per depth
    heads: bool = False  # split each attention depth's push over heads and keys
    watch: tuple[str, ...] = ()  # rival tokens (vocabulary strings or #ID) read at every depth
    encoder_layer: int | None = None  # DecoderLens: the decoder reads this encoder layer's output; None: the last

    def __post_init__(self) -> None:
        check_request(self)  # a request that exists is a valid one, for the CLI and the API alike


def check_request(request: LensRequest) -> None:
    """Usage errors that need nothing but the request itself."""
    seq2seq.check_text(request.prompt, "PROMPT")
    seq2seq.check_text(request.target, "--target")
    if not request.prompt or not request.prompt.strip():
        raise UsageError('PROMPT is empty; give the text to read, e.g. t5peek lens -m demo "translate English to '
                         'Spanish: the red house is small".')
    if request.target is not None and not request.target.strip():
        raise UsageError("--target is empty; give the target text, or leave --target out for greedy generation.")
    if request.target is not None and request.max_new_tokens is not None:
        raise UsageError("--max-new-tokens counts generated tokens; with --target the decoder reads the whole "
                         "target at once, so give one or the other.")
    seq2seq.check_bounded(request.top_k, "--top-k", 1, MAX_TOP_K)
    seq2seq.check_bounded(request.max_new_tokens, "--max-new-tokens", 1, seq2seq.MAX_NEW_TOKENS)
    if len(request.watch) > MAX_WATCH:
        raise UsageError(f"--watch is given {len(request.watch)} times; watch at most {MAX_WATCH} tokens at once.")
    if request.encoder_layer is not None and request.encoder_layer < 0:
        raise UsageError(f"--encoder-layer {request.encoder_layer} is out of range: give a layer from 0 (the "
                         "first) to the encoder's last.")


def check_step(step: int | None, steps: int, what: str) -> None:
    """`--step` against the steps a run has (or will have at most)."""
    if step is not None and not 0 <= step < steps:
        raise UsageError(f"--step {step} is out of range: {what} has steps 0 to {steps - 1}.")


def run_lens(session: Session, request: LensRequest) -> LensRun:
    """The LensRun of the request: the request, tokenizer and length checks come before any weight is loaded."""
    session.require("lens")
    check_family(session.model_type, session.name)
    encoder_layers = int(anatomy.config_value(session.config, "encoder_layers"))
    encoder.check_layer(request.encoder_layer, encoder_layers, session.name)
    watch_ids = _watch_ids(session, request.watch)
    new_tokens = request.max_new_tokens or DEFAULT_NEW_TOKENS
    input_ids, attention_mask, labels = seq2seq.encode(session, request.prompt, request.target, new_tokens,
                                                        "--max-new-tokens")
    target_tokens = new_tokens if labels is None else labels.shape[-1]
    loaded = session.weights(eager_attention=True, run=RunShape(input_ids.shape[-1], target_tokens))
    model = loaded.model
    shape = read_anatomy(model, session.model_type)
    top_k = min(request.top_k, shape.head.weight.shape[0])
    input_ids, attention_mask = input_ids.to(loaded.device), attention_mask.to(loaded.device)
    split = None
    with session.progress("Reading every depth of the decoder…"), \
            encoder.encoder_upto(model, session.model_type, request.encoder_layer):
        if labels is None:
            steps, ending, notes = _greedy(session, model, shape, input_ids, attention_mask, new_tokens, top_k,
                                           watch_ids)
        else:
            steps, ending, notes = _teacher_forced(session, model, shape, input_ids, attention_mask,
                                                   labels.to(loaded.device), top_k, watch_ids)
        if request.heads and steps:
            split = _split(session, model, shape, input_ids, attention_mask, steps, loaded.device)
    output_ids, output_text, stop_reason, lens_errors, logit_states, depth_states = ending
    if split is not None:
        steps = [_with_heads(step, parts) for step, parts in zip(steps, split)]
    bad = finite.first(logit_states)
    tokenizer = session.tokenizer
    source_ids = tuple(input_ids[0].tolist())
    head = shape.head
    return LensRun(
        model=session.name, prompt=request.prompt, target=request.target,
        view=View.GENERATION if labels is None else View.TEACHER_FORCING, model_type=session.model_type,
        norm_placement=shape.norm_placement, head=head.description,
        lens_method=f"logit lens: each depth's stream through the model's own head, {head.description}, "
                    "normalized with its own statistics",
        method=_method(shape), source_ids=source_ids, source_tokens=seq2seq.token_strings(tokenizer, source_ids),
        decoder_layers=shape.decoder_layers, depth_labels=tuple(tap.label for tap in shape.taps), top_k=top_k,
        steps=tuple(steps), output_ids=output_ids, output_text=output_text, stop_reason=stop_reason,
        lens_error=finite.largest(error for error in lens_errors if error is not None),
        attribution_error=_attribution_error(steps, logit_states), nonfinite_from=None if bad is None else bad[0],
        notes=((POST_NORM_NOTE,) if shape.norm_placement == POST_NORM else ()) + _dtype_note(head) + tuple(notes)
        + _nonfinite_note(bad, depth_states, shape, greedy=labels is None),
        encoder_layers=encoder_layers, encoder_layer=request.encoder_layer,
        encoder_read=encoder.describe(session.model_type, request.encoder_layer, encoder_layers),
        heads_method=heads.method(shape) if request.heads else None,
        heads_error=_heads_error(steps, logit_states) if request.heads else None)


def _watch_ids(session: Session, watch: tuple[str, ...]) -> tuple[int, ...]:
    """The ids of the --watch tokens, checked against the tokenizer and the logits' width (the meta model's head:
    no weight is loaded for it)."""
    if not watch:
        return ()
    width = session.meta_model.get_output_embeddings().weight.shape[0]
    return tuple(dict.fromkeys(vocab.token_id(session.tokenizer, text, width, "--watch") for text in watch))


def _split(session: Session, model, shape: Anatomy, input_ids, attention_mask, steps: list[LensStep], device):
    """--heads: the split of every attention depth at every step, in one teacher-forced pass over the run's own
    decoder inputs."""
    import torch

    found = heads.sites(model, session.model_type, session.name, shape)
    decoder_input_ids = torch.tensor([[s.input_id for s in steps]], device=device)
    chosen = torch.tensor([s.token_id for s in steps])
    return heads.split(model, shape, found, input_ids, attention_mask, decoder_input_ids, chosen)


def _with_heads(step: LensStep, parts: dict) -> LensStep:
    depths = tuple(replace(d, heads=parts[d.depth].heads, output_bias=parts[d.depth].output_bias,
                           norm_part=parts[d.depth].norm_part) if d.depth in parts else d for d in step.depths)
    return replace(step, depths=depths)


def _heads_error(steps: list[LensStep], logit_states: list) -> float:
    """max |Σ heads + output bias + norm part − the depth's push| and |Σ keys + value bias − the head's part|, over
    the steps whose logits are finite; NaN when none is."""
    gaps = []
    for s, state in zip(steps, logit_states):
        if state is not None:
            continue
        for d in s.depths:
            if d.heads is None:
                continue
            gaps.append(abs(sum(h.contribution for h in d.heads) + d.output_bias + (d.norm_part or 0.0)
                            - d.contribution))
            gaps.extend(abs(sum(h.sources) + h.value_bias - h.contribution) for h in d.heads)
    return finite.largest(gaps)


def _attribution_error(steps: list[LensStep], logit_states: list) -> float:
    """max |Σ contributions + constant − the logit| over the steps whose logits are finite; NaN when none is."""
    gaps = [abs(sum(d.contribution for d in s.depths) + s.constant - s.logit)
            for s, state in zip(steps, logit_states) if state is None]
    return finite.largest(gaps)


def _nonfinite_note(bad, depth_states: list, shape: Anatomy, greedy: bool) -> tuple[str, ...]:
    """generate's sentence on the first step whose logits are not finite, and the depth where its stream stops
    being finite (none: the head itself overflows)."""
    if bad is None:
        return ()
    step, state = bad
    consequence = "the choices are arbitrary" if greedy else "the readings there mean nothing"
    depth = depth_states[step]
    where = (f"At step {step} the stream is finite at every depth: the head makes its logits {state}" if depth is None
             else f"At step {step} the stream is first {depth[1]} at depth '{shape.taps[depth[0]].label}'")
    return (finite.from_step(step, "logits", state, consequence) + f" {where}; the checks leave out the steps whose "
            "logits are not finite.",)


def _dtype_note(head) -> tuple[str, ...]:
    dtype = str(head.weight.dtype).removeprefix("torch.")
    if dtype == "float32":
        return ()
    return (f"the model runs in {dtype}: its own logits are rounded to {dtype}, so the pushes (summed in float32) "
            "match them only to about 1e-1; --dtype float32 gives about 1e-5.",)


def _method(shape: Anatomy) -> str:
    head = shape.head
    increments = ("what the sublayer and its LayerNorm changed" if shape.norm_placement == POST_NORM
                  else "its output")
    if head.norm is None:
        through = "each part goes straight to lm_head's row of the chosen token (no final norm: the head is affine)"
    else:
        scale = ", × d_model**-0.5" if head.scale != 1.0 else ""
        through = f"each part through {head.frozen}{scale}, then lm_head's row of the chosen token"
    constants = [name for name, present in (("the final norm's bias", head.norm is not None and not head.rms),
                                            ("final_logits_bias", head.bias is not None)) if present]
    constant = f"; the constant is {' and '.join(constants)}" if constants else ""
    return (f"direct logit attribution: the final stream = the embedding + one increment per sublayer ({increments});"
            f" {through}; parts + constant = the logit{constant}")


def _model_logits(model, into: dict) -> Hook:
    """A hook on the model itself that keeps the last position's logits of each pass (the oracle of the lens)."""

    def keep(_value, call) -> None:
        into["logits"] = call.output.logits[0].detach()

    return Hook(model, OUTPUT, keep, "logits")


def _greedy(session: Session, model, shape: Anatomy, input_ids, attention_mask, new_tokens: int, top_k: int,
            watch: tuple[int, ...]):
    """Greedy decoding as `model.generate(do_sample=False, num_beams=1)` does it. The streams of each step are
    kept and read a batch of steps at a time: one vocabulary matmul for many rows is far cheaper than one per step."""
    import torch

    from t5peek.generate import decode, resolve_settings

    settings = resolve_settings(session.config, "", {"max_new_tokens": new_tokens, "do_sample": False,
                                                     "num_beams": 1}, top_k=1)
    steps: list[LensStep] = []
    errors: list[float | None] = []
    logit_states: list[str | None] = []
    depth_states: list = []
    pending: list[tuple] = []  # (streams (depths, 1, d_model), model logits (1, vocab), step)
    tokens = seq2seq.TokenNames(session.tokenizer)
    batch = max(1, ROWS_PER_READ // len(shape.taps))

    def flush() -> None:
        if not pending:
            return
        streams = torch.cat([p[0] for p in pending], dim=1)
        chosen = torch.tensor([p[2].token_id for p in pending])
        own_logits = torch.cat([p[1] for p in pending])
        reading = read(shape.head, streams, chosen, top_k, own_logits, watch)
        errors.extend(reading.final_errors)
        logit_states.extend(finite.row_states(own_logits))
        depth_states.extend(reading.first_nonfinite_depth)
        for position, (_, _, step) in enumerate(pending):
            steps.append(_step(reading, position, step.step, step.input_ids[-1], step.token_id, shape, tokens,
                               watch))
        pending.clear()

    def on_step(step) -> None:
        pending.append((recorder.take(), own["logits"][-1:], step))
        if len(pending) >= batch:
            flush()

    recorder, own = Recorder(shape.taps), {}
    with hooked(model, [*recorder.hooks(), _model_logits(model, own)]):
        run = decode(model, session.tokenizer, input_ids, settings, on_step=on_step, attention_mask=attention_mask)
    flush()
    notes = [PROCESSOR_NOTE.format(step=s.step, token=s.token, rank=s.depths[-1].rank) for s in steps
             if s.depths[-1].rank != 1]
    return steps, (run.output_ids, run.output_text, run.stop_reason, errors, logit_states, depth_states), notes


def _teacher_forced(session: Session, model, shape: Anatomy, input_ids, attention_mask, labels, top_k: int,
                    watch: tuple[int, ...]):
    """One forward with the target as labels: every position read at once."""
    import torch

    decoder_input_ids = seq2seq.shift_right(model, labels)
    recorder = Recorder(shape.taps)
    with torch.no_grad(), hooked(model, recorder.hooks()):
        outputs = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                        use_cache=False, return_dict=True)
        reading = read(shape.head, recorder.take(), labels[0], top_k, outputs.logits[0].detach(), watch)
    tokens = seq2seq.TokenNames(session.tokenizer)
    inputs, targets = decoder_input_ids[0].tolist(), labels[0].tolist()
    steps = [_step(reading, n, n, inputs[n], targets[n], shape, tokens, watch) for n in range(len(targets))]
    ending = (tuple(targets), session.tokenizer.decode(targets, skip_special_tokens=True),
              "teacher forcing: the whole target in one pass", reading.final_errors,
              finite.row_states(outputs.logits[0]), reading.first_nonfinite_depth)
    return steps, ending, []


def _step(reading: Reading, position: int, step: int, input_id: int, token_id: int, shape: Anatomy,
          tokens: seq2seq.TokenNames, watch: tuple[int, ...]) -> LensStep:
    top_ids = reading.top_ids[position]
    asked = [input_id, token_id, *watch, *(i for row in top_ids for i in row)]
    names = dict(zip(asked, tokens(asked)))
    ranks = reading.ranks[position]
    depths = tuple(
        DepthReading(depth, tap.layer, tap.sublayer,
                     tuple(LensCandidate(i, names[i], lg, p) for i, lg, p in
                           zip(top_ids[depth], reading.top_logits[position][depth],
                               reading.top_probabilities[position][depth])),
                     ranks[depth], reading.logits[position][depth], reading.probabilities[position][depth],
                     reading.contributions[position][depth])
        for depth, tap in enumerate(shape.taps))
    settled = None
    for depth in range(len(ranks) - 1, -1, -1):
        if ranks[depth] != 1:
            break
        settled = depth
    watched = tuple(WatchedToken(w, names[w], tuple(row[n] for row in reading.watch_ranks[position]),
                                 tuple(row[n] for row in reading.watch_probabilities[position]))
                    for n, w in enumerate(watch))
    source = sum(d.contribution for d in depths if d.sublayer == anatomy.CROSS_ATTENTION)
    prefix = sum(d.contribution for d in depths if d.sublayer == anatomy.SELF_ATTENTION)
    return LensStep(step=step, input_id=input_id, input_token=names[input_id], token_id=token_id,
                    token=names[token_id], logit=reading.logits[position][-1],
                    probability=reading.probabilities[position][-1], constant=reading.constants[position],
                    settled_depth=settled, depths=depths, source_push=source, prefix_push=prefix,
                    source_share=source_share(source, prefix), watch=watched)


def source_share(source: float, prefix: float) -> float | None:
    """Of what attention pushed toward the token, the part that came from the source: max(source, 0) /
    (max(source, 0) + max(prefix, 0)); None when neither pushed it up."""
    up = max(source, 0.0) + max(prefix, 0.0)
    return max(source, 0.0) / up if up > 0 else None
