"""Everything t5peek asks of the Hugging Face Hub, in one place.

- Cache first: a revision whose files are already in the local cache is used without a single request.
  `--refresh` asks the Hub for the newest commit of a branch instead.
- One attempt, short timeouts: the first request to the Hub is a single HEAD with a timeout
  (T5PEEK_HUB_TIMEOUT, 10 s by default). If it gets no answer, t5peek says so and uses the cache when it
  can, instead of huggingface_hub's silent retries.
- No request hangs: every reply must start within T5PEEK_HUB_TIMEOUT seconds, and then bring at least
  1 KB per second over each T5PEEK_HUB_TIMEOUT seconds until it ends. So a small reply (a HEAD, config.json, a
  file list: under 10 KB with the default 10 s) must arrive whole within T5PEEK_HUB_TIMEOUT, while a weight file
  may take as long as it needs as long as it keeps moving. A reply that slows below that is a stalled download,
  said as such. (Downloads that huggingface_hub hands to hf_xet, when installed, do not go through this guard.)
- Complete snapshots only: the repo's file list for a commit is kept beside the cache entry
  (`models--org--name/.t5peek/<commit>.json`), and a snapshot is used without asking only when every listed file
  that the run needs is in it. What an interrupted or failed download left out is downloaded on the next run.
- Nothing outside the cache: revisions must be valid git branch, tag or commit names, and a file list naming a
  file outside the repository is refused. Partial blobs left by a killed download (`blobs/*.incomplete`) are
  removed before the next download of that repo, unless another process holds their lock.
- Offline means no socket: `--offline`, HF_HUB_OFFLINE=1, or a Hub found unreachable earlier in the run.

The endpoint (HF_ENDPOINT), cache (HF_HOME, HF_HUB_CACHE) and offline switch are read when each call is made.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from t5peek.errors import (UNREACHABLE_HINT, HubUnreachable, ModelNotFound, Refused, T5PeekError, UsageError,
                           from_hub_exception, network_failure)
from t5peek.stalls import STALL_HINT, guard_stalls, stall_in

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
    """Quiet, a timeout on every request huggingface_hub makes (its default has none), a guard against replies
    that stall, and no requests but those for the model: without telemetry, huggingface_hub does not first fetch
    its registry of AI agents (`/api/agent-harnesses`), which cost 3 s more on a Hub that does not answer."""
    quiet()
    if not os.environ.get("HF_HUB_DISABLE_TELEMETRY", "").strip():
        os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    from huggingface_hub import constants, get_session

    constants.HF_HUB_DISABLE_TELEMETRY = constants.HF_HUB_DISABLE_TELEMETRY or os.environ[
        "HF_HUB_DISABLE_TELEMETRY"].strip().lower() in _TRUE
    if not os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT", "").strip():
        constants.HF_HUB_DOWNLOAD_TIMEOUT = timeout_s()  # the wait for each read of a file download

    session = get_session()
    session.timeout = timeout_s()
    guard_stalls(session, timeout_s)


# ---------------------------------------------------------------- names t5peek accepts from users and the Hub

_BAD_REVISION = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|//|@\{")


def validate_revision(revision: str | None) -> None:
    """A usage error unless `revision` is a valid git branch, tag or commit name (git check-ref-format): it is
    also a file name in the cache (refs/<revision>), so '..' or a leading '/' would lead outside it."""
    if revision is None:
        return
    parts = revision.split("/")
    if (not revision or revision == "@" or _BAD_REVISION.search(revision) or revision.endswith(".")
            or any(not part or part.startswith(".") or part.endswith(".lock") for part in parts)):
        raise UsageError(f"The revision {revision!r} is not a valid branch, tag or commit name.",
                         hint="Use a branch (main), a tag (v1.0) or a commit id; a revision cannot hold '..', "
                              "spaces or any of ~^:?*[\\, nor start or end with '/' or '.'.")


def check_file_names(repo_id: str, files: list[str]) -> None:
    """Refuse a file list naming anything outside the repository: an absolute name or a '..' part."""
    for name in files:
        parts = name.replace("\\", "/").split("/")
        if not name or name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts:
            raise Refused(f"The Hub's file list for '{repo_id}' names {name!r}, which is outside the repository; "
                          "refusing to download from it.",
                          hint=f"Check HF_ENDPOINT ({endpoint()}): the Hub never lists such names.")


def validate(repo_id: str) -> None:
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except Exception as exc:  # noqa: BLE001 - HFValidationError, translated
        raise _translate(exc, repo_id, None) from exc


def _translate(exc: BaseException, repo_id: str, revision: str | None, what: str | None = None) -> BaseException:
    """A library exception as a T5PeekError; `what` names what was being downloaded (for a stalled reply)."""
    if isinstance(exc, T5PeekError):
        return exc
    stalled = stall_in(exc)
    if stalled is not None:
        return T5PeekError(f"The download of {what or 'a file of ' + repr(repo_id)} from {endpoint()} stalled: "
                           f"{stalled}.", hint=STALL_HINT)
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
    validate_revision(revision)
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
        remove_orphaned_downloads(repo_id)
        with _reporting_lock_waits():
            path = Path(hf_hub_download(repo_id, CONFIG_FILE, revision=revision, cache_dir=str(cache_dir()),
                                        endpoint=endpoint()))
    except Exception as exc:  # noqa: BLE001 - translated
        raise _translate(exc, repo_id, revision, CONFIG_FILE) from exc
    return HubConfig(path.parent, _commit_of(path.parent), from_cache=False)


def probe(repo_id: str, revision: str | None) -> str | None:
    """One HEAD request for config.json, no retry: the commit it resolves to, or a T5PeekError."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo_id, CONFIG_FILE, revision=revision, endpoint=endpoint())
    try:
        return get_hf_file_metadata(url, timeout=timeout_s()).commit_hash
    except Exception as exc:  # noqa: BLE001 - translated
        stalled = stall_in(exc)
        if stalled is not None:  # unreachable in effect: the cache is used when it can be
            raise HubUnreachable(f"The Hugging Face Hub at {endpoint()} stalled: {stalled}.",
                                 hint=STALL_HINT) from exc
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


