"""Records as JSON: the one protocol every `--json` document, the Python API and the HTML report go through.

A record is a dataclass of plain values. It may shape its own JSON with a `json_fields()` method returning a dict
(of values this module turns into JSON in turn). Fields named `cls` are written as `class`; enums as their value;
non-finite floats as the strings "nan", "inf" and "-inf", which JSON lacks.

Every document printed by the CLI is wrapped by `document()`: `schema_version`, `t5peek_version` and `command`
first, then the record's own fields. The schemas live in `t5peek/schemas/<command>.schema.json`."""

from __future__ import annotations

import dataclasses
import enum
import math
from pathlib import PurePath
from t5peek import __version__

SCHEMA_VERSION = 1


def to_jsonable(value, digits: int | None = None):
    """Plain JSON values; with `digits`, finite floats are rounded (the HTML report keeps its data small)."""
    shaped = getattr(value, "json_fields", None)
    if callable(shaped) and not isinstance(value, type):
        return to_jsonable(shaped(), digits)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {("class" if f.name == "cls" else f.name): to_jsonable(getattr(value, f.name), digits)
                for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, digits) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return round(value, digits) if digits is not None else value
    return value


def document(command: str, record) -> dict:
    """The document `t5peek COMMAND --json` prints for a record."""
    body = to_jsonable(record)
    return {**_envelope(command), **body}


def error_document(command: str, kind: str, message: str, hint: str | None, exit_code: int) -> dict:
    """The document `t5peek COMMAND --json` prints instead when the command fails."""
    return {**_envelope(command),
            "error": {"kind": kind, "message": message, "hint": hint, "exit_code": int(exit_code)}}


def _envelope(command: str) -> dict:
    return {"schema_version": SCHEMA_VERSION, "t5peek_version": __version__, "command": command}
