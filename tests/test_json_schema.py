"""Every `--json` document validates against the schema shipped in the package, for every command, on the demo
and on three families; failures print the error document; the shipped schemas are those the records imply."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from families import by_name
from helpers import assert_known_outcome, run_t5peek

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "translate English to German: the house is small"


def _schema(name: str) -> dict:
    return json.loads(resources.files("t5peek").joinpath("schemas", f"{name}.schema.json").read_text())


def _validate(document: dict, name: str) -> None:
    validator = jsonschema.Draft202012Validator(_schema(name))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5])


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_t5_untied, tiny_bart):
    root = tmp_path_factory.mktemp("schema-models")
    return {"demo": "demo", "t5": str(tiny_t5_untied), "bart": str(tiny_bart),
            "marian": str(by_name("marian").make(root / "marian"))}


COMMANDS = {
    "info": lambda m: ("info", m),
    "arch": lambda m: ("arch", m, "--depth", "3"),
    "params": lambda m: ("params", m, "--by", "layer"),
    "trace": lambda m: ("trace", "-m", m, PROMPT, "--steps", "2", "--stats", "--explain"),
    "trace-target": lambda m: ("trace", "-m", m, PROMPT, "--target", "das Haus"),
    "generate": lambda m: ("generate", "-m", m, PROMPT, "-n", "3"),
    "generate-beams": lambda m: ("generate", "-m", m, PROMPT, "-n", "3", "--num-beams", "2"),
    "generate-sample": lambda m: ("generate", "-m", m, PROMPT, "-n", "3", "--sample", "--seed", "1"),
    "generate-views": lambda m: ("generate", "-m", m, PROMPT, "-n", "3", "--self", "--occlusion"),
    "generate-views-beams": lambda m: ("generate", "-m", m, PROMPT, "-n", "3", "--num-beams", "2", "--self",
                                       "--occlusion"),
    "trace-compare": lambda m: ("trace", "-m", m, PROMPT, "--target", "das Haus", "--compare", "--depth", "0"),
    "attend": lambda m: ("attend", "-m", m, PROMPT, "--step", "0", "--self"),
    "attend-encoder": lambda m: ("attend", "-m", m, PROMPT, "--encoder", "--query", "2"),
    "lens": lambda m: ("lens", "-m", m, PROMPT, "--max-new-tokens", "3"),
    "lens-target": lambda m: ("lens", "-m", m, PROMPT, "--target", "das Haus"),
    "budget": lambda m: ("budget", m, "--batch", "2", "--source", "16", "--target", "8", "--num-beams", "2"),
    "budget-train": lambda m: ("budget", m, "--source", "16", "--target", "8", "--mode", "train",
                               "--gradient-checkpointing", "--optimizer", "adafactor"),
    "patch": lambda m: ("patch", "-m", m, PROMPT, "--noise", "1:3"),
    "knockout": lambda m: ("knockout", "-m", m, PROMPT, "--head", "cross:0.1", "--sweep", "self", "-n", "4"),
    "generate-force": lambda m: ("generate", "-m", m, PROMPT, "-n", "3", "--force", "0=#5"),
    "lens-options": lambda m: ("lens", "-m", m, PROMPT, "-n", "2", "--heads", "--watch", "#5", "--encoder-layer", "0"),
    "attribute": lambda m: ("attribute", "-m", m, PROMPT, "--steps", "8"),
}


@pytest.mark.parametrize("model", ["demo", "t5", "bart", "marian"])
@pytest.mark.parametrize("case", list(COMMANDS))
def test_every_document_matches_its_schema(models, model, case):
    run = run_t5peek(*COMMANDS[case](models[model]), "--json")
    assert_known_outcome(run, 0)
    document = run.json()
    command = case.split("-")[0]
    assert document["command"] == command and document["schema_version"] == 1
    _validate(document, command)


def test_the_schemas_are_strict():
    """A field the records do not declare fails validation: the schema is not a formality."""
    run = run_t5peek("info", "demo", "--json")
    document = run.json()
    _validate(document, "info")
    with pytest.raises(AssertionError):
        _validate({**document, "surprise": 1}, "info")
    with pytest.raises(AssertionError):
        _validate({**document, "total": "many"}, "info")


@pytest.mark.parametrize("args, exit_code, kind", [
    (("info", "./no-such-folder"), 1, "model_not_found"),
    (("trace", "-m", "demo", "x", "--steps", "0"), 2, "usage"),
    (("generate", "-m", "demo", "x", "--num-beams", "2", "--sample", "--top-p", "7"), 2, "usage"),
])
def test_errors_under_json_are_documents(args, exit_code, kind):
    run = run_t5peek(*args, "--json")
    assert_known_outcome(run, exit_code, "error:")
    document = json.loads(run.stdout)
    _validate(document, "error")
    assert document["error"]["kind"] == kind and document["error"]["exit_code"] == exit_code
    assert document["command"] == args[0]
    assert document["error"]["message"] in run.stderr


def test_shipped_schemas_are_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_schemas.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
