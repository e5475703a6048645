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
    TERMINATED = 143  # 128 + SIGTERM, as shells report it


class T5PeekError(Exception):
    """An error with a one-line message for the user and an exit code."""

    exit_code: ExitCode = ExitCode.ERROR
    kind = "error"  # the `error.kind` of a --json error document

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(T5PeekError):
    exit_code = ExitCode.USAGE
    kind = "usage"


class ModelNotFound(T5PeekError):
    """Unknown Hub id, missing revision, offline without a cached copy, folder without config."""

    kind = "model_not_found"


class BadCheckpoint(T5PeekError):
    """Files are present but unusable: broken JSON, truncated weights, LFS pointers, missing tensors."""

    kind = "bad_checkpoint"


class NotEnoughMemory(T5PeekError):
    """The weights would not fit in the memory available."""

    kind = "not_enough_memory"


class HubUnreachable(ModelNotFound):
    """The Hub did not answer: connection refused, reset or timed out."""

    kind = "hub_unreachable"


class UnsupportedModel(UsageError):
    """The model exists but is not something t5peek inspects (decoder-only, unknown type)."""

    kind = "unsupported_model"


class Refused(T5PeekError):
    """Refused for safety: pickle weights, remote code, paths escaping the model folder."""

    exit_code = ExitCode.REFUSED
    kind = "refused"


_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{8,}")
# The credentials a URL carries (HF_ENDPOINT=http://user:pw@host/?token=...): what comes before the host's `@`,
# and the value of a query parameter whose name says token, key, password or signature.
_URL_USERINFO = re.compile(r"(?<=://)[^/?#\s'\"<>]+@")
_SECRET_NAME = re.compile(r"token|key|secret|passw|pwd|^sig$|signature|credential|^auth", re.IGNORECASE)
_URL_PARAMETER = re.compile(r"(?<=[?&;])([\w.~%-]+)=([^&;#\s'\"<>]*)")
_AUTHORIZATION = re.compile(r"(authorization['\"]?\s*[:=]\s*['\"]?(?:basic |bearer |token )?)[^\s'\",;)}]+",
                            re.IGNORECASE)


def redact(text: str) -> str:
    """Remove anything that looks like a Hugging Face token or a credential in a URL, and the token itself
    wherever it is kept: HF_TOKEN and the token file huggingface_hub reads (HF_TOKEN_PATH, or `token` in HF_HOME),
    whatever its shape; and the password or secret parameters in HF_ENDPOINT."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    text = _URL_USERINFO.sub("***@", text)
    text = _URL_PARAMETER.sub(lambda found: f"{found[1]}=***" if _SECRET_NAME.search(found[1]) else found[0], text)
    text = _AUTHORIZATION.sub(r"\1***", text)
    return _TOKEN_PATTERN.sub("hf_***", text)


def _endpoint_secrets() -> list[str]:
    """HF_ENDPOINT's password and secret parameters, as written and decoded, and the Basic credentials a client
    sends for its user and password."""
    import base64
    from urllib.parse import parse_qsl, unquote, urlsplit

    try:
        parts = urlsplit(os.environ.get("HF_ENDPOINT", "").strip())
        found = [parts.password or "", *(value for name, value in parse_qsl(parts.query) if _SECRET_NAME.search(name))]
    except ValueError:  # not a URL that urllib can read (a bad port, an unclosed bracket)
        return []
    if parts.password:
        found.append(base64.b64encode(f"{unquote(parts.username or '')}:{unquote(parts.password)}".encode()).decode())
    return found + [unquote(secret) for secret in found]


def _secrets() -> list[str]:
    found = [os.environ.get(name, "").strip() for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")]
    found += _endpoint_secrets()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    path = os.path.expanduser(os.environ.get("HF_TOKEN_PATH") or os.path.join(home, "token"))
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            found.append(file.read(4096).strip())
    except OSError:
        pass
    return [secret for secret in found if len(secret) >= 4]


UNREACHABLE_HINT = ("Check the connection (and HF_ENDPOINT if set); models already in the cache work without "
                    "the Hub, and so does `-m demo`.")

_NETWORK_FAILURES = {
    # httpx / httpx2 exception class names (huggingface_hub 1.x uses one, 2.x the other)
    "ConnectTimeout": "no connection within the timeout",
    "ReadTimeout": "no answer within the timeout",
    "WriteTimeout": "no answer within the timeout",
    "PoolTimeout": "no answer within the timeout",
    "TimeoutException": "no answer within the timeout",
    "ConnectError": "connection refused",
    "RemoteProtocolError": "the connection was closed without an answer",
    "ReadError": "the connection was closed without an answer",
    "NetworkError": "network error",
    "ConnectionRefusedError": "connection refused",
    "ConnectionResetError": "the connection was closed without an answer",
    "TimeoutError": "no answer within the timeout",
}


def network_failure(exc: BaseException | None) -> str | None:
    """How the network failed, when `exc` (or what caused it) is a connection error or a timeout."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        for cls in type(exc).__mro__:
            if cls.__name__ in _NETWORK_FAILURES:
                return _NETWORK_FAILURES[cls.__name__]
        exc = exc.__cause__ or exc.__context__
    return None


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
        return ModelNotFound(f"Revision '{revision}' does not exist for '{model}'.",
                             hint="Use a branch, tag or full commit id that the repository has.")
    if isinstance(exc, hub_errors.RepositoryNotFoundError):
        return ModelNotFound(f"No model '{model}' on the Hugging Face Hub (or it is private).",
                             hint="Check the spelling, log in for a private repo, or pass a local folder.")
    if isinstance(exc, hub_errors.OfflineModeIsEnabled):
        return ModelNotFound(f"'{model}'{at_revision} is not in the local Hugging Face cache, and offline mode "
                             "is on.", hint="Run once without --offline (or HF_HUB_OFFLINE) to download it.")
    if isinstance(exc, hub_errors.LocalEntryNotFoundError):
        failure = network_failure(exc)
        if failure is not None:
            return HubUnreachable(f"Cannot reach the Hugging Face Hub ({failure}), and '{model}'{at_revision} "
                                  "is not in the local cache.", hint=UNREACHABLE_HINT)
        return ModelNotFound(f"'{model}'{at_revision} is not in the local Hugging Face cache.",
                             hint="Run once online to download it, or pass a local folder.")
    if isinstance(exc, hub_errors.EntryNotFoundError):
        return ModelNotFound(f"'{model}'{at_revision} has no config.json: it is not a transformers model.")
    if isinstance(exc, hub_errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return ModelNotFound(f"The Hub refused access to '{model}' (HTTP {status}).",
                                 hint="Log in with `hf auth login` or set HF_TOKEN with access to it.")
        if status is not None and status >= 500:
            return ModelNotFound(f"The Hugging Face Hub failed to answer for '{model}' (HTTP {status}); "
                                 "it may be down.",
                                 hint="Try again later; models already in the cache work without the Hub.")
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return ModelNotFound(f"The Hub refused the request for '{model}': {first}")
    return None
