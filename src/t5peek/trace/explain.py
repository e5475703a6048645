"""Plain-language notes for learners: one per view of the decoder, one per kind of stage (`--explain`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from t5peek import anatomy
from t5peek.trace.plan import BLOCK

if TYPE_CHECKING:
    from t5peek.trace.records import TraceRecord

# Plain-language notes for learners, one per kind of stage (`--explain`).
EXPLANATIONS: dict[str, str] = {
    "embedding": "Embedding: each token id picks one learned row of d_model numbers; no context yet, the "
                 "same word gets the same vector in every sentence.",
    "position:relative": "Relative position bias (T5): no position vector is added to the tokens; a learned "
                         "number per head and distance bucket is added to the attention scores instead. "
                         "Block 0 computes it and the other blocks reuse it.",
    "position:learned": "Positional embedding: a learned vector per position (0, 1, 2, ...) is added to each "
                        "token's embedding so word order is visible; its size is the model's length limit.",
    "self-attention:encoder": "Self-attention (encoder): each token makes a query, key and value; its output "
                              "is a mix of all tokens' values, weighted by softmax(query·key) per head, so "
                              "every token sees the whole input.",
    "self-attention:decoder": "Masked self-attention (decoder): the same, but a causal mask lets position i see "
                              "only positions 0..i; in generation the earlier keys/values come from the cache.",
    "cross-attention": "Cross-attention: queries come from the decoder, keys and values from the encoder's "
                       "final output; this is where the output looks at the input.",
    "feed-forward": "Feed-forward: a two-layer MLP (d_model → d_ff → d_model) applied to each position on its "
                    "own; no information moves between tokens here.",
    "norm": "Layer norm: rescales each token's vector to a standard size (T5 uses RMSNorm, no mean and no "
            "bias); T5 normalises before each sublayer, BART after the residual add.",
    "residual": "Residual: a block adds each sublayer's output back to its input, x + sublayer(x), so it "
                "refines the vectors instead of replacing them; the shape never changes.",
    "lm_head": "LM head: maps each decoder position's vector to one score (logit) per vocabulary entry; "
               "softmax turns the scores into next-token probabilities.",
}

VIEW_NOTES = {
    "teacher-forcing": "Training view (teacher forcing): the decoder gets the whole target at once, shifted "
                       "right by one (start token + labels[:-1]); the causal mask keeps position i from "
                       "seeing label i and later; one pass scores every position.",
    "generation": "Inference view (greedy generation): the encoder runs once; the decoder runs once per new "
                  "token and is fed its own previous choice; earlier self-attention keys/values come from "
                  "the cache, cross-attention keys/values are computed once from the encoder output.",
}


def explanation_key(record: TraceRecord) -> str | None:
    """Which EXPLANATIONS entry describes this record, if any."""
    role = record.role
    if role == BLOCK:
        return "residual"
    if role == anatomy.POSITION:
        return "position:relative" if "relative_attention_bias" in record.module else "position:learned"
    if role == anatomy.SELF_ATTENTION:
        return "self-attention:" + ("decoder" if anatomy.stack_of(record.module) == "decoder" else "encoder")
    if role in (anatomy.EMBEDDING, anatomy.CROSS_ATTENTION, anatomy.FEED_FORWARD, anatomy.NORM, anatomy.LM_HEAD):
        return role
    return None
