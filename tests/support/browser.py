"""Headless Chromium for the page tests: the DOM after the page's scripts ran, and screenshots."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


needs_browser = pytest.mark.skipif(chromium() is None, reason="headless Chromium is not installed "
                                   "(apt-get install chromium); the browser test needs a real browser")


def browser(tmp_path: Path, *args: str, url: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    # virtual time lets the page finish inflating its maps (a promise) before the DOM is dumped
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
               "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def dump_dom(tmp_path: Path, page: Path, fragment: str = "") -> str:
    result = browser(tmp_path, "--dump-dom", url=page.as_uri() + fragment)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def png_is_not_blank(path: Path) -> bool:
    """Decode the PNG's pixel bytes (zlib, no imaging library) and check they are not all one colour."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, width = 8, b"", 0
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        chunk = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            width = struct.unpack(">I", chunk[:4])[0]
        elif kind == b"IDAT":
            idat += chunk
        offset += 12 + length
    pixels = zlib.decompress(idat)
    stride = len(pixels) // max(1, len(pixels) // (width * 4 + 1))
    rows = [pixels[i + 1:i + stride] for i in range(0, len(pixels), stride)]
    distinct = set()
    for row in rows[:: max(1, len(rows) // 200)]:
        distinct.update(row[::7])
    return len(distinct) > 8


def script_errors(dom: str) -> str | None:
    """What the page's error catcher (render/pages/shell.py) wrote on <html>, or None: no script error."""
    import re

    found = re.search(r'<html[^>]*\sdata-script-error="([^"]*)"', dom)
    return found.group(1) if found else None
