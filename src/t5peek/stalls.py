"""Replies that stall: every connection huggingface_hub opens, held to one rule.

A reply must start within the limit (T5PEEK_HUB_TIMEOUT seconds), and then bring at least STALL_MIN_BYTES_PER_S
over each such window until it ends. So a small reply (a HEAD, config.json, a file list) arrives whole within
the limit, while a weight file may take as long as it needs as long as it keeps moving. A reply that never starts
is a read timeout ("no answer"); one that slows below the rule raises HubStalled, which hub.py names.
"""

from __future__ import annotations

import importlib
import time
from typing import Callable

STALL_MIN_BYTES_PER_S = 1024
STALL_HINT = ("The Hub or a proxy on the way stopped sending; try again later. On a slow connection, raise "
              "T5PEEK_HUB_TIMEOUT (seconds).")


class HubStalled(Exception):
    """Raised from inside the HTTP library when a reply stalls; translated with the name of what was asked."""


class _StallGuard:
    """One connection of the HTTP library, its reads held to the rule in the module docstring.

    Each request (a write) starts a window of T5PEEK_HUB_TIMEOUT seconds, and every read waits at most until
    the window ends. At the end of a window, a reply that has not started is a read timeout ("no answer", as
    before); a reply that brought less than STALL_MIN_BYTES_PER_S per second in the window has stalled; any
    other reply gets a new window."""

    def __init__(self, stream, read_timeout: type[Exception], limit_s: Callable[[], float]):
        self._stream = stream
        self._read_timeout = read_timeout
        self._limit_s = limit_s
        self._start_request()

    def _start_request(self) -> None:
        self._limit = self._limit_s()
        self._window_end = time.monotonic() + self._limit
        self._window_bytes = self._received = 0

    def write(self, buffer, timeout=None) -> None:
        self._start_request()
        self._stream.write(buffer, timeout)

    def read(self, max_bytes: int, timeout=None) -> bytes:
        while True:
            left = self._window_end - time.monotonic()
            if left <= 0:
                self._next_window()
                continue
            wait = left if timeout is None else min(timeout, left)
            try:
                data = self._stream.read(max_bytes, wait)
            except self._read_timeout:
                if wait < left:  # the library's own, shorter timeout
                    raise
                continue  # the window ended: judged above
            self._window_bytes += len(data)
            self._received += len(data)
            return data

    def _next_window(self) -> None:
        if self._received == 0:
            raise self._read_timeout(f"no answer within {self._limit:g} s")
        if self._window_bytes < self._limit * STALL_MIN_BYTES_PER_S:
            raise HubStalled(f"only {self._window_bytes} bytes came in {self._limit:g} s (T5PEEK_HUB_TIMEOUT)")
        self._window_end = time.monotonic() + self._limit
        self._window_bytes = 0

    def start_tls(self, *args, **kwargs):
        return _StallGuard(self._stream.start_tls(*args, **kwargs), self._read_timeout, self._limit_s)

    def close(self) -> None:
        self._stream.close()

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _GuardedBackend:
    """The network backend of a connection pool, handing out guarded connections."""

    def __init__(self, backend, read_timeout: type[Exception], limit_s: Callable[[], float]):
        self._backend = backend
        self._read_timeout = read_timeout
        self._limit_s = limit_s

    def connect_tcp(self, *args, **kwargs):
        return _StallGuard(self._backend.connect_tcp(*args, **kwargs), self._read_timeout, self._limit_s)

    def connect_unix_socket(self, *args, **kwargs):
        return _StallGuard(self._backend.connect_unix_socket(*args, **kwargs), self._read_timeout,
                           self._limit_s)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def guard_stalls(session, limit_s: Callable[[], float]) -> None:
    """Put a _StallGuard under every connection `session` (huggingface_hub's httpx or httpx2 client) opens,
    with windows of `limit_s()` seconds.

    The pools are reached through private attributes of httpx/httpcore (the same in both generations); where a
    version lacks them, requests keep only their per-read timeout."""
    core_name = "httpcore2" if type(session).__module__.startswith("httpx2") else "httpcore"
    try:
        read_timeout = importlib.import_module(core_name).ReadTimeout
    except (ImportError, AttributeError):
        return
    transports = [getattr(session, "_transport", None), *(getattr(session, "_mounts", None) or {}).values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, _GuardedBackend):
            pool._network_backend = _GuardedBackend(backend, read_timeout, limit_s)


def stall_in(exc: BaseException | None) -> HubStalled | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, HubStalled):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
