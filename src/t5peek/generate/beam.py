"""Beam search: `GenerationMixin._beam_search` (transformers 5.24) for one prompt, helper by helper.

The batch dimension is kept (batch_size 1), so every tensor operation is generate()'s own. `beam_search` is
`_beam_search`, and each `_name` below is the upstream helper of the same name with the same job and arguments,
so a transformers upgrade is a function-by-function diff. What is t5peek's own: the readings and records of each
step (in `beam_steps`) and the indices two helpers also return for them. One upstream helper is called instead of
mirrored (`settings.top_k_continuations`): how it samples changed in 5.24, and the installed version decides.
"""

from __future__ import annotations

from t5peek.generate.beam_steps import Readings, beam_record, build_path, continuations, read_beams
from t5peek.generate.settings import top_k_continuations
from t5peek.generate.state import _Run, stop_reason


def beam_search(run: _Run, encoder_outputs, attention_mask, cache, device):
    """Mirrors `_beam_search`: returns the output ids, the stop reason and the output's sequence score."""
    import torch
    from torch import nn

    # 1. init beam search values
    config = run.config
    pad_token_id = config._pad_token_tensor
    eos_token_id = config._eos_token_tensor
    do_sample = bool(config.do_sample)
    early_stopping = config.early_stopping
    length_penalty = config.length_penalty
    max_length = config.max_length
    num_beams = config.num_beams
    batch_size, cur_len = 1, 1
    decoder_prompt_len = cur_len

    # generate() runs the encoder once, then repeats its outputs for every beam (_expand_inputs_for_generation)
    encoder_outputs["last_hidden_state"] = encoder_outputs.last_hidden_state.repeat_interleave(num_beams, dim=0)
    if attention_mask is not None:
        attention_mask = attention_mask.repeat_interleave(num_beams, dim=0)
    input_ids = config._decoder_start_token_tensor.reshape(1, 1).to(device).repeat_interleave(num_beams, dim=0)

    n_eos_tokens = eos_token_id.shape[0] if eos_token_id is not None else 0
    beams_to_keep = max(2, 1 + n_eos_tokens) * num_beams
    top_num_beam_mask = torch.cat((torch.ones((num_beams), dtype=torch.bool),
                                   torch.zeros((beams_to_keep - num_beams), dtype=torch.bool)), dim=0).to(device)

    # 3. init running tensors and static-shaped placeholders
    output_fill_value = pad_token_id or eos_token_id[0] if eos_token_id is not None else -1
    running_sequences = torch.full((batch_size, num_beams, max_length), fill_value=output_fill_value,
                                   dtype=torch.int64, device=device)
    running_sequences[:, :, :cur_len] = _unflatten_beam_dim(input_ids, batch_size, num_beams)
    sequences = running_sequences.detach().clone()
    running_beam_scores = torch.zeros((batch_size, num_beams), dtype=torch.float, device=device)
    running_beam_scores[:, 1:] = -1e9
    beam_scores = torch.full((batch_size, num_beams), fill_value=-1e9, dtype=torch.float, device=device)
    is_sent_finished = torch.zeros((batch_size, num_beams), dtype=torch.bool, device=device)
    is_early_stop_heuristic_unsatisfied = torch.ones((batch_size, 1), dtype=torch.bool, device=device)
    running_beam_indices = torch.full((batch_size, num_beams, max_length - cur_len), fill_value=-1,
                                      dtype=torch.int32, device=device)
    beam_indices = running_beam_indices.detach().clone()

    flat_running_sequences = input_ids
    decoder_input = input_ids
    per_step: list[Readings] = []  # every step's readings, to build the steps of the output's path at the end
    step = 0
    # 4. run the generation loop
    while True:
        # a. forward the newest tokens, obtain the logits
        outputs, cache = run.forward(encoder_outputs, attention_mask, decoder_input, cache)
        logits = outputs.logits[:, -1, :].to(copy=True, dtype=torch.float32, device=device)

        # b. log probs, processed, added to the running scores
        log_probs = nn.functional.log_softmax(logits, dim=-1)
        log_probs = run.processors(flat_running_sequences, log_probs)
        readings, probs = read_beams(run, step, outputs, logits, log_probs, flat_running_sequences,
                                      running_beam_scores, do_sample)
        del outputs
        processed = log_probs
        log_probs = _unflatten_beam_dim(log_probs, batch_size, num_beams)
        log_probs = log_probs + running_beam_scores[:, :, None]
        log_probs = torch.reshape(log_probs, (batch_size, -1))

        # c. top-K continuations (greedy or sampled)
        topk_log_probs, topk_running_sequences, topk_running_beam_indices = top_k_continuations(
            run.model, accumulated_log_probs=log_probs, running_sequences=running_sequences,
            running_beam_indices=running_beam_indices, cur_len=cur_len, decoder_prompt_len=decoder_prompt_len,
            do_sample=do_sample, beams_to_keep=beams_to_keep, num_beams=num_beams, batch_size=batch_size)
        readings.continuations = continuations(logits, processed, probs, topk_log_probs, topk_running_sequences,
                                                topk_running_beam_indices, cur_len, decoder_prompt_len)
        del probs

        # d. which continuations hit a stopping criterion
        next_token_hits_stopping_criteria = run.criteria(
            _flatten_beam_dim(topk_running_sequences[:, :, : cur_len + 1]), None)
        next_token_hits_stopping_criteria = _unflatten_beam_dim(next_token_hits_stopping_criteria, batch_size,
                                                                beams_to_keep)

        # e. the best `num_beams` unfinished continuations run on
        running_sequences, running_beam_scores, running_beam_indices, next_topk_indices = \
            _get_running_beams_for_next_iteration(
                topk_log_probs=topk_log_probs, topk_running_sequences=topk_running_sequences,
                topk_running_beam_indices=topk_running_beam_indices,
                next_token_hits_stopping_criteria=next_token_hits_stopping_criteria, num_beams=num_beams)

        # f. finished continuations among the top `num_beams` join the finished hypotheses if good enough
        sequences, beam_scores, beam_indices, is_sent_finished, finished_log_probs, topk_merged_indices = \
            _update_finished_beams(
                sequences=sequences, topk_running_sequences=topk_running_sequences, beam_scores=beam_scores,
                topk_log_probs=topk_log_probs, beam_indices=beam_indices,
                topk_running_beam_indices=topk_running_beam_indices,
                is_early_stop_heuristic_unsatisfied=is_early_stop_heuristic_unsatisfied,
                is_sent_finished=is_sent_finished, next_token_hits_stopping_criteria=next_token_hits_stopping_criteria,
                top_num_beam_mask=top_num_beam_mask, num_beams=num_beams, cur_len=cur_len,
                decoder_prompt_len=decoder_prompt_len, length_penalty=length_penalty, early_stopping=early_stopping)

        # g. reorder the cache for the beams that run on, then the stopping condition of the search as a whole
        beam_idx = _flatten_beam_dim(running_beam_indices[..., cur_len - decoder_prompt_len])
        cache.reorder_cache(beam_idx)

        cur_len = cur_len + 1
        is_early_stop_heuristic_unsatisfied = _check_early_stop_heuristic(
            is_early_stop_heuristic_unsatisfied=is_early_stop_heuristic_unsatisfied,
            running_beam_scores=running_beam_scores, beam_scores=beam_scores, is_sent_finished=is_sent_finished,
            cur_len=cur_len, max_length=max_length, decoder_prompt_len=decoder_prompt_len,
            early_stopping=early_stopping, length_penalty=length_penalty)
        searching = bool(_beam_search_has_unfinished_sequences(is_early_stop_heuristic_unsatisfied, is_sent_finished,
                                                               next_token_hits_stopping_criteria, early_stopping))
        # the step's record once it is known whether any beam runs on (upstream's loop condition, just above)
        record = beam_record(run, step, readings, next_topk_indices, running_beam_scores, topk_running_sequences,
                             finished_log_probs, topk_merged_indices, cur_len - 1, num_beams, searching)
        run.beam_steps.append(record)
        per_step.append(readings)
        if run.on_step is not None:
            run.on_step(record)
        step += 1
        if not searching:
            break
        flat_running_sequences = _flatten_beam_dim(running_sequences[:, :, :cur_len])
        decoder_input = flat_running_sequences[:, -1:]

    # 5. prepare outputs: the best finished hypothesis, cropped like generate() crops it
    sequences = _flatten_beam_dim(sequences[:, :1, :])
    beam_scores = _flatten_beam_dim(beam_scores[:, :1])
    beam_indices = _flatten_beam_dim(beam_indices[:, :1, :])
    max_generated_length = int(((beam_indices + 1).bool()).sum(dim=1).max())
    output_ids = sequences[0, : decoder_prompt_len + max_generated_length].tolist()
    build_path(run, output_ids, beam_indices[0, :max_generated_length].tolist(), per_step)
    return output_ids, stop_reason(config, output_ids), float(beam_scores[0])


