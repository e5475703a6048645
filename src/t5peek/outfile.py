"""The one writer for every file t5peek writes (`generate --html`, and every report to come).

What is at the named path decides how it is written:

- nothing, or a regular file: the bytes go to a temporary file beside it, which is then renamed over it, so a
  failed write leaves the old file (or none), never half of one. A new file gets the umask's mode (0644 under
  022), a replaced file keeps its mode and, where allowed, its owner.
- a symbolic link: the same, at the file the link points to; the link stays.
- a character device, a FIFO or a socket (`/dev/stdout`, `/dev/null`, `>(…)`, `mkfifo`): written directly,
  with no temporary file and no rename, so the node stays what it is.
- a folder, a block device, a name ending in '/', anything under /proc or /sys: refused as a usage error by
  `check_target`, which commands call before any weights load.

Every write error is one line (exit 1), with the temporary file removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from t5peek.errors import T5PeekError, UsageError

_KERNEL_FOLDERS = ("/proc", "/sys")


@dataclass(frozen=True)
class Target:
    """Where an output file goes: `path` as the user named it, `final` the file actually written."""

    option: str  # e.g. "--html", for messages
    path: Path  # as named, with ~ expanded
    final: Path  # the file written: a symbolic link's target, or the node itself
    kind: str  # "file" (absent or regular), "device" (character device), "fifo" or "socket"


def check_target(name: str | os.PathLike, option: str) -> Target:
    """Where `name` would be written, or a UsageError saying why it cannot be, checked before the run starts."""
    raw = os.fspath(name)
    if raw == "":
        raise UsageError(f"{option} needs a file name such as report.html.")
    if raw.endswith(os.sep) or raw.endswith(os.sep + "."):
        raise UsageError(f"{option} '{raw}' names a folder; give a file name such as report.html.")
    expanded = os.path.expanduser(raw)
    if expanded.startswith("~"):
        user = expanded[1:].split(os.sep, 1)[0]
        raise UsageError(f"{option} '{raw}': there is no user '{user}' whose home '~{user}' could stand for.")
    path = Path(expanded)
    if _under_kernel_folder(Path(os.path.abspath(path))):
        raise _kernel_folder_error(option, raw, Path(os.path.abspath(path)))
    kind = _kind(path, option, raw)
    final = _final(path, kind)
    if _under_kernel_folder(final):
        raise _kernel_folder_error(option, raw, final)
    if kind == "file":
        parent = final.parent
        if not parent.is_dir():
            raise UsageError(f"{option} '{raw}': the folder '{parent}' does not exist.")
        if not os.access(parent, os.W_OK | os.X_OK) or (final.exists() and not os.access(final, os.W_OK)):
            raise UsageError(f"{option} '{raw}': cannot write there (permission denied).")
    elif kind != "socket" and not os.access(path, os.W_OK):
        raise UsageError(f"{option} '{raw}': cannot write there (permission denied).")
    return Target(option, path, final, kind)


def write_target(target: Target, data: bytes) -> None:
    """Write `data` to `target` whole, by the rule for what is there now (it may have changed since the check)."""
    try:
        kind = _kind(target.path, target.option, os.fspath(target.path))
        if kind == "file":
            _replace(_final(target.path, kind), data)
        elif kind == "socket":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.connect(os.fspath(target.path))
                connection.sendall(data)
        else:
            descriptor = os.open(target.path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                _write_all(descriptor, data)
            finally:
                os.close(descriptor)
    except UsageError as exc:
        raise T5PeekError(exc.message) from None
    except OSError as exc:
        raise T5PeekError(f"Cannot write {target.option} '{target.path}': "
                          f"{exc.strerror or exc}.") from None


def _under_kernel_folder(path: Path) -> str | None:
    text = os.fspath(path)
    return next((folder for folder in _KERNEL_FOLDERS if text == folder or text.startswith(folder + "/")), None)


def _kernel_folder_error(option: str, raw: str, path: Path) -> UsageError:
    return UsageError(f"{option} '{raw}' is under {_under_kernel_folder(path)}, which holds the kernel's files, "
                      "not reports; give a file name such as report.html.")


def _final(path: Path, kind: str) -> Path:
    """The file a regular write lands in: through symbolic links to their target; nodes are written as named
    (the kernel follows /dev/stdout's link to whatever fd 1 is)."""
    return Path(os.path.realpath(path)) if kind == "file" else path


def _kind(path: Path, option: str, raw: str) -> str:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "file"
    except OSError as exc:
        raise UsageError(f"{option} '{raw}': {exc.strerror or exc}.") from None
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        raise UsageError(f"{option} '{raw}' is a folder; give a file name such as report.html.")
    if stat.S_ISCHR(mode):
        return "device"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    raise UsageError(f"{option} '{raw}' is a block device; t5peek does not write reports onto disks.")


def _replace(final: Path, data: bytes) -> None:
    """Temporary file beside `final`, then rename: `final` holds the old bytes or the new ones, never a part."""
    try:
        existing = os.stat(final)
    except FileNotFoundError:
        existing = None
    temporary = final.parent / f".{final.name}.{secrets.token_hex(4)}.part"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(temporary, flags, 0o666)  # the umask applies, as for any other tool's output
    try:
        try:
            if existing is not None:
                os.fchmod(descriptor, stat.S_IMODE(existing.st_mode))
                with contextlib.suppress(OSError):  # only root may give a file away
                    os.fchown(descriptor, existing.st_uid, existing.st_gid)
            _write_all(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        if written == 0:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        view = view[written:]
