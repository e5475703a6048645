"""One decoder step over an encoder output, with the key/value cache, as every view runs it.

transformers renamed the cache argument: `past_key_values` up to 5.23, `cache` from 5.24 (the old name warns
that it goes in 5.40). The name is read from the model's own forward signature, so t5peek passes the one the
installed version supports and raises none of its deprecation warnings.
"""

from __future__ import annotations

import inspect
from functools import lru_cache


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
