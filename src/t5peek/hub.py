"""Everything t5peek asks of the Hugging Face Hub, in one place.

- Cache first: a revision whose files are already in the local cache is used without a single request.
  `--refresh` asks the Hub for the newest commit of a branch instead.
- One attempt, short timeouts: the first request to the Hub is a single HEAD with a timeout
  (T5PEEK_HUB_TIMEOUT, 10 s by default). If it gets no answer, t5peek says so and uses the cache when it
  can, instead of huggingface_hub's silent retries.
- Offline means no socket: `--offline`, HF_HUB_OFFLINE=1, or a Hub found unreachable earlier in the run.

The endpoint (HF_ENDPOINT), cache (HF_HOME, HF_HUB_CACHE) and offline switch are read when each call is made.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from t5peek.errors import (UNREACHABLE_HINT, HubUnreachable, ModelNotFound, T5PeekError, from_hub_exception,
                           network_failure)

CONFIG_FILE = "config.json"
DEFAULT_ENDPOINT = "https://huggingface.co"
COMMIT_PATTERN = re.compile(r"[0-9a-f]{40}")
_TRUE = {"1", "true", "yes", "on"}


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def timeout_s() -> float:
    try:
        return max(0.5, float(os.environ.get("T5PEEK_HUB_TIMEOUT", "10")))
    except ValueError:
        return 10.0


def offline_requested(flag: bool = False) -> bool:
    if flag:
        return True
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def go_offline() -> None:
    """From now on, no library in this process may open a connection to the Hub."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import sys

    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


def quiet() -> None:
    """No progress bars from huggingface_hub: t5peek reports progress itself."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()


def _prepare() -> None:
    """Quiet, a timeout on every request huggingface_hub makes (its default has none), and no requests but those
    for the model: without telemetry, huggingface_hub does not first fetch its registry of AI agents
    (`/api/agent-harnesses`), which cost 3 s more on a Hub that does not answer."""
    quiet()
    if not os.environ.get("HF_HUB_DISABLE_TELEMETRY", "").strip():
        os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    from huggingface_hub import constants, get_session

    constants.HF_HUB_DISABLE_TELEMETRY = constants.HF_HUB_DISABLE_TELEMETRY or os.environ[
        "HF_HUB_DISABLE_TELEMETRY"].strip().lower() in _TRUE

    get_session().timeout = timeout_s()


def validate(repo_id: str) -> None:
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except Exception as exc:  # noqa: BLE001 - HFValidationError, translated
        raise _translate(exc, repo_id, None) from exc


def _translate(exc: BaseException, repo_id: str, revision: str | None) -> BaseException:
    if isinstance(exc, T5PeekError):
        return exc
    cache_problem = _cache_failure(exc)
    if cache_problem is not None:
        return cache_problem
    failure = network_failure(exc)
    if failure is not None:
        return HubUnreachable(f"Cannot reach the Hugging Face Hub at {endpoint()} ({failure}).",
                              hint=UNREACHABLE_HINT)
    return from_hub_exception(exc, repo_id, revision) or exc


def _cache_failure(exc: BaseException) -> T5PeekError | None:
    """A cache that cannot be written (read-only, no permission, disk full), in one line."""
    if not isinstance(exc, OSError) or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC,
                                                         errno.EDQUOT, errno.ENOTDIR):
        return None
    where = exc.filename or cache_dir()
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return T5PeekError(f"No space left to download into the Hugging Face cache ({where}).",
                           hint="Free some space, or point HF_HUB_CACHE at a disk with room.")
    return T5PeekError(f"Cannot write to the Hugging Face cache ({where}): {exc.strerror or 'permission denied'}.",
                       hint="Point HF_HUB_CACHE at a writable folder, or use --offline if the model is cached.")


LOCK_REPORT_AFTER_S = 3


def report_lock_wait(message: str) -> None:
    """Said while the download waits, so it goes straight to stderr."""
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()


class _LockWaitReporter:
    """Stands in for the logger of huggingface_hub's file lock, which logs "Still waiting to acquire lock" while
    another process downloads the same file: say it once, in t5peek's words, instead of waiting in silence (the
    library's log lines are silenced, so its own logger would say nothing)."""

    def __init__(self, logger):
        self.logger = logger
        self.reported = False

    def info(self, message, *_args, **_kwargs) -> None:
        text = str(message)
        if not self.reported and text.startswith("Still waiting to acquire lock on "):
            self.reported = True
            lock = text.removeprefix("Still waiting to acquire lock on ").split(" (elapsed")[0]
            report_lock_wait(f"another process is downloading into the cache and holds {lock}; waiting for it "
                             "(Ctrl-C stops).")

    def __getattr__(self, name):
        return getattr(self.logger, name)


