"""The two readings of the stream: the logit lens (every depth through the model's own head) and direct logit
attribution (how much of the chosen token's logit each depth's increment wrote, through the final norm frozen).

Direct logit attribution, exact by construction: the final stream is the embedding plus one increment per
sublayer (stream after it minus stream before it). With the final norm's scale frozen at its value for the final
stream (T5: 1/rms; LayerNorm: 1/std, the mean removal kept, which is linear), norm-then-head is affine in the
stream, so the chosen logit = Σ (the head's linear map applied to each part) + the head's bias terms.
"""

from __future__ import annotations

from dataclasses import dataclass

from t5peek import finite
from t5peek.lens.stream import Head

_ROWS_PER_CHUNK = 512  # logits of this many (depth, position) rows at once: 512 × a 256k vocabulary is 0.5 GiB


@dataclass(frozen=True)
class Reading:
    """The readings of one pass, as nested Python lists: [position][depth] unless said otherwise."""

    top_ids: list
    top_logits: list
    top_probabilities: list
    ranks: list  # 1-based rank of the chosen token
    logits: list  # the chosen token's logit
    probabilities: list
    contributions: list  # direct logit attribution of each depth to the chosen token's final logit
    constants: list  # [position]: the bias terms of the head in the chosen logit
    final_errors: list  # [position]: max |lens at the last depth − the model's logits|; None: those are not finite
    first_nonfinite_depth: list  # [position]: (depth, state) of the first stream that is not finite, or None
    watch_ranks: list  # [position][depth][watched token]: 1-based rank
    watch_probabilities: list  # [position][depth][watched token]


def head_logits(head: Head, streams):
    """Logits of every row of `streams` (rows, d_model), computed the way the model computes its own."""
    import torch

    x = streams
    if head.norm is not None:
        x = head.norm(x.to(head.norm.weight.device, _norm_dtype(head)))
    x = x.to(head.weight.device, head.weight.dtype)
    if head.scale != 1.0:
        x = x * head.scale
    logits = torch.nn.functional.linear(x, head.weight)
    if head.bias is not None:
        logits = logits + head.bias.to(logits.device)
    return logits.float()


def _norm_dtype(head: Head):
    weight = getattr(head.norm, "weight", None)
    return weight.dtype if weight is not None else head.weight.dtype


def directions(head: Head, final, chosen):
    """(directions (positions, d_model), constants (positions,)) in float32: for any stream x at position p, what x
    adds to the chosen token's logit is x · directions[p], the final norm's scale frozen at its value for `final`
    (positions, d_model); the LayerNorm's mean removal, linear, is folded in (x · (w − mean w) = (x − mean x) · w)."""
    import torch

    weight = head.weight[chosen.to(head.weight.device)].float().to(final.device) * head.scale  # (positions, d)
    constants = torch.zeros(final.shape[0], device=final.device)
    if head.norm is not None:
        gain = getattr(head.norm, "weight", None)
        gain = torch.ones_like(final[0]) if gain is None else gain.float().to(final.device)
        if head.rms:
            inverse = torch.rsqrt(final.pow(2).mean(-1, keepdim=True) + head.norm.variance_epsilon)
        else:
            inverse = torch.rsqrt(final.var(-1, unbiased=False, keepdim=True) + head.norm.eps)
            norm_bias = getattr(head.norm, "bias", None)
            if norm_bias is not None:
                constants = constants + weight @ norm_bias.float().to(final.device)
        weight = weight * gain * inverse
        if not head.rms:
            weight = weight - weight.mean(-1, keepdim=True)
    if head.bias is not None:
        constants = constants + head.bias.float().to(final.device)[chosen.to(final.device)]
    return weight, constants


def attribute(head: Head, streams, chosen):
    """(contributions (depths, positions), constants (positions,)) of the chosen tokens, in float32.

    `streams` (depths, positions, d_model) in float32, the last depth the final stream; `chosen` (positions,)."""
    import torch

    parts = torch.cat([streams[:1], streams[1:] - streams[:-1]])
    weight, constants = directions(head, streams[-1], chosen)
    return torch.einsum("dpk,pk->dp", parts, weight), constants


