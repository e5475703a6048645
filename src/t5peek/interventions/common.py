"""What the intervention views share: the greedy output they explain, one teacher-forced pass, and batching."""

from __future__ import annotations

import contextlib
from typing import Iterator

from t5peek.probe.hooks import Hook, hooked

DEFAULT_NEW_TOKENS = 20
ROWS_PER_PASS = 64  # batch rows of one teacher-forced pass in a sweep


def greedy_ids(session, model, input_ids, attention_mask, new_tokens: int, hooks: list[Hook] | tuple = ()
               ) -> tuple[int, ...]:
    """What `model.generate(do_sample=False, num_beams=1, max_new_tokens=new_tokens)` returns for the prompt (the
    decoder start token first), with `hooks` installed for the whole decoding."""
    from t5peek.generate import decode, resolve_settings

    settings = resolve_settings(session.config, "", {"max_new_tokens": new_tokens, "do_sample": False,
                                                     "num_beams": 1}, top_k=1)
    with hooked(model, list(hooks)):
        run = decode(model, session.tokenizer, input_ids, settings, attention_mask=attention_mask)
    return tuple(run.output_ids)


def explained(output_ids: tuple[int, ...], position: int, device):
    """The decoder input that reads the output up to `position` ([1, position + 1]) and the token it predicts there;
    a position past the output is a usage error."""
    import torch

    from t5peek.errors import UsageError

    if position + 1 >= len(output_ids):
        raise UsageError(f"--position {position} is past the output: the greedy output has {len(output_ids) - 1} "
                         f"token(s), positions 0 to {len(output_ids) - 2}.")
    return torch.tensor([output_ids[:position + 1]], device=device), output_ids[position + 1]


def forward_logits(model, input_ids, attention_mask, decoder_input_ids, hooks: list[Hook] | tuple = ()):
    """The logits [batch, positions, vocab] of one teacher-forced pass (no cache), in float32, with `hooks`."""
    import torch

    batch = decoder_input_ids.shape[0]
    if input_ids.shape[0] != batch:
        input_ids, attention_mask = input_ids.expand(batch, -1), attention_mask.expand(batch, -1)
    with torch.no_grad(), hooked(model, list(hooks)):
        output = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                       use_cache=False, return_dict=True)
    return output.logits.float()


def chunks(items: list, size: int = ROWS_PER_PASS) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@contextlib.contextmanager
def inside(module) -> Iterator[dict]:
    """`{"now": bool}` that is true while `module` runs: tells the encoder's call of a shared embedding from the
    decoder's."""
    state = {"now": False}

    def enter(*_args, **_kwargs):
        state["now"] = True

    def leave(*_args, **_kwargs):
        state["now"] = False

    handles = [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        yield state
    finally:
        for handle in handles:
            handle.remove()


def first_difference(a: tuple[int, ...], b: tuple[int, ...]) -> int | None:
    """The first decoder position whose predicted token differs (position t predicts ids[t + 1]); a shorter output
    differs where it ends. None when equal."""
    if a == b:
        return None
    for index in range(1, max(len(a), len(b))):
        if index >= len(a) or index >= len(b) or a[index] != b[index]:
            return index - 1
    return None
