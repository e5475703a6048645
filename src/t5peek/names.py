"""MODEL as the user typed it: what it names on this machine, whether it also reads as a Hub id, and how messages
quote it (a name of thousands of characters is not echoed whole)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from t5peek.errors import ModelNotFound, T5PeekError

FOLDER, FILE, TOO_LONG = "folder", "file", "too long"
_SHOWN = 80  # a MODEL longer than this is cut short in messages


def shown(name: str) -> str:
    """MODEL as messages quote it: whole, unless it is longer than any Hub id or sensible path."""
    return name if len(name) <= _SHOWN else f"{name[:60]}… ({len(name):,} characters)"


def quote_short(exc: T5PeekError, name: str) -> None:
    """Quote MODEL in `exc`'s message as `shown` does (the Hub's messages quote the name whole)."""
    if shown(name) != name:
        exc.message = exc.message.replace(name, shown(name))
        exc.args = (exc.message,)


def looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~", "\\")) or name.count("/") > 1 or os.sep != "/" and os.sep in name


def on_disk(name: str) -> tuple[Path, str | None]:
    """MODEL as a path, and what is there: FOLDER, FILE, None, or TOO_LONG when no file system here holds such a
    name."""
    try:
        path = Path(name).expanduser()
    except RuntimeError:  # ~user of a user this machine does not know
        user = name[1:].replace("\\", "/").split("/")[0]
        raise ModelNotFound(f"The folder '{shown(name)}' does not exist: '~{user}' names no home folder on this "
                            "machine.") from None
    try:
        if path.is_dir():
            return path, FOLDER
        return path, FILE if path.exists() else None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return path, TOO_LONG
        raise ModelNotFound(f"'{shown(name)}' cannot be read: {exc.strerror or exc}.") from None


def shadowing(name: str, path: Path) -> tuple[str, ...]:
    """The warning for a folder whose name is also a Hub id: the folder wins, which is easy to miss."""
    if looks_like_path(name):
        return ()
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return ()
    return (f"'{name}' is the local folder {path.resolve()}, not the Hub model of that name; write ./{name} to say "
            "so, or move the folder to use the Hub.",)
