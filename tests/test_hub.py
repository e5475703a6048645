"""Hub ids the way users run them: the installed `t5peek` in a fresh process, against a loopback Hub.

Every test here starts `t5peek` as a new process (no shared import state), with HF_ENDPOINT on a server of
the test's own and a network guard in the child that records any other connection.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import assert_known_outcome, run_t5peek, stderr_until
from support.loophub import closed_port

from sparse_checkpoint import FLAN_T5_BASE, FLAN_T5_XXL, write_sparse_checkpoint  # noqa: E402

pytestmark = pytest.mark.slow  # the Hub path through a loopback server, hangs and timeouts included

FLAN_T5_BASE_PARAMS = 247_577_856
FLAN_T5_XXL_PARAMS = 11_135_332_352
PINNED = "0123456789abcdef0123456789abcdef01234567"
PROMPT = "translate English to German : the house is small"


@pytest.fixture(scope="module")
def flan_t5_base(tmp_path_factory) -> Path:
    return write_sparse_checkpoint(tmp_path_factory.mktemp("hub") / "flan-t5-base", FLAN_T5_BASE)


@pytest.fixture(scope="module")
def flan_t5_xxl(tmp_path_factory) -> Path:
    return write_sparse_checkpoint(tmp_path_factory.mktemp("hub") / "flan-t5-xxl", FLAN_T5_XXL, shards=5,
                                   dtype="bfloat16")


def weights_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def t5peek(hub, *args, also_allowed=(), **kwargs):
    return run_t5peek(*args, allowed_ports=(hub.port, *also_allowed), **kwargs)


# ----------------------------------------------------------------------------- headers only


def test_default_model_info_reads_headers_only(loophub, flan_t5_base):
    """`t5peek info` with no argument: google/flan-t5-base, the path every new user takes first."""
    loophub.add_repo("google/flan-t5-base", flan_t5_base)
    run = t5peek(loophub, "info", "--json")
    assert_known_outcome(run, 0)
    record = run.json()
    assert record["model"] == "google/flan-t5-base"
    assert record["total"] == FLAN_T5_BASE_PARAMS
    assert record["head"] == "untied"
    assert loophub.body_bytes < 0.01 * weights_bytes(flan_t5_base)


def test_arch_on_a_hub_id_reads_headers_only(loophub, flan_t5_base):
    loophub.add_repo("google/flan-t5-base", flan_t5_base)
    run = t5peek(loophub, "arch", "google/flan-t5-base", "--json")
    assert_known_outcome(run, 0)
    assert run.json()["total"] == FLAN_T5_BASE_PARAMS
    assert loophub.body_bytes < 0.01 * weights_bytes(flan_t5_base)


def test_params_on_a_sharded_11b_checkpoint_reads_headers_only(loophub, flan_t5_xxl):
    loophub.add_repo("google/flan-t5-xxl", flan_t5_xxl)
    run = t5peek(loophub, "params", "google/flan-t5-xxl", "--json")
    assert_known_outcome(run, 0)
    record = run.json()
    assert record["total"] == FLAN_T5_XXL_PARAMS
    assert record["counted_from"] == "safetensors headers"
    assert loophub.body_bytes < 0.01 * weights_bytes(flan_t5_xxl)
    human = t5peek(loophub, "params", "google/flan-t5-xxl")
    assert_known_outcome(human, 0)
    assert f"{FLAN_T5_XXL_PARAMS:,}" in human.stdout


def test_config_only_count_follows_tie_word_embeddings(loophub, flan_t5_base):
    """Offline with only config.json cached: the three commands agree on flan-t5-base's published count."""
    loophub.add_repo("google/flan-t5-base", flan_t5_base)
    assert_known_outcome(t5peek(loophub, "info", "google/flan-t5-base"), 0)  # caches config.json only
    params = t5peek(loophub, "params", "google/flan-t5-base", "--offline", "--json")
    arch = t5peek(loophub, "arch", "google/flan-t5-base", "--offline", "--json")
    info = t5peek(loophub, "info", "google/flan-t5-base", "--offline", "--json")
    for run in (params, arch, info):
        assert_known_outcome(run, 0)
    assert params.json()["counted_from"] == "config only"
    assert params.json()["total"] == FLAN_T5_BASE_PARAMS
    assert arch.json()["total"] == FLAN_T5_BASE_PARAMS
    assert info.json()["total"] == FLAN_T5_BASE_PARAMS
    assert info.json()["head"] == "untied"