# ----------------------------------------------------------------------------- the upstream helpers


def _flatten_beam_dim(tensor):
    """Mirrors `_flatten_beam_dim`: [batch_size, num_beams, ...] -> [batch_size * num_beams, ...]."""
    shape = list(tensor.shape)
    return tensor.reshape([shape[0] * shape[1]] + shape[2:])


def _unflatten_beam_dim(tensor, batch_size: int, num_beams: int):
    """Mirrors `_unflatten_beam_dim`: [batch_size * num_beams, ...] -> [batch_size, num_beams, ...]."""
    shape = list(tensor.shape)
    return tensor.reshape([batch_size, num_beams] + shape[1:])


def _gather_beams(tensor, beam_indices):
    """Mirrors `_gather_beams`: the beam slices indexed by `beam_indices` (batch, beams_to_select)."""
    import torch

    while len(beam_indices.shape) < len(tensor.shape):
        beam_indices = beam_indices.unsqueeze(-1)
    return torch.take_along_dim(input=tensor, indices=beam_indices, dim=1)


def _check_early_stop_heuristic(is_early_stop_heuristic_unsatisfied, running_beam_scores, beam_scores,
                                is_sent_finished, cur_len: int, max_length: int, decoder_prompt_len: int,
                                early_stopping: bool | str, length_penalty: float):
    """Mirrors `_check_early_stop_heuristic`: can the best running beam still beat the worst finished one?"""
    import torch

    if early_stopping == "never" and length_penalty > 0.0:
        best_hypothetical_length = max_length - decoder_prompt_len
    else:
        best_hypothetical_length = cur_len - decoder_prompt_len
    best_possible_running_score = running_beam_scores[:, :1] / (best_hypothetical_length**length_penalty)
    worst_finished_score = torch.where(is_sent_finished, torch.min(beam_scores, dim=1, keepdim=True)[0], -1.0e9)
    return is_early_stop_heuristic_unsatisfied & torch.any(
        best_possible_running_score > worst_finished_score, dim=-1, keepdim=True)


