"""A Hugging Face Hub on 127.0.0.1: real-format repos served over HTTP the way huggingface_hub asks for them.

It answers what huggingface_hub sends (read from its file_download, _snapshot_download, hf_api and utils/_http):

  HEAD/GET /{repo}/resolve/{revision}/{path}     X-Repo-Commit, ETag, Content-Length, Range → 206
  GET /api/models/{repo}[/revision/{revision}]    {"id", "sha", "siblings"}
  GET /api/models/{repo}/tree/{revision}[/{path}] [{"type": "file", "path", "size", "oid", "lfs"}]

and the Hub's error replies, named by X-Error-Code: RepoNotFound, GatedRepo, RevisionNotFound, EntryNotFound.
It can also misbehave on purpose: `mode = "hang"` accepts connections and never answers, `mode = "close"`
closes them without a reply, `mode = "error:500"` answers every request with that status,
`mode = "drip:0.2"` sends every reply's status line and then one byte of its headers every 0.2 s, for ever,
`throttle = {"model.safetensors": 20_000}` sends that file's body at that many bytes per second, and
`drip = {"model.safetensors": 0.2}` sends that file's body one byte every 0.2 s (a reply that stalls but never
times out a read). Whatever hangs or drips stops at `release()` or when the hub is closed.
`any_revision = True` makes every revision it does not know name the commit of `main`, as a careless mirror might.

It counts the requests it answers and the body bytes it sends, so tests can say "headers only" or "no request".
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

_FULL_HASH_LIMIT = 64 << 20  # bigger files (sparse benchmark checkpoints) get an ETag that does not read them


@dataclass
class Repo:
    repo_id: str
    commits: dict[str, dict[str, Path]]  # commit → {path in the repo → file on disk}
    branches: dict[str, str] = field(default_factory=dict)  # branch or tag → commit
    gated: bool = False

    def etag(self, commit: str, path: str) -> str:
        source = self.commits[commit][path]
        size = source.stat().st_size
        if size > _FULL_HASH_LIMIT:
            return hashlib.sha256(f"{commit}/{path}/{size}".encode()).hexdigest()
        return hashlib.sha256(source.read_bytes()).hexdigest()


@dataclass
class Request:
    method: str
    path: str
    status: int
    body_bytes: int


class LoopbackHub:
    """Start with `with LoopbackHub() as hub:`; `hub.url` is the endpoint to put in HF_ENDPOINT."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[Request] = []
        self.mode = "normal"
        self.throttle: dict[str, float] = {}  # file name in the repo → bytes per second of its body
        self.drip: dict[str, float] = {}  # file name in the repo → seconds between the single bytes of its body
        self.any_revision = False  # unknown revisions resolve to main
        self._lock = threading.Lock()
        self._stop = threading.Event()
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                hub._handle(self, body=False)

            def do_GET(self) -> None:  # noqa: N802
                hub._handle(self, body=True)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> "LoopbackHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        """End every hang and drip now (a test's last resort against a client that would wait for ever)."""
        self._stop.set()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ content

    def add_repo(self, repo_id: str, folder: Path, commit: str | None = None, gated: bool = False,
                 branch: str | None = "main") -> Repo:
        """Serve every file under `folder` as a commit of repo `repo_id`, and point `branch` at it."""
        commit = commit or hashlib.sha1(f"{repo_id}:{folder}".encode()).hexdigest()
        files = {str(p.relative_to(folder)).replace("\\", "/"): p for p in sorted(folder.rglob("*")) if p.is_file()}
        repo = self.repos.setdefault(repo_id, Repo(repo_id, {}))
        repo.commits[commit] = files
        repo.gated = repo.gated or gated
        if branch:
            repo.branches[branch] = commit
        return repo

    # ------------------------------------------------------------------ accounting

    @property
    def body_bytes(self) -> int:
        with self._lock:
            return sum(r.body_bytes for r in self.requests)

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    def paths(self) -> list[str]:
        """Each request as 'METHOD path', with ' (206)' after partial replies (Range reads of a header)."""
        with self._lock:
            return [f"{r.method} {r.path}" + (" (206)" if r.status == 206 else "") for r in self.requests]

    # ------------------------------------------------------------------ serving

    def _handle(self, handler: http.server.BaseHTTPRequestHandler, body: bool) -> None:
        if self.mode == "hang":
            self._stop.wait(120)
            handler.close_connection = True
            return
        if self.mode == "close":
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if self.mode.startswith("drip:"):
            self._drip_headers(handler, float(self.mode.split(":")[1]))
            return
        raw = urlsplit(handler.path).path  # matched before decoding: a revision's '/' comes as %2F
        path = unquote(raw)
        if self.mode.startswith("error:"):  # echoes the credentials it got, as a careless server might
            echo = f"server error (Authorization: {handler.headers.get('Authorization')})"
            self._reply(handler, int(self.mode.split(":")[1]), {"X-Error-Message": echo}, echo.encode(), body, path)
            return
        if path.startswith("/api/models/"):
            self._api(handler, raw[len("/api/models/"):], body)
        else:
            self._resolve(handler, raw.lstrip("/"), body)

    def _drip_headers(self, handler, interval: float) -> None:
        """A status line, then a header that never ends, one byte every `interval` seconds."""
        handler.close_connection = True
        try:
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            handler.wfile.flush()
            while not self._stop.wait(interval):
                handler.wfile.write(b"a")
                handler.wfile.flush()
        except OSError:
            pass

    def _api(self, handler, rest: str, body: bool) -> None:
        match = re.fullmatch(r"(?P<repo>[^/]+(?:/[^/]+)?)(?:/(?P<kind>revision|tree)/(?P<rev>[^/]+)(?:/(?P<sub>.*))?)?",
                             rest)
        match = {key: unquote(value) if value else value for key, value in match.groupdict().items()} if match else None
        rest = unquote(rest)
        repo = self.repos.get(match["repo"]) if match else None
        if repo is None:
            return self._error(handler, 404, "RepoNotFound", body, rest)
        if repo.gated:
            return self._error(handler, 401, "GatedRepo", body, rest)
        commit = self._commit(repo, match["rev"] or "main")
        if commit is None:
            return self._error(handler, 404, "RevisionNotFound", body, rest)
        if match["kind"] == "tree":
            sub = (match["sub"] or "").strip("/")
            entries = [self._tree_entry(repo, commit, p) for p in repo.commits[commit]
                       if not sub or p.startswith(sub + "/")]
            return self._json(handler, entries, body, rest)
        info = {"id": repo.repo_id, "modelId": repo.repo_id, "sha": commit, "private": False, "gated": False,
                "disabled": False, "siblings": [{"rfilename": p} for p in repo.commits[commit]]}
        config_file = repo.commits[commit].get("config.json")
        if config_file is not None:  # the Hub's model card metadata, as accelerate's estimate-memory reads it
            config = json.loads(config_file.read_text())
            info.update(library_name="transformers", config={key: config[key] for key in ("architectures", "model_type")
                                                              if key in config})
        return self._json(handler, info, body, rest)

    def _tree_entry(self, repo: Repo, commit: str, path: str) -> dict:
        size = repo.commits[commit][path].stat().st_size
        return {"type": "file", "path": path, "size": size, "oid": hashlib.sha1(path.encode()).hexdigest(),
                "lfs": {"oid": repo.etag(commit, path), "size": size, "pointerSize": 134}}

    def _resolve(self, handler, rest: str, body: bool) -> None:
        match = re.fullmatch(r"(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<file>.+)", rest)
        match = {key: unquote(value) for key, value in match.groupdict().items()} if match else None
        rest = unquote(rest)
        repo = self.repos.get(match["repo"]) if match else None
        if repo is None:
            return self._error(handler, 404, "RepoNotFound", body, rest)
        if repo.gated:
            return self._error(handler, 401, "GatedRepo", body, rest)
        commit = self._commit(repo, match["rev"])
        if commit is None:
            return self._error(handler, 404, "RevisionNotFound", body, rest)
        source = repo.commits[commit].get(match["file"])
        if source is None:
            return self._error(handler, 404, "EntryNotFound", body, rest, {"X-Repo-Commit": commit})
        size = source.stat().st_size
        etag = repo.etag(commit, match["file"])
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "X-Linked-Etag": f'"{etag}"',
                   "X-Linked-Size": str(size), "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        start, end, status = 0, size - 1, 200
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", handler.headers.get("Range", "") or "")
        if wanted:
            start = int(wanted[1])
            end = min(int(wanted[2]) if wanted[2] else size - 1, size - 1)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(0, end - start + 1)
        headers["Content-Length"] = str(length)
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        sent = 0
        rate = self.throttle.get(match["file"])
        drip = self.drip.get(match["file"])
        piece = 1 if drip else max(1, int(rate // 20)) if rate else 1 << 20
        if body:
            with open(source, "rb") as stream:
                stream.seek(start)
                while sent < length:
                    chunk = stream.read(min(piece, length - sent))
                    if rate:
                        time.sleep(len(chunk) / rate)
                    if drip and sent and self._stop.wait(drip):
                        handler.close_connection = True  # released: the client sees the reply cut short
                        break
                    if not chunk:
                        break
                    try:
                        handler.wfile.write(chunk)
                    except OSError:
                        break
                    sent += len(chunk)
        self._record(handler.command, rest, status, sent)

    def _commit(self, repo: Repo, revision: str) -> str | None:
        if revision in repo.branches:
            return repo.branches[revision]
        if revision in repo.commits:
            return revision
        return repo.branches.get("main") if self.any_revision else None

    def _error(self, handler, status: int, code: str, body: bool, path: str, extra: dict | None = None) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": code, **(extra or {})}
        self._reply(handler, status, headers, json.dumps({"error": code}).encode(), body, path)

    def _json(self, handler, value, body: bool, path: str) -> None:
        self._reply(handler, 200, {"Content-Type": "application/json"}, json.dumps(value).encode(), body, path)

    def _reply(self, handler, status: int, headers: dict, payload: bytes, body: bool, path: str) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if body:
            handler.wfile.write(payload)
        self._record(handler.command, path, status, len(payload) if body else 0)

    def _record(self, method: str, path: str, status: int, sent: int) -> None:
        with self._lock:
            self.requests.append(Request(method, path, status, sent))


def closed_port() -> int:
    """A loopback port with nothing listening: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