def read(head: Head, streams, chosen, top_k: int, model_logits=None, watch: tuple[int, ...] = ()) -> Reading:
    """Both readings of a pass. `streams` (depths, positions, d_model), `chosen` (positions,) token ids,
    `model_logits` (positions, vocab): the model's own, to measure how far the lens' last depth is from them;
    `watch`: token ids whose rank and probability are read at every depth too."""
    import torch

    with torch.no_grad():
        return _read(head, streams, chosen, top_k, model_logits, watch)


def _read(head: Head, streams, chosen, top_k: int, model_logits, watch: tuple[int, ...]) -> Reading:
    import torch

    depths, positions, width = streams.shape
    rows = streams.transpose(0, 1).reshape(positions * depths, width)  # position-major
    wanted = chosen.to(streams.device).repeat_interleave(depths)
    packed, errors = [], []
    chunk = depths * max(1, _ROWS_PER_CHUNK // depths)  # whole positions, so each chunk holds its last depths
    for start in range(0, rows.shape[0], chunk):
        logits = head_logits(head, rows[start:start + chunk])
        ids = wanted[start:start + chunk].to(logits.device)
        own = logits.gather(1, ids[:, None])
        log_probabilities = torch.log_softmax(logits, dim=-1)  # far faster on the CPU than torch.logsumexp
        top_logits, top_ids = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1)
        rank = torch.gt(logits, own).sum(-1, keepdim=True, dtype=torch.int32) + 1  # int32: 3x faster than int64
        watched = [torch.gt(logits, logits[:, w:w + 1]).sum(-1, keepdim=True, dtype=torch.int32).float() + 1
                  for w in watch] + [log_probabilities[:, list(watch)].exp()]
        packed.append(torch.cat([top_ids.float(), top_logits, log_probabilities.gather(1, top_ids).exp(),
                                 rank.float(), own, log_probabilities.gather(1, ids[:, None]).exp(), *watched], dim=-1))
        if model_logits is not None:
            last = torch.arange(depths - 1, logits.shape[0], depths, device=logits.device)
            first_position = start // depths
            reference = model_logits[first_position:first_position + len(last)].to(logits.device).float()
            gaps = (logits[last] - reference).abs().amax(-1)
            gaps, kept = torch.stack([gaps, torch.isfinite(reference).all(-1).float()]).tolist()
            errors.extend(gap if keep else None for gap, keep in zip(gaps, kept))
    contributions, constants = attribute(head, streams, chosen)
    table = torch.cat(packed).reshape(positions, depths, -1).tolist()
    stream_states = finite.row_states(streams.transpose(0, 1))  # position-major, as `rows`
    w = len(watch)
    k = (len(table[0][0]) - 3 - 2 * w) // 3
    at = 3 * k + 3  # the watched tokens' ranks, then their probabilities
    return Reading(
        top_ids=[[[int(i) for i in row[:k]] for row in position] for position in table],
        top_logits=[[row[k:2 * k] for row in position] for position in table],
        top_probabilities=[[row[2 * k:3 * k] for row in position] for position in table],
        ranks=[[int(row[3 * k]) for row in position] for position in table],
        logits=[[row[3 * k + 1] for row in position] for position in table],
        probabilities=[[row[3 * k + 2] for row in position] for position in table],
        contributions=contributions.transpose(0, 1).tolist(), constants=constants.tolist(),
        final_errors=errors,
        first_nonfinite_depth=[finite.first(stream_states[p * depths:(p + 1) * depths]) for p in range(positions)],
        watch_ranks=[[[int(r) for r in row[at:at + w]] for row in position] for position in table],
        watch_probabilities=[[row[at + w:at + 2 * w] for row in position] for position in table])