def _beam_search_has_unfinished_sequences(is_early_stop_heuristic_unsatisfied, is_sent_finished,
                                          next_token_hits_stopping_criteria, early_stopping: bool | str):
    """Mirrors `_beam_search_has_unfinished_sequences`: the stopping condition of the search as a whole."""
    import torch

    improvement_possible = torch.any(is_early_stop_heuristic_unsatisfied)
    exists_open_beam = ~(torch.all(is_sent_finished) & (early_stopping is True))
    valid_continuations = ~torch.all(next_token_hits_stopping_criteria)
    return improvement_possible & exists_open_beam & valid_continuations


def _get_running_beams_for_next_iteration(topk_log_probs, topk_running_sequences, topk_running_beam_indices,
                                          next_token_hits_stopping_criteria, num_beams: int):
    """Mirrors `_get_running_beams_for_next_iteration`: the best unfinished beams run on (t5peek: and which)."""
    import torch

    topk_running_log_probs = topk_log_probs + next_token_hits_stopping_criteria.to(torch.float32) * -1.0e9
    next_topk_indices = torch.topk(topk_running_log_probs, k=num_beams)[1]
    running_sequences = _gather_beams(topk_running_sequences, next_topk_indices)
    running_beam_scores = _gather_beams(topk_running_log_probs, next_topk_indices)
    running_beam_indices = _gather_beams(topk_running_beam_indices, next_topk_indices)
    return running_sequences, running_beam_scores, running_beam_indices, next_topk_indices


def _update_finished_beams(sequences, topk_running_sequences, beam_scores, topk_log_probs, beam_indices,
                           topk_running_beam_indices, is_early_stop_heuristic_unsatisfied, is_sent_finished,
                           next_token_hits_stopping_criteria, top_num_beam_mask, num_beams: int, cur_len: int,
                           decoder_prompt_len: int, length_penalty: float, early_stopping: bool | str):
    """Mirrors `_update_finished_beams`: the best finished hypotheses so far (t5peek: also the new candidates'
    penalised scores and the merged indices, for the record)."""
    import torch

    did_top_num_beams_just_finished = next_token_hits_stopping_criteria & top_num_beam_mask[None, :]
    topk_log_probs = topk_log_probs / ((cur_len + 1 - decoder_prompt_len) ** length_penalty)
    beams_in_batch_are_full = torch.all(is_sent_finished, axis=-1, keepdims=True) & (early_stopping is True)
    topk_log_probs += beams_in_batch_are_full.to(torch.float32) * -1.0e9
    topk_log_probs += (~is_early_stop_heuristic_unsatisfied).to(torch.float32) * -1.0e9
    topk_log_probs += (~did_top_num_beams_just_finished) * -1.0e9
    merged_sequences = torch.cat((sequences, topk_running_sequences), dim=1)
    merged_scores = torch.cat((beam_scores, topk_log_probs), dim=1)
    merged_beam_indices = torch.cat((beam_indices, topk_running_beam_indices), dim=1)
    merged_is_sent_finished = torch.cat((is_sent_finished, did_top_num_beams_just_finished), dim=1)
    topk_merged_indices = torch.topk(merged_scores, k=num_beams)[1]
    sequences = _gather_beams(merged_sequences, topk_merged_indices)
    beam_scores = _gather_beams(merged_scores, topk_merged_indices)
    beam_indices = _gather_beams(merged_beam_indices, topk_merged_indices)
    is_sent_finished = _gather_beams(merged_is_sent_finished, topk_merged_indices)
    return sequences, beam_scores, beam_indices, is_sent_finished, topk_log_probs, topk_merged_indices