def test_budget_reads_headers_only(loophub, flan_t5_base):
    """budget on a Hub id: config.json and a few KB of safetensors header, never the weights."""
    loophub.add_repo("google/flan-t5-base", flan_t5_base)
    run = t5peek(loophub, "budget", "google/flan-t5-base", "--batch", "8", "--source", "512", "--json")
    assert_known_outcome(run, 0)
    assert run.json()["parameters"] == FLAN_T5_BASE_PARAMS
    assert loophub.body_bytes < 1_000_000, loophub.paths()


# ----------------------------------------------------------------------------- full downloads


@pytest.mark.parametrize("command", ["trace", "generate", "lens", "attend"])
def test_weights_download_once_then_no_request(loophub, tiny_t5, command):
    loophub.add_repo("acme/tiny-t5", tiny_t5)
    extra = {"trace": ["-n", "2"], "attend": ["--encoder"]}.get(command, ["--max-new-tokens", "2"])
    first = t5peek(loophub, command, "-m", "acme/tiny-t5", PROMPT, *extra)
    assert_known_outcome(first, 0)
    downloaded = [p for p in loophub.paths() if p.startswith("GET ") and "/resolve/" in p and "(206)" not in p]
    assert any(p.endswith("/model.safetensors") for p in downloaded)
    assert len(downloaded) == len(set(downloaded)), "a file was downloaded twice"
    loophub.reset_counts()
    again = t5peek(loophub, command, "-m", "acme/tiny-t5", PROMPT, *extra)
    assert_known_outcome(again, 0)
    if command in ("generate", "lens"):
        assert again.stdout == first.stdout
    assert loophub.paths() == []
    offline = t5peek(loophub, command, "-m", "acme/tiny-t5", PROMPT, *extra, env={"HF_HUB_OFFLINE": "1"})
    assert_known_outcome(offline, 0)
    assert loophub.paths() == []


def test_offline_flag_opens_no_connection(loophub, tiny_t5):
    loophub.add_repo("acme/tiny-t5", tiny_t5)
    assert_known_outcome(t5peek(loophub, "generate", "-m", "acme/tiny-t5", PROMPT, "--max-new-tokens", "1"), 0)
    loophub.reset_counts()
    run = run_t5peek("generate", "-m", "acme/tiny-t5", PROMPT, "--max-new-tokens", "1", "--offline",
                     allowed_ports=())  # the guard refuses even the loopback Hub
    assert_known_outcome(run, 0)
    assert loophub.paths() == []


def test_sharded_checkpoint_downloads_and_runs(loophub, tiny_t5_sharded):
    loophub.add_repo("acme/tiny-t5-sharded", tiny_t5_sharded)
    run = t5peek(loophub, "generate", "-m", "acme/tiny-t5-sharded", PROMPT, "--max-new-tokens", "2", "--json")
    assert_known_outcome(run, 0)
    shards = {p for p in loophub.paths() if p.startswith("GET ") and p.endswith(".safetensors")}
    assert len(shards) == len(list(tiny_t5_sharded.glob("*.safetensors"))) > 1


def test_pinned_revision_is_used_and_named(loophub, tiny_t5, tmp_path):
    newer = tmp_path / "newer"
    shutil.copytree(tiny_t5, newer)
    config = json.loads((newer / "config.json").read_text())
    config["task_specific_params"] = {"newer": {"prefix": "only on main: "}}
    (newer / "config.json").write_text(json.dumps(config))
    loophub.add_repo("acme/tiny-t5", tiny_t5, commit=PINNED, branch=None)
    loophub.add_repo("acme/tiny-t5", newer, commit="f" * 40)
    pinned = t5peek(loophub, "info", "acme/tiny-t5", "--revision", PINNED, "--json")
    assert_known_outcome(pinned, 0)
    assert pinned.json()["commit"] == PINNED
    assert pinned.json()["task_prefixes"] == {}
    human = t5peek(loophub, "info", "acme/tiny-t5", "--revision", PINNED)
    assert_known_outcome(human, 0)
    assert PINNED[:12] in human.stdout
    main = t5peek(loophub, "info", "acme/tiny-t5", "--json")
    assert_known_outcome(main, 0)
    assert main.json()["commit"] == "f" * 40
    assert main.json()["task_prefixes"] == {"newer": "only on main: "}


