"""`knockout`: attention heads ablated, teacher-forced on the original output and then decoding freely.

A head is knocked out at the input of its attention's output projection, where the heads' outputs sit side by
side: its slice is set to zero (`zero`), or to its mean over the original run's positions (`mean`). Zeroing the
slice is exactly zeroing the head's columns of the projection's weight, which is how the tests check it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from t5peek import seq2seq
from t5peek.errors import UnsupportedModel, UsageError
from t5peek.interventions import common
from t5peek.interventions.records import KnockedHead, KnockoutRun, KnockoutStep, SweepCell
from t5peek.interventions.sites import HEAD_KINDS, Sites, check_family, find_sites
from t5peek.probe.hooks import INPUT, Hook, keep
from t5peek.session import RunShape, Session

MODES = ("zero", "mean")
HEAD_PATTERN = re.compile(r"^(?P<kind>[a-z]+):(?P<layer>\d+)\.(?P<head>\d+)$")
MEAN_NOTE = ("mean: each knocked-out head's slice is replaced by its mean over the positions of the original run "
             "(the source for encoder heads, the original output for decoder heads), at every position and step.")


@dataclass(frozen=True)
class KnockoutRequest:
    prompt: str
    heads: tuple[KnockedHead, ...] = ()
    mode: str = "zero"
    max_new_tokens: int | None = None  # None: common.DEFAULT_NEW_TOKENS
    sweep: str | None = None  # knock out every head of this kind, one at a time

    def __post_init__(self) -> None:
        seq2seq.check_text(self.prompt, "PROMPT")
        if not self.prompt.strip():
            raise UsageError('PROMPT is empty; give the source text, e.g. t5peek knockout -m demo "translate English '
                             'to Spanish: the red house" --head cross:2.3.')
        if not self.heads and self.sweep is None:
            raise UsageError("name the heads to knock out with --head KIND:L.H (KIND encoder, self or cross; L the "
                             "layer, H the head, from 0), or sweep every head of one kind with --sweep KIND.")
        for head in self.heads:
            _check_kind(head.kind, "--head")
        if self.sweep is not None:
            _check_kind(self.sweep, "--sweep")
        if self.mode not in MODES:
            raise UsageError(f"--mode {self.mode!r} is not one of {', '.join(MODES)}.")
        if len(set(self.heads)) != len(self.heads):
            raise UsageError("a --head is named twice.")
        seq2seq.check_bounded(self.max_new_tokens, "--max-new-tokens", 1, seq2seq.MAX_NEW_TOKENS)


def _check_kind(kind: str, option: str) -> None:
    if kind not in HEAD_KINDS:
        raise UsageError(f"{option} {kind!r}: the kind is one of {', '.join(HEAD_KINDS)} (encoder self-attention, "
                         "decoder self-attention, decoder cross-attention).")


def parse_head(text: str) -> KnockedHead:
    """`--head KIND:L.H` as a KnockedHead."""
    match = HEAD_PATTERN.match(text.strip())
    if match is None:
        raise UsageError(f"--head {text!r} is not KIND:L.H, e.g. --head cross:2.3 (decoder layer 2's cross-attention "
                         "head 3).")
    _check_kind(match["kind"], "--head")
    return KnockedHead(match["kind"], int(match["layer"]), int(match["head"]))


def check_heads(sites: Sites, heads: tuple[KnockedHead, ...], sweep: str | None, name: str, model_type: str) -> None:
    for kind in {head.kind for head in heads} | ({sweep} if sweep else set()):
        if kind not in sites.attention:
            raise UnsupportedModel(f"t5peek knockout cannot knock out {kind} heads of '{name}' ({model_type}): its "
                                   "encoder does not attend with one plain multi-head attention; self and cross "
                                   "heads work.")
    for head in heads:
        layers = sites.attention[head.kind]
        if head.layer >= len(layers):
            raise UsageError(f"--head {head.label}: layer {head.layer} is out of range; {name} has {head.kind} layers "
                             f"0 to {len(layers) - 1}.")
        if head.head >= layers[head.layer].heads:
            raise UsageError(f"--head {head.label}: head {head.head} is out of range; layer {head.layer} has heads 0 "
                             f"to {layers[head.layer].heads - 1}.")


def run_knockout(session: Session, request: KnockoutRequest) -> KnockoutRun:
    session.require("knockout")
    check_family(session.model_type, session.name, "knockout")
    new_tokens = request.max_new_tokens or common.DEFAULT_NEW_TOKENS
    input_ids, attention_mask, _ = seq2seq.encode(session, request.prompt, None, new_tokens, "--max-new-tokens")
    loaded = session.weights(eager_attention=True, run=RunShape(input_ids.shape[-1], new_tokens))
    model, device = loaded.model, loaded.device
    sites = find_sites(model, session.model_type, session.name, "knockout")
    check_heads(sites, request.heads, request.sweep, session.name, session.model_type)
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    tokens = seq2seq.TokenNames(session.tokenizer)
    import torch

    with session.progress("Knocking out heads…"):
        original = common.greedy_ids(session, model, input_ids, attention_mask, new_tokens)
        decoder_input = torch.tensor([original[:-1]], device=device)
        kinds = {head.kind for head in request.heads} | ({request.sweep} if request.sweep else set())
        means = _means(model, sites, kinds, input_ids, attention_mask, decoder_input) if request.mode == "mean" \
            else None
        plain = common.forward_logits(model, input_ids, attention_mask, decoder_input)[0]
        targets = torch.tensor(original[1:], device=plain.device)
        logits = plain.gather(-1, targets[:, None])[:, 0]
        hooks = knocking(sites, [request.heads], means)
        ablated_rows = common.forward_logits(model, input_ids, attention_mask, decoder_input, hooks)[0]
        ablated_logits = ablated_rows.gather(-1, targets[:, None])[:, 0]
        ablated_top = ablated_rows.argmax(-1).tolist()
        ablated = common.greedy_ids(session, model, input_ids, attention_mask, new_tokens, hooks) \
            if request.heads else original
        sweep = _sweep(model, sites, request.sweep, means, input_ids, attention_mask, decoder_input, targets,
                       logits, original, new_tokens) if request.sweep else ()
    steps = tuple(KnockoutStep(position, token_id, tokens.one(token_id), float(logits[position]),
                               float(ablated_logits[position]), ablated_top[position],
                               tokens.one(ablated_top[position]))
                  for position, token_id in enumerate(original[1:]))
    return KnockoutRun(
        model=session.name, prompt=request.prompt, mode=request.mode, heads=request.heads,
        source_tokens=tokens(input_ids[0].tolist()), original_ids=original, original_tokens=tokens(original),
        original_text=tokens.text(original), ablated_ids=ablated, ablated_tokens=tokens(ablated),
        ablated_text=tokens.text(ablated), first_change=common.first_difference(original, ablated),
        steps=steps, sweep_kind=request.sweep, sweep=sweep, notes=(MEAN_NOTE,) if request.mode == "mean" else ())


def knocking(sites: Sites, rows: list[tuple[KnockedHead, ...]], means: dict | None) -> list[Hook]:
    """Hooks that knock out, in batch row n, the heads `rows[n]`: zero, or their mean slice from `means`."""
    plan: dict = {}
    for row, heads in enumerate(rows):
        for head in heads:
            attention = sites.attention[head.kind][head.layer]
            plan.setdefault(attention, []).append((row, head.head))

    def knock(attention, targets):
        size = attention.head_size

        def replace(value, _call):
            value = value.clone()
            for row, head in targets:
                span = slice(head * size, (head + 1) * size)
                value[row, ..., span] = 0 if means is None else means[attention][span].to(value.dtype)
            return value

        return replace

    return [Hook(attention.output_projection, INPUT, knock(attention, targets), "knockout")
            for attention, targets in plan.items()]


def _means(model, sites: Sites, kinds: set[str], input_ids, attention_mask, decoder_input) -> dict:
    """Each attention's output-projection input, averaged over the positions of the original teacher-forced run."""
    seen: dict = {}
    modules = [attention for kind in kinds for attention in sites.attention[kind]]
    for attention in modules:
        seen[attention] = []
    common.forward_logits(model, input_ids, attention_mask, decoder_input,
                          [Hook(a.output_projection, INPUT, keep(seen[a])) for a in modules])
    return {attention: values[0][0].float().mean(0) for attention, values in seen.items()}


