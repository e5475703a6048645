"""Write the JSON Schema of every `t5peek COMMAND --json` document into src/t5peek/schemas/, from the records'
own type hints, so that the schema cannot drift from what the code writes.

    python scripts/make_schemas.py           # rewrite the files
    python scripts/make_schemas.py --check   # exit 1 if a file is out of date (CI and the tests run this)
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import re
import sys
import types
import typing
from pathlib import Path

from t5peek.arch import ArchReport
from t5peek.attend.records import AttendReport
from t5peek.budget.records import BudgetReport
from t5peek.generate.records import DecodeRun, Step
from t5peek.info import ModelInfo
from t5peek.interventions.records import KnockoutRun, PatchRun
from t5peek.attribution.records import AttributionRun
from t5peek.jsonable import SCHEMA_VERSION
from t5peek.lens.records import LensRun
from t5peek.params import ParamReport
from t5peek.trace.records import TraceReport

OUT = Path(__file__).resolve().parent.parent / "src" / "t5peek" / "schemas"
COMMANDS = {"info": ModelInfo, "arch": ArchReport, "params": ParamReport, "trace": TraceReport,
            "generate": DecodeRun, "attend": AttendReport, "budget": BudgetReport,
            "lens": LensRun, "patch": PatchRun, "knockout": KnockoutRun,
            "attribute": AttributionRun}
DESCRIPTIONS = {
    "info": "A one-screen summary of a model from config.json and the checkpoint headers.",
    "arch": "The module tree: repeated blocks collapsed, parameters per node.",
    "params": "Exact parameter counts, broken down, and memory per dtype.",
    "trace": "Every module call of one run: shapes, dtype, device, time, attention and cache.",
    "generate": "Each decoding step: decoder input, top-k candidates, the choice and where the decoder looked.",
    "attend": "One attention head at one query position: q, each key's score and weight, the head's output and its "
              "contribution, recomputed from the module's weights and checked against the module.",
    "lens": "Every decoder depth at every step read through the model's own head, and the chosen token's logit split "
            "over the sublayers (direct logit attribution).",
    "budget": "Memory and FLOPs of generate() or of one fine-tuning step, from config.json and the headers alone.",
    "patch": "Activation patching of one decoder position: the score of the clean token with each site restored alone "
             "from the clean run into the corrupted one.",
    "attribute": "Integrated gradients of one decoder position's score over the source tokens and the decoder's "
                 "earlier tokens, with the completeness check, beside cross-attention and occlusion drops.",
    "knockout": "Attention heads knocked out: the original tokens' logits with and without them, and the output "
                "decoded with them knocked out.",
}
# what a record's json_fields() writes beyond (or instead of) its dataclass fields
DROPPED = {TraceReport: {"explain"}, DecodeRun: {"head_attention", "encoder_head_attention", "decoder_head_attention"}}
ADDED = {TraceReport: {"view_note": str, "explanations": dict[str, str]}}
# written only when asked for (generate --self, --occlusion)
OPTIONAL = {TraceReport: {"explanations"},
            DecodeRun: {"encoder_self_attention", "occlusion", "forced", "original_ids", "original_text"},
            Step: {"self_attention"}}
# non-finite floats are written as these strings (JSON has no NaN or infinity)
NUMBER = {"anyOf": [{"type": "number"}, {"enum": ["nan", "inf", "-inf"]}]}


class _Builder:
    def __init__(self):
        self.defs: dict[str, dict] = {}

    def of(self, hint) -> dict:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if hint is typing.Any or hint is object:
            return {}
        if hint is type(None):
            return {"type": "null"}
        if origin in (typing.Union, types.UnionType):
            return {"anyOf": [self.of(a) for a in args]}
        if hint is bool:
            return {"type": "boolean"}
        if hint is int:
            return {"type": "integer"}
        if hint is float:
            return NUMBER
        if hint is str or (isinstance(hint, type) and issubclass(hint, Path)):
            return {"type": "string"}
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return {"enum": [m.value for m in hint]}
        if origin in (tuple, list):
            if origin is tuple and args and args[-1] is not Ellipsis:
                return {"type": "array", "prefixItems": [self.of(a) for a in args], "items": False}
            return {"type": "array", "items": self.of(args[0])} if args else {"type": "array"}
        if origin is dict or hint is dict:
            return {"type": "object", "additionalProperties": self.of(args[1]) if args else {}}
        if hint is tuple or hint is list:
            return {"type": "array"}
        if dataclasses.is_dataclass(hint):
            return self.record(hint)
        raise TypeError(f"no JSON Schema for {hint!r}")

    def record(self, cls) -> dict:
        if cls.__name__ not in self.defs:
            self.defs[cls.__name__] = {}  # a placeholder first: records may nest themselves
            hints = typing.get_type_hints(cls)
            notes = _field_comments(cls)
            properties = {("class" if f.name == "cls" else f.name):
                          _described(self.of(hints[f.name]), notes.get(f.name))
                          for f in dataclasses.fields(cls) if f.name not in DROPPED.get(cls, ())}
            properties.update({name: self.of(hint) for name, hint in ADDED.get(cls, {}).items()})
            doc = (cls.__doc__ or "").strip()
            self.defs[cls.__name__] = {
                "type": "object", "properties": properties,
                "required": [name for name in properties if name not in OPTIONAL.get(cls, ())],
                "additionalProperties": False,
                **({"description": " ".join(doc.split())} if doc and not doc.startswith(cls.__name__ + "(") else {}),
            }
        return {"$ref": f"#/$defs/{cls.__name__}"}


_FIELD = re.compile(r"^\s+(\w+): [^#]+#\s*(.+)$")


def _field_comments(cls) -> dict[str, str]:
    """The comment after each field in the record's source: the schema's description of that field."""
    notes: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            for line in inspect.getsource(klass).splitlines():
                match = _FIELD.match(line)
                if match:
                    notes[match.group(1)] = match.group(2).strip()
    return notes


def _described(schema: dict, note: str | None) -> dict:
    return {**schema, "description": note} if note else schema


def envelope(command: str) -> dict:
    return {
        "schema_version": {"const": SCHEMA_VERSION},
        "t5peek_version": {"type": "string"},
        "command": {"const": command},
    }


def command_schema(command: str, record) -> dict:
    builder = _Builder()
    root = builder.of(record)
    body = builder.defs.pop(record.__name__)
    assert root == {"$ref": f"#/$defs/{record.__name__}"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://t5peek.dev/schemas/{SCHEMA_VERSION}/{command}.schema.json",
        "title": f"t5peek {command} --json",
        "description": DESCRIPTIONS[command],
        "type": "object",
        "properties": {**envelope(command), **body["properties"]},
        "required": ["schema_version", "t5peek_version", "command", *body["required"]],
        "additionalProperties": False,
        "$defs": builder.defs,
    }


def error_schema() -> dict:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://t5peek.dev/schemas/{SCHEMA_VERSION}/error.schema.json",
        "title": "t5peek COMMAND --json, when the command fails",
        "description": "Printed on stdout instead of the command's document; the exit code is `error.exit_code`.",
        "type": "object",
        "properties": {
            "schema_version": {"const": SCHEMA_VERSION},
            "t5peek_version": {"type": "string"},
            "command": {"type": "string"},
            "error": {
                "type": "object",
                "properties": {
                    "kind": {"enum": ["error", "usage", "model_not_found", "hub_unreachable", "bad_checkpoint",
                                      "not_enough_memory", "unsupported_model", "refused", "interrupted",
                                      "out_of_memory", "unexpected"]},
                    "message": {"type": "string"},
                    "hint": {"type": ["string", "null"]},
                    "exit_code": {"enum": [1, 2, 3, 130, 143]},
                },
                "required": ["kind", "message", "hint", "exit_code"],
                "additionalProperties": False,
            },
        },
        "required": ["schema_version", "t5peek_version", "command", "error"],
        "additionalProperties": False,
    }


def schemas() -> dict[str, dict]:
    files = {f"{command}.schema.json": command_schema(command, record) for command, record in COMMANDS.items()}
    files["error.schema.json"] = error_schema()
    return files


def main(argv: list[str]) -> int:
    stale = []
    for name, schema in schemas().items():
        text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        path = OUT / name
        if "--check" in argv:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python scripts/make_schemas.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