@contextlib.contextmanager
def _reporting_lock_waits() -> Iterator[None]:
    from huggingface_hub import constants
    from huggingface_hub.utils import _fixes

    logger, interval = _fixes.logger, constants.FILELOCK_LOG_EVERY_SECONDS
    _fixes.logger = _LockWaitReporter(logger)
    constants.FILELOCK_LOG_EVERY_SECONDS = LOCK_REPORT_AFTER_S
    try:
        yield
    finally:
        _fixes.logger = logger
        constants.FILELOCK_LOG_EVERY_SECONDS = interval


@dataclass(frozen=True)
class HubConfig:
    """config.json of a Hub repo, in the local cache."""

    folder: Path  # the snapshot folder: its name is the commit
    commit: str | None
    from_cache: bool  # True when no request was made
    warning: str | None = None  # e.g. the Hub could not be reached and the cache was used


def cached_config(repo_id: str, revision: str | None) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, CONFIG_FILE, cache_dir=str(cache_dir()), revision=revision)
    return Path(found) if isinstance(found, str) else None


def fetch_config(repo_id: str, revision: str | None, offline: bool, refresh: bool = False) -> HubConfig:
    """config.json for `repo_id` at `revision`: from the cache when there, else one HEAD and one GET."""
    validate(repo_id)
    cached = cached_config(repo_id, revision)
    pinned = revision is not None and COMMIT_PATTERN.fullmatch(revision) is not None
    if cached is not None and (offline or not refresh or pinned):
        return HubConfig(cached.parent, _commit_of(cached.parent), from_cache=True)
    if offline:
        at = f" at revision '{revision}'" if revision else ""
        raise ModelNotFound(f"'{repo_id}'{at} is not in the local Hugging Face cache, and you asked for offline "
                            "mode.", hint="Run once without --offline (or HF_HUB_OFFLINE) to download it.")
    _prepare()
    try:
        probe(repo_id, revision)
    except HubUnreachable as unreachable:
        if cached is None:
            raise HubUnreachable(f"{unreachable.message.rstrip('.')}, and '{repo_id}' is not in the local cache.",
                                 hint=unreachable.hint) from unreachable
        go_offline()
        return HubConfig(cached.parent, _commit_of(cached.parent), True,
                         warning=f"{unreachable.message} Using the cached copy.")
    from huggingface_hub import hf_hub_download

    try:
        with _reporting_lock_waits():
            path = Path(hf_hub_download(repo_id, CONFIG_FILE, revision=revision, cache_dir=str(cache_dir()),
                                        endpoint=endpoint()))
    except Exception as exc:  # noqa: BLE001 - translated
        raise _translate(exc, repo_id, revision) from exc
    return HubConfig(path.parent, _commit_of(path.parent), from_cache=False)


def probe(repo_id: str, revision: str | None) -> str | None:
    """One HEAD request for config.json, no retry: the commit it resolves to, or a T5PeekError."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo_id, CONFIG_FILE, revision=revision, endpoint=endpoint())
    try:
        return get_hf_file_metadata(url, timeout=timeout_s()).commit_hash
    except Exception as exc:  # noqa: BLE001 - translated
        raise _translate(exc, repo_id, revision) from exc


def _commit_of(folder: Path) -> str | None:
    return folder.name if COMMIT_PATTERN.fullmatch(folder.name) else None


def fetch_headers(repo_id: str, commit: str | None, revision: str | None):
    """The safetensors headers of a repo (a few KB per file), or None when the Hub cannot give them."""
    if offline_requested():
        return None
    _prepare()
    from huggingface_hub import HfApi

    try:
        return HfApi(endpoint=endpoint()).get_safetensors_metadata(repo_id, revision=commit or revision)
    except Exception as exc:  # noqa: BLE001 - no header: callers fall back to config.json
        if network_failure(exc) is not None:
            go_offline()
        return None


def fetch_snapshot(repo_id: str, revision: str | None, folder: Path, patterns: list[str], complete) -> Path:
    """The files matching `patterns` at the commit of `folder`, downloaded unless `complete(folder)` already.

    The files come one after the other in this thread, not through snapshot_download's thread pool: Ctrl-C then
    stops a download between two chunks, where the pool would first wait for every file in flight to finish."""
    if complete(folder):
        return folder
    commit = _commit_of(folder)
    if offline_requested():
        raise ModelNotFound(f"The weights of '{repo_id}' are not in the local Hugging Face cache, and the Hub is "
                            "not being asked (offline).",
                            hint="Run once online to download them.")
    _prepare()
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.utils import filter_repo_objects

    probe(repo_id, commit or revision)
    try:
        files = HfApi(endpoint=endpoint()).list_repo_files(repo_id, revision=commit or revision)
        snapshot = folder
        with _reporting_lock_waits():
            for name in filter_repo_objects(files, allow_patterns=patterns):
                path = Path(hf_hub_download(repo_id, name, revision=commit or revision, cache_dir=str(cache_dir()),
                                            endpoint=endpoint()))
                snapshot = path.parents[len(Path(name).parts) - 1]
        return snapshot
    except Exception as exc:  # noqa: BLE001 - translated
        raise _translate(exc, repo_id, revision) from exc
