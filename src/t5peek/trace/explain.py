"""Plain-language notes for learners: one per view of the decoder, one per kind of stage (`--explain`)."""

from __future__ import annotations

from dataclasses import dataclass

from t5peek import anatomy
from t5peek.trace.plan import BLOCK

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
    "feed-forward": "Feed-forward: a small network applied to each position on its own (up to d_ff, then back to "
                    "d_model); no information moves between tokens here.",
    "norm": "Norm: rescales each token's vector to a standard size, next to each sublayer.",
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


@dataclass(frozen=True)
class BlockDesign:
    """How this model's blocks are built, as its config and its first block say; the explanations follow it."""

    gated_feed_forward: bool  # T5 v1.1 / flan-t5 (feed_forward_proj "gated-..."): wi_0, wi_1 and wo, not an MLP
    activation: str | None  # the feed-forward's activation function, as the config names it
    norm: str | None  # the class of the blocks' norms: T5LayerNorm, LayerNorm, ...
    rms_norm: bool  # scaled by the root mean square only: no mean subtracted, no bias (T5LayerNorm)
    pre_norm: bool | None  # each sublayer's input normalised (x + f(norm(x))), not its sum (norm(x + f(x)))


def explanation_key(role: str, module: str) -> str | None:
    """Which EXPLANATIONS entry describes a traced module of this role, if any."""
    if role == BLOCK:
        return "residual"
    if role == anatomy.POSITION:
        return "position:relative" if "relative_attention_bias" in module else "position:learned"
    if role == anatomy.SELF_ATTENTION:
        return "self-attention:" + ("decoder" if anatomy.stack_of(module) == "decoder" else "encoder")
    if role in (anatomy.EMBEDDING, anatomy.CROSS_ATTENTION, anatomy.FEED_FORWARD, anatomy.NORM, anatomy.LM_HEAD):
        return role
    return None


def explanation(key: str, design: BlockDesign | None = None) -> str:
    """The EXPLANATIONS entry for `key`, told for this model's blocks when their design is known."""
    if design is not None and key == "feed-forward":
        return _feed_forward(design)
    if design is not None and key == "norm" and design.norm:
        return _norm(design)
    return EXPLANATIONS[key]


def _feed_forward(design: BlockDesign) -> str:
    act = design.activation or "an activation"
    if design.gated_feed_forward:
        return (f"Feed-forward, gated ({act}): two projections up from d_model to d_ff, one through {act} (wi_0) "
                "and one left linear (wi_1), multiplied element by element, then one back down to d_model (wo); "
                "applied to each position on its own, no information moves between tokens here.")
    return (f"Feed-forward: a two-layer MLP (d_model → d_ff, {act}, → d_model) applied to each position on its own; "
            "no information moves between tokens here.")


def _norm(design: BlockDesign) -> str:
    if design.rms_norm:
        what = (f"RMS norm ({design.norm}): divides each token's vector by its root mean square and multiplies it "
                "by a learned weight; no mean is subtracted and there is no bias.")
    else:
        what = (f"Layer norm ({design.norm}): subtracts each token's mean, divides by its standard deviation, then "
                "applies a learned scale and bias.")
    if design.pre_norm is None:
        return what
    if design.pre_norm:
        return what + " This model normalises before each sublayer (pre-norm): x + sublayer(norm(x))."
    return what + " This model normalises after each sublayer's residual add (post-norm): norm(x + sublayer(x))."
