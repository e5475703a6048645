"""Errors users can meet, their exit codes, and the mapping of library exceptions to one-line messages."""

from __future__ import annotations

import enum
import os
import re


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    REFUSED = 3
    INTERRUPTED = 130


class T5PeekError(Exception):
    """An error with a one-line message for the user and an exit code."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(T5PeekError):
    exit_code = ExitCode.USAGE


class ModelNotFound(T5PeekError):
    """Unknown Hub id, missing revision, offline without a cached copy, folder without config."""


class BadCheckpoint(T5PeekError):
    """Files are present but unusable: broken JSON, truncated weights, LFS pointers, missing tensors."""


class NotEnoughMemory(T5PeekError):
    """The weights would not fit in the memory available."""


class UnsupportedModel(UsageError):
    """The model exists but is not something t5peek inspects (decoder-only, unknown type)."""


class Refused(T5PeekError):
    """Refused for safety: pickle weights, remote code, paths escaping the model folder."""

    exit_code = ExitCode.REFUSED


_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{8,}")


def redact(text: str) -> str:
    """Remove anything that looks like a Hugging Face token, and the value of HF_TOKEN itself."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        secret = os.environ.get(name)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _TOKEN_PATTERN.sub("hf_***", text)


def from_hub_exception(exc: BaseException, model: str, revision: str | None) -> T5PeekError | None:
    """Translate a huggingface_hub exception into a T5PeekError, or None when it is not one of them."""
    from huggingface_hub import errors as hub_errors

    at_revision = f" at revision '{revision}'" if revision else ""
    if isinstance(exc, hub_errors.HFValidationError):
        return UsageError(f"'{model}' is not a valid model id or an existing folder.",
                          hint="A Hub id looks like 'org/name'; a folder must exist and hold config.json.")
    if isinstance(exc, hub_errors.GatedRepoError):
        return ModelNotFound(f"'{model}' is a gated repository: accept its terms on the Hub and log in.",
                             hint="Run `hf auth login` or set HF_TOKEN, then try again.")
    if isinstance(exc, hub_errors.RevisionNotFoundError):
        return ModelNotFound(f"Revision '{revision}' does not exist for '{model}'.")
    if isinstance(exc, hub_errors.RepositoryNotFoundError):
        return ModelNotFound(f"No model '{model}' on the Hugging Face Hub (or it is private).",
                             hint="Check the spelling, or pass a local folder.")
    if isinstance(exc, (hub_errors.LocalEntryNotFoundError, hub_errors.OfflineModeIsEnabled)):
        return ModelNotFound(f"'{model}'{at_revision} is not in the local Hugging Face cache and the Hub "
                             "cannot be reached (offline).",
                             hint="Connect once to download it, or pass a local folder, or try `-m demo`.")
    if isinstance(exc, hub_errors.EntryNotFoundError):
        return ModelNotFound(f"'{model}'{at_revision} has no config.json: it is not a transformers model.")
    if isinstance(exc, hub_errors.HfHubHTTPError):
        return ModelNotFound(f"The Hub refused the request for '{model}': {str(exc).splitlines()[0]}")
    return None
