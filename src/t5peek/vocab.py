"""A token named on the command line: a vocabulary string as the tokenizer spells it, or `#ID`."""

from __future__ import annotations

from t5peek.errors import UsageError


def token_id(tokenizer, text: str, width: int, option: str) -> int:
    """The id of `text`: `#ID` (an id below `width`, the logits' width), or a token of the vocabulary, as
    `convert_ids_to_tokens` spells it (with its word-start marker where it has one: '▁casa'), or a word the
    tokenizer turns into exactly one token."""
    if text.startswith("#"):
        digits = text[1:]
        if not digits.isdigit() or int(digits) >= width:
            raise UsageError(f"{option}: {text!r} is not a token id: give #ID with ID from 0 to {width - 1}.")
        return int(digits)
    vocabulary = tokenizer.get_vocab()
    if text in vocabulary and vocabulary[text] < width:
        return vocabulary[text]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    unknown = getattr(tokenizer, "unk_token_id", None)
    if len(ids) == 1 and ids[0] != unknown and ids[0] < width:
        return ids[0]
    spelled = f" (the tokenizer splits it into {len(ids)} tokens)" if len(ids) > 1 else ""
    raise UsageError(f"{option}: {text!r} is not a token of this model's vocabulary{spelled}; give one token, "
                     "or #ID for a token id.")
