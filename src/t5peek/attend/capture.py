"""Run the model to the query and keep what entered and left the one attention module.

The encoder view runs the encoder once. The decoder views decode greedily (argmax of the raw logits) one token per
step with the key/value cache, as generation does, up to step T: the decoder reads position T at step T, so its
self-attention sees the positions 0..T that its cache holds, and cross-attention sees every source token.

Hooks sit on that module alone: a forward pre-hook keeps the hidden states that entered it (after the sublayer's
layer norm in T5), the mask, T5's position bias and, for cross-attention, the encoder output its keys and values
come from; a forward hook keeps its output and the attention weights it returned; a pre-hook on the output
projection keeps its input, the heads' outputs side by side. They keep references, not copies: the run costs what
the same greedy run without hooks costs.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

from t5peek import finite, seq2seq
from t5peek.attend.heads import HeadSite
from t5peek.errors import UsageError
from t5peek.probe.hooks import INPUT, OUTPUT, Hook, hooked
from t5peek.probe.stepping import decoder_steps


@dataclass
class Captured:
    """What the hooks kept, as tensors on the model's device."""

    inputs: list = field(default_factory=list)  # hidden states entering the module, one per call (per step)
    key_value_states: object = None  # cross-attention: the encoder output keys and values are made from
    mask: object = None  # the attention mask of the last call, as the module received it (None: nothing hidden)
    position_bias: object = None  # T5: the position bias the module received in the last call
    output: object = None  # the module's output of the last call
    weights: object = None  # the attention weights the module returned in the last call
    projection_input: object = None  # the output projection's input in the last call: every head's output


@dataclass(frozen=True)
class Decoded:
    """The greedy run up to the query."""

    decoder_ids: tuple[int, ...]  # positions 0..T of the decoder input (start token, then T greedy tokens)
    next_id: int | None  # the token picked at step T (decoder views)
    nonfinite: tuple[int, str] | None = None  # (step, NaN or inf) of the first step whose logits are not finite


@contextmanager
def hooks_on(model, site: HeadSite):
    """What the attention module at `site` receives and returns, and its output projection's input, kept for
    every call inside the block."""
    captured = Captured()

    def before(hidden, call) -> None:
        captured.inputs.append(hidden)
        kwargs = call.kwargs
        source = kwargs.get("key_value_states", kwargs.get("encoder_hidden_states"))  # umt5 names it the latter
        if source is not None:
            captured.key_value_states = source
        captured.mask = kwargs.get("mask", kwargs.get("attention_mask"))
        captured.position_bias = kwargs.get("position_bias")

    def after(_value, call) -> None:
        captured.output, captured.weights = call.output[0], call.output[-1]

    def projection(heads, _call) -> None:
        captured.projection_input = heads

    with hooked(model, [Hook(site.module, INPUT, before), Hook(site.module, OUTPUT, after),
                        Hook(site.output, INPUT, projection)]):
        yield captured


def run_to_query(model, input_ids, attention_mask, step: int | None, tokenizer=None) -> Decoded:
    """The encoder alone (`step` None), or greedy decoding through step `step`; the same with or without hooks."""
    import torch

    with torch.no_grad():
        encoder_outputs = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        if step is None:
            return Decoded((), None)
        eos = seq2seq.eos_ids(model)
        decoder_ids = [seq2seq.decoder_start_id(model)]
        nonfinite = None
        for passed in decoder_steps(model, encoder_outputs, attention_mask, step + 1):
            logits = passed.output.logits[0, -1]
            chosen = int(logits.argmax())
            if nonfinite is None:
                state = finite.tensor_state(logits)
                nonfinite = None if state is None else (passed.step, state)
            if passed.step < step and chosen in eos:
                token = seq2seq.token_strings(tokenizer, [chosen])[0]
                raise UsageError(f"--step {step} is past the end: greedy decoding writes {token} at step "
                                 f"{passed.step}, so the decoder has a query at steps 0 to {passed.step} only.")
            decoder_ids.append(chosen)
    return Decoded(tuple(decoder_ids[:-1]), decoder_ids[-1], nonfinite)