# ----------------------------------------------------------------------------- the Hub's error replies


def test_repo_not_found(loophub):
    run = t5peek(loophub, "info", "acme/no-such-model")
    assert_known_outcome(run, 1, "no model 'acme/no-such-model'")


def test_gated_repo(loophub, tiny_t5):
    loophub.add_repo("acme/gated", tiny_t5, gated=True)
    run = t5peek(loophub, "params", "acme/gated")
    assert_known_outcome(run, 1, "gated")


def test_revision_not_found(loophub, tiny_t5):
    loophub.add_repo("acme/tiny-t5", tiny_t5)
    run = t5peek(loophub, "arch", "acme/tiny-t5", "--revision", "v9")
    assert_known_outcome(run, 1, "revision 'v9' does not exist")


def test_not_a_transformers_repo(loophub, tmp_path):
    (tmp_path / "readme-only").mkdir()
    (tmp_path / "readme-only" / "README.md").write_text("hello")
    loophub.add_repo("acme/readme-only", tmp_path / "readme-only")
    run = t5peek(loophub, "info", "acme/readme-only")
    assert_known_outcome(run, 1, "no config.json")


def test_server_error_is_not_called_offline(loophub, tiny_t5):
    loophub.add_repo("acme/tiny-t5", tiny_t5)
    loophub.mode = "error:500"
    run = t5peek(loophub, "info", "acme/tiny-t5")
    assert_known_outcome(run, 1, "HTTP 500")
    assert "offline" not in run.stderr.split("hint:")[0]
    assert run.seconds < 15


def test_the_slip_trace_demo_is_caught_before_any_request(loophub):
    run = t5peek(loophub, "trace", "demo")
    assert_known_outcome(run, 2, "did you mean `-m demo`")
    assert loophub.paths() == []


# ----------------------------------------------------------------------------- a network that fails


def test_refused_connection_uncached(tmp_path):
    port = closed_port()
    run = run_t5peek("info", "acme/tiny-t5", env={"HF_ENDPOINT": f"http://127.0.0.1:{port}"}, allowed_ports=(port,))
    assert_known_outcome(run, 1, "cannot reach the hugging face hub", "connection refused")
    assert "offline" not in run.stderr.split("hint:")[0]
    assert run.seconds < 15


@pytest.mark.slow
def test_hanging_hub_gives_up_within_15_s(loophub):
    loophub.mode = "hang"
    run = t5peek(loophub, "info", "acme/tiny-t5", env={"T5PEEK_HUB_TIMEOUT": "",  # the default timeout
                                                       "HF_HUB_DISABLE_TELEMETRY": ""})
    assert_known_outcome(run, 1, "cannot reach the hugging face hub", "no answer")
    assert run.seconds < 15


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hang", "close", "refuse"])
def test_cached_model_survives_a_failing_hub(loophub, tiny_t5, mode):
    loophub.add_repo("acme/tiny-t5", tiny_t5)
    assert_known_outcome(t5peek(loophub, "generate", "-m", "acme/tiny-t5", PROMPT, "--max-new-tokens", "1"), 0)
    env, port = {"T5PEEK_HUB_TIMEOUT": ""}, closed_port()
    if mode == "refuse":
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{port}"
    else:
        loophub.mode = mode
    plain = t5peek(loophub, "generate", "-m", "acme/tiny-t5", PROMPT, "--max-new-tokens", "1", env=env)
    assert_known_outcome(plain, 0)  # the cache is used without asking
    refresh = t5peek(loophub, "generate", "-m", "acme/tiny-t5", PROMPT, "--max-new-tokens", "1", "--refresh",
                     env=env, also_allowed=(port,))
    assert_known_outcome(refresh, 0, "cannot reach the hugging face hub", "using the cached copy")
    assert refresh.seconds < 15 + plain.seconds


# ----------------------------------------------------------------------------- a hostile cache


def _lock_of(hub, repo_id: str, cache: Path) -> Path:
    """The lock file huggingface_hub takes while it downloads config.json (named after the file's ETag)."""
    import urllib.request

    request = urllib.request.Request(f"{hub.url}/{repo_id}/resolve/main/config.json", method="HEAD")
    with urllib.request.urlopen(request, timeout=5) as reply:
        etag = (reply.headers.get("X-Linked-Etag") or reply.headers["ETag"]).strip('"')
    hub.reset_counts()
    return cache / ".locks" / f"models--{repo_id.replace('/', '--')}" / f"{etag}.lock"


