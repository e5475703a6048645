"""The records of `t5peek attend`: one attention head at one query position, every number as plain floats.

`AttendReport` holds the whole computation of the head, in the order the model runs it: the query vector, each
key (its vector, its value vector, the dot product, the scaling, the position bias, the mask, the score and the
softmax weight), the weighted sum of the values (the head's output), and what the head's slice of the output
projection makes of it. `HeadCheck` says how far the recomputation is from what the model's own module computed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class AttentionKind(str, enum.Enum):
    """Which attention of the model the head belongs to."""

    ENCODER_SELF = "encoder self-attention"
    DECODER_SELF = "decoder self-attention"
    CROSS = "cross-attention"

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__

    @property
    def stack(self) -> str:
        return "encoder" if self is AttentionKind.ENCODER_SELF else "decoder"


@dataclass(frozen=True)
class KeyRow:
    """One position the query attends to: its key and value vectors and how its score is made."""

    position: int  # the key's position: a source position (encoder, cross-attention) or a decoder position
    token: str  # the token at that position
    token_id: int
    key: tuple[float, ...]  # k = W_k x + b_k for this head (d_kv values)
    value: tuple[float, ...]  # v = W_v x + b_v for this head (d_kv values)
    dot: float  # q · k
    scaled: float  # dot x scaling (T5 does not scale: the same as dot)
    relative_position: int | None  # T5: key position - query position; None for cross-attention and BART
    bucket: int | None  # T5: the relative-position bucket whose learned bias is added; None without one
    bias: float  # T5: the learned bias of that bucket for this head; 0 otherwise
    mask: float  # what the attention mask adds: 0, or a very large negative number where the key is hidden
    masked: bool  # the mask hides this key
    score: float  # scaled + bias + mask: what goes into the softmax
    weight: float  # softmax of the scores: the share of this key's value in the head's output


@dataclass(frozen=True)
class HeadCheck:
    """The recomputation against the model's own module in the same run (eager attention)."""

    weights_max_abs_diff: float  # recomputed weights vs the attention weights the module returned
    head_output_max_abs_diff: float  # recomputed head output vs this head's slice of the output projection's input


@dataclass(frozen=True)
class AttendReport:
    """One attention head at one query position, recomputed from the module's own weights."""

    model: str
    model_type: str
    prompt: str
    kind: AttentionKind
    module: str  # the attention module's name in the model, as `t5peek arch` shows it
    layer: int
    layers: int  # layers in that stack
    head: int
    heads: int  # heads in that attention
    d_model: int
    d_kv: int  # values per head: the length of q, k, v and the head output
    scaling: float  # what q · k is multiplied by: 1 for T5, 1/sqrt(d_kv) for BART and the others
    position_kind: str  # how the model knows where tokens are: relative (T5 bias), learned or sinusoidal
    buckets: int | None  # T5: relative_attention_num_buckets
    max_distance: int | None  # T5: relative_attention_max_distance
    bidirectional: bool | None  # T5: whether buckets tell left from right (encoder) or only look back (decoder)
    source_ids: tuple[int, ...]
    source_tokens: tuple[str, ...]
    decoder_ids: tuple[int, ...]  # the decoder input up to the query (greedy), empty for the encoder
    decoder_tokens: tuple[str, ...]
    step: int | None  # decoder step of the query (0 reads the decoder start token); None for the encoder
    query_position: int  # the position the query is computed at (source position for the encoder)
    query_token: str
    query_id: int
    next_id: int | None  # decoder: the token greedy decoding picks at this step; None for the encoder
    next_token: str | None
    query: tuple[float, ...]  # q = W_q x + b_q for this head (d_kv values), x = what entered the module
    keys: tuple[KeyRow, ...]
    head_output: tuple[float, ...]  # the sum of weight x value: the head's output (d_kv values)
    output_columns: tuple[int, int]  # the columns [start, stop) of the output projection this head feeds
    projection_norm: float  # Frobenius norm of the output projection's slice W_o[:, start:stop]
    contribution: tuple[float, ...]  # W_o[:, start:stop] @ head_output: the head's part of the output (d_model)
    contribution_norm: float
    output_norm: float  # norm of the whole attention output at this position (every head, plus any bias)
    check: HeadCheck
    notes: tuple[str, ...]