def _sweep(model, sites: Sites, kind: str, means, input_ids, attention_mask, decoder_input, targets, logits,
           original: tuple[int, ...], new_tokens: int) -> tuple[SweepCell, ...]:
    """Every head of `kind` alone: the mean change of the original tokens' logits (teacher-forced, batched), and
    whether the free greedy output changes (model.generate over the batch)."""
    every = [KnockedHead(kind, layer, head) for layer, attention in enumerate(sites.attention[kind])
             for head in range(attention.heads)]
    changes: list[float] = []
    outputs: list[tuple[int, ...]] = []
    for rows in common.chunks(every):
        hooks = knocking(sites, [(head,) for head in rows], means)
        batch = decoder_input.expand(len(rows), -1)
        ablated = common.forward_logits(model, input_ids, attention_mask, batch, hooks)
        picked = ablated.gather(-1, targets[None, :, None].expand(len(rows), -1, 1))[..., 0]
        changes += (picked - logits[None]).mean(-1).tolist()
        outputs += _free_outputs(model, input_ids, attention_mask, len(rows), new_tokens, hooks)
    return tuple(SweepCell(head.layer, head.head, change, output != original,
                           common.first_difference(original, output))
                 for head, change, output in zip(every, changes, outputs))


def _free_outputs(model, input_ids, attention_mask, rows: int, new_tokens: int, hooks) -> list[tuple[int, ...]]:
    """Greedy outputs of `rows` copies of the prompt, each row with its own hooks: generate()'s sequences, each cut
    after its first end token as generate() returns a single row."""
    import torch

    from t5peek.probe.hooks import hooked

    eos = seq2seq.eos_ids(model)
    with torch.no_grad(), hooked(model, hooks):
        sequences = model.generate(input_ids=input_ids.expand(rows, -1), attention_mask=attention_mask.expand(rows, -1),
                                   do_sample=False, num_beams=1, max_new_tokens=new_tokens)
    found = []
    for row in sequences.tolist():
        end = next((index for index in range(1, len(row)) if row[index] in eos), len(row) - 1)
        found.append(tuple(row[:end + 1]))
    return found
