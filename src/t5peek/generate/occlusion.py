"""Attention beside occlusion: which source token, replaced by the pad token, lowers each generated token's
probability most, next to the source token the decoder attended to most.

The output of a run is re-scored teacher-forced (decoder input: the start token and the generated tokens, so
position t predicts the token of step t): once on the full source, and once per source token with that token
replaced by the pad token, the copies batched into as few forwards as memory allows. Probabilities are the
model's own, softmax of the raw logits: the logits processors of the run (forced EOS, repetition penalties, ...)
are not applied, since they would hide what the source changes. Special tokens (</s>, <s>) are not occluded: they
carry no word of the input.
"""

from __future__ import annotations

import math

from t5peek.generate.records import DecodeRun, Occlusion, OcclusionRow

_CHUNK_BYTES = 1 << 28  # at most ~256 MiB of logits per forward (copies x steps x vocabulary x float32, twice)


def occlude(model, input_ids, attention_mask, run: DecodeRun, pad_token_id: int, pad_token: str,
            special_ids) -> Occlusion:
    """The drop matrix of `run`'s output and, per step, the occlusion argmax beside the attention argmax."""
    occluded = tuple(token_id not in special_ids for token_id in run.source_ids)
    positions = [i for i, flag in enumerate(occluded) if flag]
    probabilities = output_probabilities(model, input_ids, attention_mask, run.output_ids, pad_token_id, positions)
    full, per_token = probabilities[0], probabilities[1:]
    drops = []
    for step in range(len(run.steps)):
        row: list[float | None] = [None] * len(run.source_ids)
        for n, position in enumerate(positions):
            row[position] = full[step] - per_token[n][step]
        drops.append(tuple(row))
    rows = tuple(_row(run, step, full[step], drops[step]) for step in range(len(run.steps)))
    agree = sum(row.agree for row in rows)
    return Occlusion(pad_token_id, pad_token, run.layer, occluded, tuple(drops), rows, agree, len(rows))


def output_probabilities(model, input_ids, attention_mask, output_ids, pad_token_id: int, positions: list[int]
                         ) -> list[list[float]]:
    """p(output token t | source) for every step t: first with the full source, then with each of `positions`
    replaced by `pad_token_id` in turn. One teacher-forced forward per batch of copies."""
    import torch

    source = input_ids[0]
    copies = [source.clone()]
    for position in positions:
        copy = source.clone()
        copy[position] = pad_token_id
        copies.append(copy)
    decoder_input = torch.tensor([list(output_ids[:-1])], device=source.device)
    chosen = torch.tensor(list(output_ids[1:]), device=source.device)
    steps = decoder_input.shape[1]
    vocab = model.get_output_embeddings().weight.shape[0]
    per_forward = max(1, _CHUNK_BYTES // (2 * 4 * steps * vocab))
    found: list[list[float]] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(copies), per_forward):
                batch = torch.stack(copies[start:start + per_forward])
                mask = None if attention_mask is None else attention_mask.expand(batch.shape[0], -1)
                logits = model(input_ids=batch, attention_mask=mask,
                               decoder_input_ids=decoder_input.expand(batch.shape[0], -1), use_cache=False,
                               return_dict=True).logits.float()
                log_probs = torch.log_softmax(logits, dim=-1)
                picked = log_probs.gather(2, chosen.view(1, -1, 1).expand(batch.shape[0], -1, 1)).squeeze(2)
                found.extend(picked.exp().tolist())
                del logits, log_probs
    finally:
        if was_training:
            model.train()
    return found


def _row(run: DecodeRun, step: int, probability: float, drops: tuple) -> OcclusionRow:
    record = run.steps[step]
    occlusion_index = _argmax(drops)
    attention_index = _argmax(record.cross_attention)
    return OcclusionRow(
        step=step, token_id=record.token_id, token=record.token, probability=probability,
        occlusion_index=occlusion_index,
        occlusion_token=None if occlusion_index is None else run.source_tokens[occlusion_index],
        drop=None if occlusion_index is None else drops[occlusion_index],
        attention_index=attention_index,
        attention_token=None if attention_index is None else run.source_tokens[attention_index],
        attention_weight=None if attention_index is None else record.cross_attention[attention_index],
        agree=occlusion_index is not None and occlusion_index == attention_index)


def _argmax(values) -> int | None:
    """The index of the largest finite value (None when there is none)."""
    best = None
    for index, value in enumerate(values):
        if value is not None and math.isfinite(value) and (best is None or value > values[best]):
            best = index
    return best
