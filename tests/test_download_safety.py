"""Downloads that are interrupted, fail, stall or are pointed outside the cache never leave it broken.

In-process against the loopback Hub (tests/support/loophub.py), except where a real process must die: a download
killed outright runs the installed `t5peek`.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers import assert_clean_error, json_output, run_cli, t5peek_script
from t5peek import hub, loading
from t5peek.errors import T5PeekError, UsageError

pytestmark = pytest.mark.slow  # interrupted, stalled and killed downloads against a loopback Hub

COMMIT = "0123456789abcdef0123456789abcdef01234567"
PROMPT = "translate English to German : the house is small"
REPO = "acme/tiny-t5"


def _partial_copy(source: Path, target: Path, names: list[str]) -> Path:
    target.mkdir()
    for name in names:
        shutil.copy(source / name, target / name)
    return target


def _downloads(hub_) -> list[str]:
    """The files whose whole body was asked for (GET, not a Range read of a header)."""
    return [p.rsplit("/", 1)[1] for p in hub_.paths() if p.startswith("GET ") and "/resolve/" in p
            and "(206)" not in p]


@contextlib.contextmanager
def released_after(hub_, seconds: float):
    """Let the loopback Hub end its drips after `seconds`, so that a client that would wait for ever (the code
    before the fix) fails the test instead of hanging it."""
    timer = threading.Timer(seconds, hub_.release)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


# ----------------------------------------------------------------------------- 1. complete snapshots


@pytest.mark.parametrize("extra", [[], ["--refresh"]], ids=["plain", "refresh"])
def test_a_snapshot_missing_tokenizer_files_is_completed(loophub, hub_cache, tiny_t5, tmp_path, extra):
    """What Ctrl-C between two tokenizer files left: weights, config and tokenizer_config.json, no tokenizer.json.
    The tokenizer check used to accept any one tokenizer file, so every later run failed; now the files the repo
    lists and the snapshot lacks are downloaded (and only those), and then no request is made."""
    loophub.add_repo(REPO, tiny_t5, commit=COMMIT)
    partial = _partial_copy(tiny_t5, tmp_path / "partial",
                            ["config.json", "generation_config.json", "model.safetensors", "tokenizer_config.json"])
    snapshot = hub_cache(REPO, partial, COMMIT)
    first = json_output(run_cli("generate", "-m", REPO, PROMPT, "-n", "2", "--json", *extra))
    assert (snapshot / "tokenizer.json").is_file()
    assert _downloads(loophub) == ["tokenizer.json"]
    loophub.reset_counts()
    again = json_output(run_cli("generate", "-m", REPO, PROMPT, "-n", "2", "--json"))
    assert again["output_ids"] == first["output_ids"]
    assert loophub.paths() == []


@pytest.mark.parametrize("failure", [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left on device")],
                         ids=["ctrl-c", "disk-full"])
def test_an_interrupted_tokenizer_download_is_completed_by_the_next_run(loophub, tiny_t5, monkeypatch, failure):
    import huggingface_hub

    loophub.add_repo(REPO, tiny_t5)
    real_download = huggingface_hub.hf_hub_download

    def fails_on_the_last_tokenizer_file(repo_id, filename, **kwargs):
        if filename == "tokenizer_config.json":
            raise failure
        return real_download(repo_id, filename, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fails_on_the_last_tokenizer_file)
    resolved = loading.resolve_model(REPO)
    with pytest.raises((KeyboardInterrupt, T5PeekError)):
        loading.download_tokenizer(resolved)
    assert (resolved.folder / "tokenizer.json").is_file()
    assert not (resolved.folder / "tokenizer_config.json").exists()

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", real_download)
    tokenizer = loading.load_tokenizer(loading.download_tokenizer(loading.resolve_model(REPO)))
    assert tokenizer("the house is small").input_ids
    loophub.reset_counts()
    loading.load_tokenizer(loading.download_tokenizer(loading.resolve_model(REPO)))
    assert loophub.paths() == []


def test_a_file_removed_from_a_complete_snapshot_is_used_offline_and_downloaded_online(loophub, tiny_t5,
                                                                                        monkeypatch):
    import huggingface_hub.constants

    loophub.add_repo(REPO, tiny_t5)
    json_output(run_cli("generate", "-m", REPO, PROMPT, "-n", "1", "--json"))
    snapshot = loading.resolve_model(REPO).folder
    (snapshot / "generation_config.json").unlink()
    loophub.reset_counts()
    json_output(run_cli("generate", "-m", REPO, PROMPT, "-n", "1", "--json", "--offline"))
    assert loophub.paths() == []  # offline: usable as it is
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # --offline switched this process offline for good
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    json_output(run_cli("generate", "-m", REPO, PROMPT, "-n", "1", "--json"))
    asked = {p.rsplit("/", 1)[1] for p in loophub.paths() if "/resolve/" in p}
    assert asked == {"config.json", "generation_config.json"}  # the probe, and the missing file (its blob is kept)
    assert (snapshot / "generation_config.json").is_file()


def test_offline_a_snapshot_without_tokenizer_files_is_named(hub_cache, tiny_t5, tmp_path):
    hub_cache(REPO, _partial_copy(tiny_t5, tmp_path / "partial", ["config.json", "model.safetensors"]), COMMIT)
    result = run_cli("generate", "-m", REPO, PROMPT, "-n", "1", "--offline")
    assert_clean_error(result, 1, "tokenizer files of 'acme/tiny-t5' are not all in the local", "offline")


# ----------------------------------------------------------------------------- 2. partial blobs


def test_orphaned_partial_blobs_are_removed_unless_a_download_holds_their_lock(loophub, tiny_t5, isolated_hf_home):
    from filelock import FileLock

    loophub.add_repo(REPO, tiny_t5)
    cache = isolated_hf_home / "hub"
    blobs = cache / "models--acme--tiny-t5" / "blobs"
    blobs.mkdir(parents=True)
    orphan = blobs / f"{'1' * 64}.0a1b2c3d.incomplete"  # huggingface_hub 1.x and 2.x: one file per download
    legacy = blobs / f"{'2' * 64}.incomplete"  # older versions
    busy = blobs / f"{'3' * 64}.4e5f6a7b.incomplete"  # another process downloads it now
    for partial in (orphan, legacy, busy):
        partial.write_bytes(b"\0" * 4096)
    lock = cache / ".locks" / "models--acme--tiny-t5" / f"{'3' * 64}.lock"
    lock.parent.mkdir(parents=True)
    with FileLock(str(lock)):
        json_output(run_cli("generate", "-m", REPO, PROMPT, "-n", "1", "--json"))
        assert busy.exists()
    assert not orphan.exists() and not legacy.exists()
    assert sorted(p.name for p in blobs.glob("*.incomplete")) == [busy.name]


@pytest.mark.installed
def test_a_download_killed_outright_leaves_no_partial_blob_after_the_next_run(loophub, tiny_t5, tmp_path,
                                                                               monkeypatch):
    """SIGKILL (or SIGTERM without a handler) ends huggingface_hub before it can remove its partial file."""
    import os

    loophub.add_repo(REPO, tiny_t5)
    loophub.throttle["model.safetensors"] = 20_000  # about 9 s for the whole file
    cache = tmp_path / "cache"
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": loophub.url, "T5PEEK_HUB_TIMEOUT": "30"}
    said = tmp_path / "stderr.txt"
    with open(said, "w") as stderr:
        child = subprocess.Popen([t5peek_script(), "generate", "-m", REPO, PROMPT], env=env,
                                 stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 120
        while not list(cache.rglob("*.incomplete")) and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    assert list(cache.rglob("*.incomplete")), f"the weight download never started: {said.read_text()[-2000:]}"
    loophub.throttle.clear()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    json_output(run_cli("generate", "-m", REPO, PROMPT, "-n", "1", "--json"))
    assert not list(cache.rglob("*.incomplete"))


# ----------------------------------------------------------------------------- 3. replies that stall


def test_headers_that_drip_are_a_stall_within_the_timeout(loophub, tiny_t5, monkeypatch):
    """A status line, then one byte every 0.1 s: no read ever times out, but the reply stalls."""
    monkeypatch.setenv("T5PEEK_HUB_TIMEOUT", "1")
    loophub.add_repo(REPO, tiny_t5)
    loophub.mode = "drip:0.1"
    started = time.monotonic()
    with released_after(loophub, 20):
        result = run_cli("info", REPO)
    seconds = time.monotonic() - started
    assert_clean_error(result, 1, f"the hugging face hub at {loophub.url} stalled", "T5PEEK_HUB_TIMEOUT")
    assert seconds < 5, f"took {seconds:.1f} s"


def test_a_cached_model_is_used_when_the_hub_stalls(loophub, tiny_t5, monkeypatch):
    loophub.add_repo(REPO, tiny_t5)
    json_output(run_cli("info", REPO, "--json"))
    monkeypatch.setenv("T5PEEK_HUB_TIMEOUT", "1")
    loophub.mode = "drip:0.1"
    with released_after(loophub, 20):
        result = run_cli("info", REPO, "--refresh")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "stalled" in result.stderr and "Using the cached copy" in result.stderr


def test_a_weight_download_that_drips_is_a_stalled_download(loophub, tiny_t5, monkeypatch, isolated_hf_home):
    """The body of the weights, one byte every 0.1 s: one line naming the file and the endpoint, not a claim that
    the Hub is offline, and no partial file left."""
    monkeypatch.setenv("T5PEEK_HUB_TIMEOUT", "1")
    loophub.add_repo(REPO, tiny_t5)
    loophub.drip["model.safetensors"] = 0.1
    started = time.monotonic()
    with released_after(loophub, 30):
        result = run_cli("generate", "-m", REPO, PROMPT, "-n", "1")
    seconds = time.monotonic() - started
    assert_clean_error(result, 1, f"The download of model.safetensors from {loophub.url} stalled")
    error_line = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert "offline" not in error_line
    assert seconds < 10, f"took {seconds:.1f} s"
    assert not list(isolated_hf_home.rglob("*.incomplete"))


def test_a_slow_download_that_keeps_moving_is_not_a_stall(loophub, tiny_t5, monkeypatch):
    monkeypatch.setenv("T5PEEK_HUB_TIMEOUT", "0.5")  # the floor: 512 bytes in each half second
    loophub.add_repo(REPO, tiny_t5)
    loophub.throttle["model.safetensors"] = 200_000
    json_output(run_cli("generate", "-m", REPO, PROMPT, "-n", "1", "--json"))
    assert "model.safetensors" in _downloads(loophub)


# ----------------------------------------------------------------------------- 4. names from users and the Hub

INVALID_REVISIONS = ["../../../../X", "/main", "main/", "a//b", "a..b", "v1.lock", "has space", "a~1", "a^2", "a:b",
                     "a?", "a*", "a[0]", "back\\slash", "x@{1}", "@", ".hidden", "refs/.hidden", "tab\there",
                     "trailing.", ""]


@pytest.mark.parametrize("revision", INVALID_REVISIONS)
def test_an_invalid_revision_is_a_usage_error_before_any_request(loophub, tiny_t5, tmp_path, revision):
    loophub.add_repo(REPO, tiny_t5)
    loophub.any_revision = True  # an endpoint that would answer for any revision
    result = run_cli("info", REPO, "--revision", revision)
    assert_clean_error(result, 2, "not a valid branch, tag or commit name")
    assert loophub.paths() == []
    assert not (tmp_path / "X").exists()


@pytest.mark.parametrize("revision", ["main", "v1.0", "refs/pr/1", "refs/convert/parquet", COMMIT, "release-2024.01",
                                      "feature/x_y", "ünïcode"])
def test_valid_revisions_are_accepted(revision):
    hub.validate_revision(revision)


def test_an_invalid_revision_is_refused_by_the_api_too():
    with pytest.raises(UsageError):
        loading.resolve_model(REPO, revision="../../../../X")


@pytest.mark.parametrize("name", ["../../outside.json", "sub/../../outside.json", "/tmp/t5peek-absolute.json"])
def test_a_file_list_naming_files_outside_the_repository_is_refused(loophub, tiny_t5, isolated_hf_home, name):
    repo = loophub.add_repo(REPO, tiny_t5)
    repo.commits[repo.branches["main"]][name] = tiny_t5 / "config.json"
    result = run_cli("generate", "-m", REPO, PROMPT, "-n", "1")
    assert_clean_error(result, 3, "outside the repository")
    assert _downloads(loophub) == ["config.json"]