@pytest.mark.installed
def test_a_held_cache_lock_is_reported_and_ctrl_c_ends_the_wait(loophub, tiny_t5, tmp_path):
    import os
    import signal
    import subprocess
    import time

    from filelock import FileLock

    loophub.add_repo("acme/tiny-t5", tiny_t5)
    cache = tmp_path / "cache"
    lock_path = _lock_of(loophub, "acme/tiny-t5", cache)
    lock_path.parent.mkdir(parents=True)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": loophub.url}
    with FileLock(str(lock_path)):  # another process downloading the same file
        child = subprocess.Popen([shutil.which("t5peek"), "info", "acme/tiny-t5"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            lines, reader = stderr_until(child, "waiting for it", 30)
            said = "".join(lines)
            assert "another process is downloading into the cache" in said, said
            assert "Ctrl-C" in said and "Still waiting" not in said
            interrupted = time.monotonic()
            child.send_signal(signal.SIGINT)
            child.wait(timeout=10)
            assert time.monotonic() - interrupted < 3
            reader.join(timeout=5)
            said = "".join(lines)
            assert child.returncode == 130, said
            assert "interrupted" in said and "Traceback" not in said
        finally:
            child.kill()
            child.wait()


@pytest.mark.installed
def test_ctrl_c_stops_a_weight_download_at_once(loophub, tiny_t5, tmp_path):
    """The weights arrive slowly (20 KB/s, about 9 s for this file): Ctrl-C in the middle ends t5peek within a
    second, where snapshot_download's thread pool waited for the file to finish."""
    import os
    import signal
    import subprocess
    import threading
    import time

    loophub.add_repo("acme/tiny-t5", tiny_t5)
    loophub.throttle["model.safetensors"] = 20_000
    cache = tmp_path / "cache"
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": loophub.url, "T5PEEK_HUB_TIMEOUT": "30"}
    child = subprocess.Popen([shutil.which("t5peek"), "generate", "-m", "acme/tiny-t5", PROMPT], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(child.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not list(cache.rglob("*.incomplete")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(cache.rglob("*.incomplete")), "the weight download never started"
        time.sleep(0.5)
        interrupted = time.monotonic()
        child.send_signal(signal.SIGINT)
        child.wait(timeout=30)
        waited = time.monotonic() - interrupted
        reader.join(timeout=5)
        said = "".join(lines)
        assert child.returncode == 130, said
        assert waited < 1.5, f"Ctrl-C took {waited:.1f} s"
        assert "interrupted" in said and "Traceback" not in said
        assert not list(cache.rglob("model.safetensors")), "the download was not cut short"
    finally:
        child.kill()
        child.wait()


def test_a_cache_that_cannot_be_written_is_one_line(loophub, tiny_t5, tmp_path):
    loophub.add_repo("acme/tiny-t5", tiny_t5)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache should be")
    run = t5peek(loophub, "info", "acme/tiny-t5", env={"HF_HUB_CACHE": str(blocker / "hub")})
    assert_known_outcome(run, 1, "Cannot write to the Hugging Face cache", "HF_HUB_CACHE")


@pytest.mark.parametrize("code, words", [("EROFS", "Cannot write to the Hugging Face cache"),
                                         ("EACCES", "Cannot write to the Hugging Face cache"),
                                         ("ENOSPC", "No space left")])
def test_cache_write_failures_are_named(code, words):
    import errno
    import os

    from t5peek import hub

    error = OSError(getattr(errno, code), os.strerror(getattr(errno, code)), "/cache/models--a--b/blobs/x")
    translated = hub._translate(error, "a/b", None)
    assert words in translated.message and "/cache/models--a--b" in translated.message
    assert translated.hint and "HF_HUB_CACHE" in translated.hint


def test_only_the_models_files_are_asked_for(loophub, tiny_t5):
    """huggingface_hub fetches a registry of AI agents before its first request unless telemetry is off: t5peek
    turns it off, so that every request is for the model."""
    loophub.add_repo("acme/tiny-t5", tiny_t5)
    # as users run it: the test session's conftest turns telemetry off for everything else
    assert_known_outcome(t5peek(loophub, "info", "acme/tiny-t5", env={"HF_HUB_DISABLE_TELEMETRY": ""}), 0)
    asked = loophub.paths()
    assert asked and all("acme/tiny-t5" in path for path in asked), asked
