"""What one decoding run shares between its steps: the model and its processors, token strings, the records
kept so far, and the per-step readings (candidates, cross-attention) every strategy takes the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from t5peek import finite
from t5peek.errors import T5PeekError, UnsupportedModel
from t5peek.generate.records import Candidate, EncoderSelfAttention, LayerFocus
from t5peek.kinds import Strategy
from t5peek.probe.stepping import decoder_step
from t5peek.seq2seq import TokenNames


class DecodeError(T5PeekError):
    """Decoding cannot go on (e.g. the scores are NaN, so there is nothing to sample from)."""


@dataclass
class _Attention:
    """The little of a step's cross-attention the records need, as Python lists."""

    shown: list  # [beam][source]: the shown layer, mean of heads
    best_weight: list  # [layer][beam]
    best_index: list  # [layer][beam]


@dataclass
class _Run:
    """The mutable state of one decoding run (kept out of the records)."""

    model: Any
    config: Any
    strategy: Strategy
    processors: Any
    criteria: Any
    vocab: TokenNames
    top_k: int
    layer: int
    keep_heads: bool
    on_step: Callable | None
    source_tokens: tuple[str, ...]
    self_attention: bool = False  # record the decoder's self-attention at the shown layer (--self)
    steps: list = field(default_factory=list)
    beam_steps: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    heads: list = field(default_factory=list)  # per step: tensor (layers, heads, source) of the output's path
    self_heads: list = field(default_factory=list)  # per step: tensor (layers, heads, step + 1), the same path

    def head_attention(self):
        """[step][layer][head][source token] of the output's path, when kept (the HTML report)."""
        if not self.keep_heads:
            return None
        return tuple(h.tolist() for h in self.heads)

    def decoder_head_attention(self):
        """[step][layer][head][decoder input token] of the output's path, when kept (the HTML report)."""
        if not self.keep_heads:
            return None
        return tuple(h.tolist() for h in self.self_heads)

    def decoder_self_attention(self, outputs) -> tuple[Any, list | None]:
        """Self-attention of the newest decoder position, (layers, beams, heads, keys) on the device when the heads
        are kept, and the shown layer's head mean per beam (when --self asks for it)."""
        if not (self.keep_heads or self.self_attention):
            return None, None
        import torch

        stacked = torch.stack([a[:, :, -1, :] for a in outputs.decoder_attentions]).float()
        shown = stacked[self.layer].mean(dim=1).tolist() if self.self_attention else None
        return (stacked if self.keep_heads else None), shown

    def forward(self, encoder_outputs, attention_mask, decoder_input_ids, cache):
        """One decoder step on the cached encoder outputs, with the attentions: (outputs, the next cache)."""
        return decoder_step(self.model, encoder_outputs, attention_mask, decoder_input_ids, cache,
                            output_attentions=True)

    def candidates(self, logits, scores):
        """Top-k by score for every row: (ids, logits, scores, probs) as nested Python lists."""
        import torch

        values, ids = torch.topk(scores, self.top_k, dim=-1)
        probs = torch.softmax(scores, dim=-1)
        packed = torch.stack([torch.gather(logits, 1, ids), values, torch.gather(probs, 1, ids)]).tolist()
        return ids.tolist(), packed[0], packed[1], packed[2], probs

    def cross_attention(self, outputs) -> tuple[Any, "_Attention"]:
        """Cross-attention of the newest position, (layers, beams, heads, source) on the device, and the little
        the records need on the CPU (one transfer): the shown layer's head mean, each layer's strongest token."""
        import torch

        stacked = torch.stack([a[:, :, -1, :] for a in outputs.cross_attentions]).float()
        mean = stacked.mean(dim=2)  # (layers, beams, source)
        best_weight, best_index = mean.max(dim=-1)  # (layers, beams)
        layers, beams, source = mean.shape
        packed = torch.cat([mean[self.layer].flatten(), best_weight.flatten(),
                            best_index.flatten().to(mean.dtype)]).tolist()
        shown = [packed[b * source:(b + 1) * source] for b in range(beams)]
        offset = beams * source
        weights = [packed[offset + i * beams: offset + (i + 1) * beams] for i in range(layers)]
        offset += layers * beams
        indices = [[int(x) for x in packed[offset + i * beams: offset + (i + 1) * beams]] for i in range(layers)]
        return stacked, _Attention(shown, weights, indices)

    def focus(self, attention: "_Attention", row: int) -> tuple[LayerFocus, ...]:
        """Every decoder layer's strongest source token for beam `row`."""
        return tuple(LayerFocus(layer, attention.best_index[layer][row],
                                self.source_tokens[attention.best_index[layer][row]],
                                attention.best_weight[layer][row]) for layer in range(len(attention.best_index)))

    def row_candidates(self, ids, logits, scores, probs, row) -> tuple[Candidate, ...]:
        """The top-k `Candidate`s of beam `row`, from the lists `candidates()` returns."""
        names = self.vocab(ids[row])
        return tuple(Candidate(i, name, lg, sc, pr) for i, name, lg, sc, pr in
                     zip(ids[row], names, logits[row], scores[row], probs[row]))

    def check_finite(self, step: int, top_score: float, sampling: bool) -> None:
        """NaN scores (or nothing left with a finite score) cannot be sampled from; greedy goes on like generate()."""
        what = finite.scores_state(top_score)
        if what is not None:
            if sampling:
                raise DecodeError(f"At step {step} the scores are {what}: there is no distribution to sample from.",
                                  hint="The model's numbers overflowed (try --dtype float32) or the settings rule "
                                       "out every token.")
            if not self.notes:
                self.notes.append(finite.from_step(step, "scores", what, "the choices are arbitrary"))


def encoder_self_attention(attentions, source_length: int, layer: int | None, wanted: bool, keep_heads: bool):
    """The encoder's self-attention: (the shown layer's mean of heads as a record when `wanted`, every layer's and
    head's map as lists when `keep_heads`). Encoders whose attention is not a source x source map (local or
    block-sparse attention: LongT5, LED, BigBird-Pegasus) are refused for --self and left out of the report."""
    square = bool(attentions) and all(a is not None and tuple(a.shape[-2:]) == (source_length, source_length)
                                      for a in attentions)
    if not square:
        if wanted:
            raise UnsupportedModel("--self shows a source x source map, but this model's encoder attends locally "
                                   "(windows or blocks), so its self-attention is not one.")
        return None, None
    import torch

    stacked = torch.stack([a[0] for a in attentions]).float()  # (layers, heads, query, key)
    layers, heads = stacked.shape[:2]
    shown = layers - 1 if layer is None else min(layer, layers - 1)
    record = EncoderSelfAttention(shown, layers, heads, tuple(tuple(row) for row in stacked[shown].mean(dim=0)
                                                                    .tolist())) if wanted else None
    return record, (stacked.cpu().tolist() if keep_heads else None)


def stop_reason(config, output_ids: list[int]) -> str:
    """Why the output ended, in words."""
    eos = config._eos_token_tensor.tolist() if config._eos_token_tensor is not None else []
    if output_ids and output_ids[-1] in eos and len(output_ids) > 1:
        return "end-of-sequence token"
    if len(output_ids) >= config.max_length:
        return f"max_new_tokens ({config.max_length - 1}) reached"
    return "a stopping criterion"