# ---------------------------------------------------------------- snapshots: complete, or completed

def _repo_folder(repo_id: str) -> Path:
    return cache_dir() / ("models--" + repo_id.replace("/", "--"))


def _listing_path(repo_id: str, commit: str) -> Path:
    return _repo_folder(repo_id) / ".t5peek" / f"{commit}.json"


def listed_files(repo_id: str, commit: str | None) -> list[str] | None:
    """The repo's file list at `commit`, as kept by an earlier download; None when none was kept."""
    if commit is None:
        return None
    try:
        files = json.loads(_listing_path(repo_id, commit).read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        return None
    return files


def _keep_listing(repo_id: str, commit: str, files: list[str]) -> None:
    """Keep the file list of a commit (which never changes) beside its cache entry; best effort, as a cache that
    cannot be written only costs a request next time."""
    path = _listing_path(repo_id, commit)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"commit": commit, "files": sorted(files)}), encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        pass


def missing_files(folder: Path, files: list[str], patterns: list[str]) -> list[str]:
    """The files of the list that match `patterns` and are not in the snapshot `folder`."""
    from huggingface_hub.utils import filter_repo_objects

    return [name for name in filter_repo_objects(files, allow_patterns=patterns) if not (folder / name).is_file()]


def remove_orphaned_downloads(repo_id: str) -> list[Path]:
    """Remove the partial blobs (`blobs/*.incomplete`) that a killed download of `repo_id` left behind.

    huggingface_hub writes each download to a file of its own, under a lock named after the blob
    (`.locks/models--org--name/<blob>.lock`), and removes the file when the download fails or is interrupted; only
    a process killed outright (SIGTERM, SIGKILL, power loss) leaves it, and nothing ever resumes it. A partial blob
    whose lock is free belongs to no running download, so it is removed while the lock is held; one whose lock is
    taken is another process's download in progress, and is left alone."""
    from filelock import FileLock, Timeout

    repo = _repo_folder(repo_id)
    removed = []
    for partial in sorted((repo / "blobs").glob("*.incomplete")):
        lock = cache_dir() / ".locks" / repo.name / f"{partial.name.split('.')[0]}.lock"
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(lock), timeout=0, mode=0o664):
                partial.unlink(missing_ok=True)
                removed.append(partial)
        except (Timeout, OSError, NotImplementedError):
            continue  # in use, or a cache this process cannot change: left as it is
    return removed


def fetch_snapshot(repo_id: str, revision: str | None, folder: Path, patterns: list[str], usable,
                   what: str = "files") -> Path:
    """The snapshot of `folder`'s commit with every file of the repo that matches `patterns`.

    Complete (no request): the repo's file list is kept from an earlier download, every listed file matching
    `patterns` is in `folder`, and `usable(folder)`. Otherwise the missing files are downloaded, the list first,
    so that an interrupted download is completed by the next run. Offline, a snapshot that is incomplete but
    `usable` is used as it is (`what` names the files in the message when it is not).

    The files come one after the other in this thread, not through snapshot_download's thread pool: Ctrl-C then
    stops a download between two chunks, where the pool would first wait for every file in flight to finish."""
    commit = _commit_of(folder)
    files = listed_files(repo_id, commit)
    if files is not None and not missing_files(folder, files, patterns) and usable(folder):
        return folder
    if offline_requested():
        if usable(folder):
            return folder
        raise ModelNotFound(f"The {what} of '{repo_id}' are not all in the local Hugging Face cache, and the Hub "
                            "is not being asked (offline).", hint="Run once online to download them.")
    _prepare()
    from huggingface_hub import HfApi, hf_hub_download

    try:
        commit = probe(repo_id, commit or revision) or commit  # one HEAD: says at once when the Hub does not answer
    except HubUnreachable:
        if not usable(folder):
            raise  # says how the Hub failed (unreachable, stalled), where "offline" would mislead
        return folder  # as for config.json: the cache, as it is, when the Hub does not answer
    if commit != _commit_of(folder):
        files = listed_files(repo_id, commit)
    at = commit or revision
    name = None
    try:
        if files is None:
            files = HfApi(endpoint=endpoint()).list_repo_files(repo_id, revision=at)
            check_file_names(repo_id, files)
            if commit is not None:
                _keep_listing(repo_id, commit, files)
        snapshot = folder if commit is None or commit == _commit_of(folder) else (
            _repo_folder(repo_id) / "snapshots" / commit)
        remove_orphaned_downloads(repo_id)
        with _reporting_lock_waits():
            for name in missing_files(snapshot, files, patterns):
                path = Path(hf_hub_download(repo_id, name, revision=at, cache_dir=str(cache_dir()),
                                            endpoint=endpoint()))
                snapshot = path.parents[len(Path(name).parts) - 1]
        return snapshot
    except Exception as exc:  # noqa: BLE001 - translated
        raise _translate(exc, repo_id, revision, name or f"the file list of '{repo_id}'") from exc
