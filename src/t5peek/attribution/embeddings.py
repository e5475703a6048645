"""Token embeddings put in from outside: the variables integrated gradients moves along its path.

A stack (the encoder or the decoder) embeds its input ids with its `embed_tokens` module first thing in its forward;
what that first call returns is replaced by a tensor of ours. Everything after it is the model's own: the scale
Marian, Pegasus, BlenderbotSmall and MVP apply in the stack's forward, and the positions every family adds.
The first call, because LED's encoder calls the embedding again to pad its input to the attention window. T5 and
most BART-style models share one embedding module between the two stacks: each stack's substitute fires only in
that stack's own forward.

torch is imported inside functions only.
"""

from __future__ import annotations

from typing import Any

from t5peek.probe.hooks import INPUT, OUTPUT, Hook


class Substitute:
    """`value` ([batch, positions, width]) in place of the token embeddings of one stack's forward; None: the
    stack embeds its ids itself."""

    def __init__(self, stack, name: str):
        self.stack, self.name = stack, name
        self.embedding = stack.embed_tokens
        self.value: Any = None
        self._pending = False
        self._inside = False

    def hooks(self) -> list[Hook]:
        return [Hook(self.stack, INPUT, self._enter, f"{self.name} starts"),
                Hook(self.stack, OUTPUT, self._leave, f"{self.name} ends"),
                Hook(self.embedding, OUTPUT, self._replace, f"{self.name} embeddings")]

    def embed(self, ids):
        """What this stack's embedding module returns for `ids` [batch, positions], without the substitute."""
        return self.embedding(ids)

    def _enter(self, _value, _call):
        self._inside, self._pending = True, True

    def _leave(self, _value, _call):
        self._inside = self._pending = False

    def _replace(self, value, _call):
        if not (self._inside and self._pending) or self.value is None:
            return None
        self._pending = False
        if tuple(value.shape) != tuple(self.value.shape):
            raise RuntimeError(f"the {self.name} embedded {tuple(value.shape)}, not the {tuple(self.value.shape)} "
                               "given in its place")
        return self.value.to(value.dtype)


def substitutes(model) -> tuple[Substitute, Substitute]:
    """(encoder, decoder) substitutes of `model`."""
    return Substitute(model.get_encoder(), "encoder"), Substitute(model.get_decoder(), "decoder")
