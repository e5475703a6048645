"""The decoder over an encoder output, with the key/value cache, as every view runs it: one step
(`decoder_step`), or step after step, greedy or teacher-forced (`decoder_steps`).

transformers renamed the cache argument: `past_key_values` up to 5.23, `cache` from 5.24 (the old name warns
that it goes in 5.40). The name is read from the model's own forward signature, so t5peek passes the one the
installed version supports and raises none of its deprecation warnings.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, ContextManager, Iterator, Sequence


@lru_cache(maxsize=None)
def _cache_keyword(model_class: type) -> str:
    parameters = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def cache_argument(model, cache) -> dict:
    """`{name: cache}` for `model(...)`, under the name the installed transformers takes."""
    return {_cache_keyword(type(model)): cache}


def returned_cache(output, previous=None):
    """The cache a forward pass returned (its field is `cache`, or `past_key_values` before transformers 5.24),
    else `previous`."""
    fields = getattr(output, "__dataclass_fields__", {})
    name = "cache" if "cache" in fields else "past_key_values"
    cache = getattr(output, name, None) if name in fields else None
    return cache if cache is not None else previous


def decoder_step(model, encoder_outputs, attention_mask, decoder_input_ids, cache, **extra):
    """One decoder pass over `decoder_input_ids` with `cache`: (the model's output, the cache to pass next)."""
    output = model(encoder_outputs=encoder_outputs, attention_mask=attention_mask,
                   decoder_input_ids=decoder_input_ids, use_cache=True, return_dict=True,
                   **cache_argument(model, cache), **extra)
    return output, returned_cache(output, cache)


@dataclass(frozen=True)
class DecoderStep:
    """One pass of `decoder_steps`: the token the decoder was fed at `step`, and what came out."""

    step: int
    fed_id: int
    output: Any  # the model's output for this one position (logits [1, 1, vocab], attentions when asked)
    cache: Any  # the cache after this step


def decoder_steps(model, encoder_outputs, attention_mask, steps: int, *, feed: Sequence[int] | None = None,
                  around: Callable[[int], ContextManager] | None = None, **extra) -> Iterator[DecoderStep]:
    """The decoder one token at a time over one encoder output, with the key/value cache, for up to `steps` steps.

    Fed the start token, then at each step the greedy choice of the step before (the argmax of the raw logits),
    or, teacher-forced, `feed[step]` (`feed` starts with the start token: the labels shifted right). `around(step)`
    wraps each pass (a tracer's phase). Stop early by leaving the loop (at an end token, say)."""
    import torch

    from t5peek.seq2seq import decoder_start_id, new_cache

    device = encoder_outputs.last_hidden_state.device
    cache = new_cache()
    next_id = decoder_start_id(model) if feed is None else int(feed[0])
    for step in range(steps):
        fed = torch.tensor([[next_id]], device=device)
        with around(step) if around is not None else contextlib.nullcontext():
            output, cache = decoder_step(model, encoder_outputs, attention_mask, fed, cache, **extra)
        yield DecoderStep(step, next_id, output, cache)
        if feed is not None:
            if step + 1 >= len(feed):
                return
            next_id = int(feed[step + 1])
        else:
            next_id = int(output.logits[0, -1].argmax())
