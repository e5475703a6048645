"""`attend` for one Session: check the request, tokenize, check lengths, load the weights, run, recompute."""

from __future__ import annotations

from dataclasses import dataclass, replace

from t5peek import anatomy, finite, seq2seq
from t5peek.attend.heads import check_family, check_layer_and_head, config_shape, locate
from t5peek.attend.records import AttendReport, AttentionKind
from t5peek.errors import UsageError
from t5peek.session import RunShape, Session

GREEDY_NOTE = ("the decoder input is greedy decoding's: the highest-scoring token at each step, from the raw logits "
               "(generate() may also apply forced or banned tokens from the generation config).")
EAGER_NOTE = ("attention ran in eager mode (attn_implementation='eager') so that the module returns its weights "
              "to check against; sdpa or flash attention compute the same result without them.")
CAUSAL_NOTE = ("at step T the decoder holds positions 0..T only (the cache): the causal mask, which hides later "
               "positions when a whole target is read at once (training), has nothing to hide here.")


@dataclass(frozen=True)
class AttendRequest:
    """What the user asked for; None means the default."""

    prompt: str
    layer: int | None = None  # default: the last layer of the stack
    head: int = 0
    step: int | None = None  # decoder views: the decoder step (= position) of the query, default 0
    cross: bool | None = None  # True: cross-attention (the decoder's default), False: decoder self-attention
    encoder: bool = False  # encoder self-attention; the query is a source position (`query`)
    query: int | None = None  # encoder view: the source position of the query, default 0

    def __post_init__(self) -> None:
        check_request(self)  # a request that exists is a valid one, for the CLI and the API alike

    @property
    def kind(self) -> AttentionKind:
        if self.encoder:
            return AttentionKind.ENCODER_SELF
        return AttentionKind.DECODER_SELF if self.cross is False else AttentionKind.CROSS


def check_request(request: AttendRequest) -> None:
    """Usage errors that need nothing but the request itself."""
    seq2seq.check_text(request.prompt, "PROMPT")
    if not request.prompt.strip():
        raise UsageError('PROMPT is empty; give the text to feed the encoder, e.g. t5peek attend -m demo '
                         '"translate English to Spanish: the red house is small".')
    if request.encoder:
        if request.cross:
            raise UsageError("--encoder and --cross ask for two attentions: the encoder has self-attention only; "
                             "cross-attention is the decoder's.")
        if request.step is not None:
            raise UsageError("--step picks a decoder step; with --encoder the query is a source position: use "
                             "--query.")
    elif request.query is not None:
        raise UsageError("--query picks a source position for --encoder; in the decoder the query is the decoder "
                         "position of --step.")
    if request.layer is not None and request.layer < 0:
        raise UsageError(f"--layer counts layers from 0 (got {request.layer}).")
    if request.head < 0:
        raise UsageError(f"--head counts heads from 0 (got {request.head}).")
    if request.step is not None:
        seq2seq.check_bounded(request.step, "--step", 0, seq2seq.MAX_NEW_TOKENS - 1)
    if request.query is not None and request.query < 0:
        raise UsageError(f"--query counts source positions from 0 (got {request.query}).")


def run_attend(session: Session, request: AttendRequest) -> AttendReport:
    """The AttendReport of the request: every check that can come before the weights does."""
    import torch

    from t5peek.attend.capture import hooks_on, run_to_query
    from t5peek.attend.recompute import Query, build_report, recompute

    kind = request.kind
    check_family(session.model_type, session.name)
    raw = session.config
    layer = check_layer_and_head(raw, session.name, kind, request.layer, request.head)
    input_ids, attention_mask, position = _encode(session, request)
    steps = 1 if request.encoder else (request.step or 0) + 1
    loaded = session.weights(eager_attention=True, run=RunShape(input_ids.shape[-1], steps))
    model, device = loaded.model, loaded.device
    site = locate(model, session.model_type, kind, layer)
    if any(weight.device.type == "meta" for weight in site.module.parameters()):
        raise UsageError(f"The weights of {site.name} are offloaded (--device-map / --max-memory), so they cannot "
                         "be read to recompute the head.", hint="Run with a --max-memory that keeps that layer in "
                         "memory, or without --device-map.")
    step = None if kind is AttentionKind.ENCODER_SELF else position
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    with session.progress("Running the model to the query…"), hooks_on(model, site) as captured:
        decoded = run_to_query(model, input_ids, attention_mask, step, session.tokenizer)
    shape = config_shape(raw, kind)
    query = Query(kind, layer, shape.layers, request.head, shape.heads, position)
    with torch.no_grad():
        numbers = recompute(site, captured, query, session.model_type, raw)
    report = build_report(numbers, query, name=session.name, model_type=session.model_type, prompt=request.prompt,
                          raw_config=raw, site=site, source_ids=input_ids[0].tolist(),
                          decoder_ids=decoded.decoder_ids, next_id=decoded.next_id,
                          d_model=int(anatomy.config_value(raw, "d_model")), tokenizer=session.tokenizer)
    notes = [EAGER_NOTE] + ([GREEDY_NOTE] if step is not None else [])
    notes += [CAUSAL_NOTE] if kind is AttentionKind.DECODER_SELF else []
    return replace(report, notes=tuple(notes) + _nonfinite_notes(decoded.nonfinite, numbers["first_nonfinite"]))


def _nonfinite_notes(logits, head) -> tuple[str, ...]:
    """generate's sentence on the first decoding step whose logits are not finite, and the first of the head's own
    numbers that is not finite."""
    notes = []
    if logits is not None:
        notes.append(finite.from_step(logits[0], "logits", logits[1], "the choices are arbitrary"))
    if head is not None:
        notes.append(f"In this head the first number that is not finite is {head[0]} ({head[1]}).")
    return tuple(notes)


def _encode(session: Session, request: AttendRequest):
    """Token ids and mask of the prompt, checked against the model's positions; and the query's position."""
    import torch

    tokenizer = session.tokenizer
    encoded = tokenizer(request.prompt, return_tensors="pt")
    input_ids = encoded["input_ids"]
    attention_mask = encoded.get("attention_mask")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    length = input_ids.shape[-1]
    seq2seq.check_prompt(session.config, session.name, length, tokenizer, session.warn)
    if request.encoder:
        position = request.query or 0
        if position >= length:
            raise UsageError(f"--query {position} is out of range: PROMPT has {length} tokens, positions 0 to "
                             f"{length - 1}.")
    else:
        position = request.step or 0
        if position:
            seq2seq.check_new_tokens(session.config, session.name, position, "--step", tokenizer, session.warn)
    # a warning only for a run that goes ahead, after every usage error
    seq2seq.check_unknown(session.name, request.prompt, input_ids[0].tolist(), tokenizer, session.warn)
    return input_ids, attention_mask, position
