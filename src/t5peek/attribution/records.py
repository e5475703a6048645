"""The record of `attribute`: a frozen dataclass of plain values (ids, token strings, floats)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AttributionRun:
    """Integrated gradients of one decoder position's score, over the source tokens and over the decoder's earlier
    tokens, with the cross-attention and the occlusion drops of the same position beside them."""

    model: str
    prompt: str
    source_ids: tuple[int, ...]
    source_tokens: tuple[str, ...]
    output_ids: tuple[int, ...]  # the greedy output, as generate() returns it (start token included)
    output_tokens: tuple[str, ...]
    position: int  # the decoder position explained: reads output_ids[:position + 1], predicts output_ids[position + 1]
    token_id: int
    token: str
    contrast_id: int | None  # with --contrast the score is logit(token) - logit(contrast)
    contrast_token: str | None
    pad_token_id: int  # the baseline puts this token's embedding at every position
    pad_token: str
    method: str  # how the path integral is approximated
    steps: int  # points on the path (one gradient each)
    score: float  # the score of the run itself
    baseline_score: float  # the score with every source token's embedding the pad token's
    source_attributions: tuple[float, ...]  # one per source token; they sum to score - baseline_score
    completeness_error: float  # sum(source_attributions) - (score - baseline_score)
    prefix_baseline_score: float  # the score with the decoder's tokens 0..position all the pad token's embedding
    prefix_attributions: tuple[float, ...]  # one per decoder token 0..position (the source as it is)
    prefix_completeness_error: float  # sum(prefix_attributions) - (score - prefix_baseline_score)
    cross_attention: tuple[tuple[float, ...], ...]  # per decoder layer: the weights at this position, mean of heads
    occluded_scores: tuple[float, ...]  # the score with source token i alone replaced by the pad token
    occlusion_drops: tuple[float, ...]  # score - occluded_scores[i]
    notes: tuple[str, ...] = ()
