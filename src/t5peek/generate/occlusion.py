"""Attention beside occlusion: which source token, replaced by the pad token, lowers each generated token's
probability most, next to the source token the decoder attended to most.

The output of a run is re-scored teacher-forced (decoder input: the start token and the generated tokens, so
position t predicts the token of step t): once on the full source, and once per source token with that token
replaced by the pad token, the copies batched into forwards of at most OCCLUSION_FORWARD_BYTES by t5peek.budget's
estimate (which the memory check before loading counts too). Probabilities are the model's own, softmax of the raw
logits: the logits processors of the run (forced EOS, repetition penalties, ...) are not applied, since they would
hide what the source changes. Special tokens (</s>, <s>) are not occluded: they carry no word of the input.
"""

from __future__ import annotations

import math
from typing import Callable

from t5peek import finite
from t5peek.errors import NotEnoughMemory
from t5peek.generate.records import DecodeRun, Occlusion, OcclusionRow
from t5peek.probe.hooks import evaluating


def occlude(model, input_ids, attention_mask, run: DecodeRun, pad_token_id: int, pad_token: str,
            special_ids, progress: Callable[[int, int], None] | None = None) -> Occlusion:
    """The drop matrix of `run`'s output and, per step, the occlusion argmax beside the attention argmax.
    `progress(done, total)` is called before the first forward and after each one, with the copies re-scored."""
    occluded = tuple(token_id not in special_ids for token_id in run.source_ids)
    positions = [i for i, flag in enumerate(occluded) if flag]
    probabilities = output_probabilities(model, input_ids, attention_mask, run.output_ids, pad_token_id, positions,
                                         progress=progress)
    full, per_token = probabilities[0], probabilities[1:]
    drops = []
    for step in range(len(run.steps)):
        row: list[float | None] = [None] * len(run.source_ids)
        for n, position in enumerate(positions):
            row[position] = full[step] - per_token[n][step]
        drops.append(tuple(row))
    rows = tuple(_row(run, step, full[step], drops[step]) for step in range(len(run.steps)))
    agree = sum(row.agree for row in rows)
    compared = sum(math.isfinite(row.probability) for row in rows)
    unfinished = finite.first(finite.value_state(row.probability) for row in rows)
    notes = () if unfinished is None else (finite.from_step(unfinished[0], "probabilities", unfinished[1],
                                                            "attention and occlusion are not compared there"),)
    return Occlusion(pad_token_id, pad_token, run.layer, occluded, tuple(drops), rows, agree, compared, notes)


def output_probabilities(model, input_ids, attention_mask, output_ids, pad_token_id: int, positions: list[int],
                         rows: int | None = None, progress: Callable[[int, int], None] | None = None
                         ) -> list[list[float]]:
    """p(output token t | source) for every step t: first with the full source, then with each of `positions`
    replaced by `pad_token_id` in turn. One teacher-forced forward per `rows` copies; by default as many as
    OCCLUSION_FORWARD_BYTES holds by t5peek.budget's estimate (the pre-flight check counts the same)."""
    import torch

    source = input_ids[0]
    decoder_input = torch.tensor([list(output_ids[:-1])], device=source.device)
    chosen = torch.tensor(list(output_ids[1:]), device=source.device)
    copies = len(positions) + 1
    if rows is None:
        rows = forward_rows(model, copies, source.shape[0], decoder_input.shape[1])
    found: list[list[float]] = []
    if progress is not None:
        progress(0, copies)
    with torch.no_grad(), evaluating(model):
        for start in range(0, copies, rows):
            count = min(rows, copies - start)
            batch = source.repeat(count, 1)  # copy 0 is the full source, copy n has positions[n - 1] occluded
            for row, copy in enumerate(range(start, start + count)):
                if copy:
                    batch[row, positions[copy - 1]] = pad_token_id
            mask = None if attention_mask is None else attention_mask.expand(count, -1)
            found.extend(_picked(model, batch, mask, decoder_input.expand(count, -1), chosen))
            if progress is not None:
                progress(len(found), copies)
    return found


def forward_rows(model, copies: int, source: int, steps: int) -> int:
    """How many copies one re-scoring forward takes: as many as OCCLUSION_FORWARD_BYTES holds, at least one."""
    from t5peek.budget.inference import rescoring_batch
    from t5peek.budget.shapes import read_shape
    from t5peek.params import tensors_from_model

    shape = read_shape(model.config.to_dict(), tensors_from_model(model))
    element = next(model.parameters()).element_size()
    return rescoring_batch(shape, copies, source, steps, element)[0]


def _picked(model, batch, mask, decoder_input, chosen) -> list[list[float]]:
    """p(chosen token t) at every step t for each row of `batch`; running out of memory is NotEnoughMemory."""
    import torch

    try:
        logits = model(input_ids=batch, attention_mask=mask, decoder_input_ids=decoder_input, use_cache=False,
                       return_dict=True).logits.float()
        log_probs = torch.log_softmax(logits, dim=-1)
    except RuntimeError as exc:  # torch.OutOfMemoryError, or the CPU allocator's "not enough memory"
        out_of_memory = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # the former from torch 2.5
        if not (isinstance(exc, out_of_memory) or "not enough memory" in str(exc)):
            raise
        raise NotEnoughMemory(f"--occlusion ran out of memory re-scoring {batch.shape[0]} copies of the "
                              f"{batch.shape[1]}-token source at once.",
                              hint="Try a shorter prompt, fewer new tokens, or --dtype bfloat16.") from None
    picked = log_probs.gather(2, chosen.view(1, -1, 1).expand(batch.shape[0], -1, 1)).squeeze(2)
    return picked.exp().tolist()


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
