"""Loaded into every t5peek process a test starts (PYTHONPATH): connections go only to the test's own Hub.

Allowed: 127.0.0.1 on the ports in T5PEEK_TEST_ALLOWED_PORTS. Anything else is refused and written to
T5PEEK_TEST_NETLOG, which the test reads: a refusal the program swallowed still fails the test.
"""

import os
import socket

_ALLOWED_PORTS = {int(p) for p in os.environ.get("T5PEEK_TEST_ALLOWED_PORTS", "").split(",") if p.strip()}
_LOG = os.environ.get("T5PEEK_TEST_NETLOG")
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _record(what: str) -> None:
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(what + "\n")


def _allowed(address) -> bool:
    if isinstance(address, (str, bytes)):  # unix sockets
        return True
    host, port = address[0], address[1]
    return host in _LOOPBACK and port in _ALLOWED_PORTS


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _allowed(address):
        _record(f"connect {address!r}")
        raise ConnectionRefusedError(111, f"test network guard: connection to {address!r} refused")
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _allowed(address):
        _record(f"connect_ex {address!r}")
        return 111
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if host not in _LOOPBACK and host is not None:
        name = host.decode() if isinstance(host, bytes) else str(host)
        _record(f"getaddrinfo {name}")
        raise socket.gaierror(socket.EAI_NONAME, f"test network guard: lookup of {name} refused")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.getaddrinfo = _guarded_getaddrinfo
