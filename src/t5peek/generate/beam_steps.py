"""The records of a beam search: a `BeamStep` for every step, as it is computed, and at the end the `Step`s of
the returned sequence's path (known only once the search is over, so every step's readings are kept)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t5peek.generate.records import BeamChoice, BeamHypothesis, BeamRow, BeamStep, Candidate, LayerFocus, Step
from t5peek.generate.state import _Attention, _Run


@dataclass
class Readings:
    """What one step showed of its running beams, kept until the output's path is known."""

    top: tuple  # (ids, logits, scores, probs): the top-k of every beam, as lists
    attention: _Attention
    stacked: Any  # (layers, beams, heads, source) cross-attention, only when the heads are kept
    prefixes: list  # every beam's decoder input so far
    scores_before: list  # every beam's cumulative score before this step
    continuations: list | None = None  # per continuation: (parent, token, logit, score, prob, cumulative)
    self_stacked: Any = None  # (layers, beams, heads, keys) decoder self-attention, only when the heads are kept
    self_shown: list | None = None  # [beam][key]: the shown layer's decoder self-attention, mean of heads (--self)


def read_beams(run: _Run, step: int, outputs, logits, processed, flat_running_sequences, running_beam_scores,
               do_sample: bool) -> tuple[Readings, Any]:
    """The step's top-k and cross-attention for every beam, and softmax(processed) (the candidates' probs)."""
    ids, top_logits, top_scores, top_probs, probs = run.candidates(logits, processed)
    stacked, attention = run.cross_attention(outputs)
    self_stacked, self_shown = run.decoder_self_attention(outputs)
    readings = Readings((ids, top_logits, top_scores, top_probs), attention, stacked if run.keep_heads else None,
                        flat_running_sequences.tolist(), running_beam_scores[0].tolist(), None, self_stacked,
                        self_shown)
    for row, score in enumerate(readings.scores_before):
        if score > -1e8:  # the placeholder beams of the first step are not checked
            run.check_finite(step, top_scores[row][0], do_sample)
    return readings, probs


def continuations(logits, processed, probs, topk_log_probs, topk_running_sequences, topk_running_beam_indices,
                  cur_len: int, decoder_prompt_len: int) -> list[tuple]:
    """This step's numbers for every top-K continuation: (parent, token, logit, score, prob, cumulative)."""
    import torch

    parents = topk_running_beam_indices[0, :, cur_len - decoder_prompt_len].long()  # batch 0: no batch offset
    token_ids = topk_running_sequences[0, :, cur_len]
    flat_index = (parents, token_ids)
    columns = (parents, token_ids, logits[flat_index], processed[flat_index], probs[flat_index], topk_log_probs[0])
    return list(zip(*torch.stack([t.to(torch.float64) for t in columns]).tolist()))


def beam_record(run: _Run, step: int, readings: Readings, next_topk_indices, running_beam_scores,
                topk_running_sequences, finished_log_probs, topk_merged_indices, cur_len: int, num_beams: int,
                searching: bool) -> BeamStep:
    """The `BeamStep` of this step: the running beams, the continuations kept (best first; none when the search
    ends with this step), the hypotheses that finished."""
    ids, top_logits, top_scores, top_probs = readings.top
    attention, continuations = readings.attention, readings.continuations
    beams = []
    for row, prefix in enumerate(readings.prefixes):
        if readings.scores_before[row] <= -1e8:  # the placeholder beams of the first step
            continue
        best = attention.best_index[run.layer][row]
        focus = LayerFocus(run.layer, best, run.source_tokens[best], attention.best_weight[run.layer][row])
        beams.append(BeamRow(row, tuple(prefix), run.vocab(prefix), readings.scores_before[row],
                             run.row_candidates(ids, top_logits, top_scores, top_probs, row), focus))
    next_beams = []
    running = running_beam_scores[0].tolist()
    for new, k in enumerate(next_topk_indices[0].tolist() if searching else []):
        if running[new] <= -1e8:  # a finished continuation (-1e9) filling a slot: it never runs on
            continue
        parent, token_id, _, score, _, cumulative = continuations[k]
        next_beams.append(BeamChoice(new, int(parent), int(token_id), run.vocab.one(int(token_id)), score,
                                     cumulative))
    next_beams.sort(key=lambda choice: -choice.score)
    finished = []
    finished_list = finished_log_probs[0].tolist()
    for index in topk_merged_indices[0].tolist():
        k = index - num_beams
        # a new entry among the best finished hypotheses (entries that may not finish carry -1e9 penalties)
        if k >= 0 and finished_list[k] > -1e8:
            seq = topk_running_sequences[0, k, : cur_len + 1].tolist()
            finished.append(BeamHypothesis(int(continuations[k][0]), tuple(seq), run.vocab.text(seq),
                                           finished_list[k]))
    return BeamStep(step, tuple(beams), tuple(next_beams), tuple(finished))


def build_path(run: _Run, output_ids: list[int], path_rows: list[int], per_step: list[Readings]) -> None:
    """The steps of the returned sequence: at step t it extended beam path_rows[t]."""
    rule = run.strategy.rule
    for step, row in enumerate(path_rows):
        readings = per_step[step]
        top = run.row_candidates(*readings.top, row)
        token_id = output_ids[step + 1]
        rank = next((r for r, c in enumerate(top, 1) if c.token_id == token_id), None)
        if rank is not None:
            chosen = top[rank - 1]
        else:  # beam sampling may pick a token outside the shown top-k: it is among this step's continuations
            _, _, logit, score, prob, _ = next(c for c in readings.continuations
                                               if int(c[0]) == row and int(c[1]) == token_id)
            chosen = Candidate(token_id, run.vocab.one(token_id), logit, score, prob)
        prefix = output_ids[: step + 1]
        run.steps.append(Step(step=step, input_ids=tuple(prefix), input_tokens=run.vocab(prefix), token_id=token_id,
                              token=chosen.token, rule=rule, chosen=chosen, chosen_rank=rank, top_k=top,
                              cross_attention=tuple(readings.attention.shown[row]),
                              layers=run.focus(readings.attention, row), beam=row,
                              self_attention=None if readings.self_shown is None else tuple(readings.self_shown[row])))
        if readings.stacked is not None:
            run.heads.append(readings.stacked[:, row].cpu())
            run.self_heads.append(readings.self_stacked[:, row].cpu())
