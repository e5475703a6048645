"""Every count whole at every width (issue #24): `params` (each view, and the --max-memory split) and `budget`
(generate, train, each optimizer, --device cuda, the split) on an 11B-shaped checkpoint, at 40 to 200 columns, with
Unicode glyphs and with T5PEEK_ASCII=1. What --json says, the table says: every count, percentage, name and word of
a note is one whole token of the text (never `11,307,3…`, never `11,307,321,34` over `4`), every amount
(`21.1 GiB`, `5.36T FLOP`) stands on one line, and no line is wider than COLUMNS.

Each setting runs the CLI in-process; the model's records are computed once per variant and drawn again at every
width (as in test_golden.py), so the JSON and the text show one computation (the free memory too)."""

from __future__ import annotations

import json

import pytest
from rich.cells import cell_len

from helpers import run_t5peek
from sparse_checkpoint import T5_XXL_11B, write_sparse_checkpoint  # noqa: E402
from t5peek.output import fallback_text
from t5peek.render.format import human_bytes, human_count

NARROW = (40, 60, 64, 72, 80)  # 60-80: where issue #24 saw numbers cut
WIDE = (100, 120, 200)

PARAMS = {
    "component": (),
    "layer": ("--by", "layer"),
    "type": ("--by", "type"),
    "split": ("--max-memory", "0=10GiB", "--max-memory", "cpu=30GB"),
}
BUDGETS = {
    "generate": (),
    "beams": ("--batch", "4", "--num-beams", "4"),
    "train": ("--mode", "train"),
    "train-adafactor": ("--mode", "train", "--optimizer", "adafactor", "--gradient-checkpointing"),
    "train-sgd-cuda": ("--mode", "train", "--optimizer", "sgd", "--device", "cuda"),
    "split": ("--max-memory", "0=1GiB", "--max-memory", "cpu=2GB"),  # most of it offloaded to disk
}
VARIANTS = {f"params-{name}": ("params", *args) for name, args in PARAMS.items()}
VARIANTS |= {f"budget-{name}": ("budget", *args) for name, args in BUDGETS.items()}


@pytest.fixture(scope="module")
def t5_11b(tmp_path_factory):
    return write_sparse_checkpoint(tmp_path_factory.mktemp("models") / "t5-11b", T5_XXL_11B, shards=5,
                                   dtype="bfloat16")


_RECORDS: dict = {}
_DOCS: dict = {}  # variant -> its --json document


@pytest.fixture
def computed_once(monkeypatch):
    """t5peek.Model's params and budget answer from _RECORDS after the first call with the same arguments."""
    from t5peek import api

    def keep(name: str):
        real = getattr(api.Model, name)

        def kept(self, *args, **kwargs):
            key = (name, self.name, repr(args), repr(sorted(kwargs.items())))
            if key not in _RECORDS:
                _RECORDS[key] = real(self, *args, **kwargs)
            return _RECORDS[key]

        monkeypatch.setattr(api.Model, name, kept)

    for name in ("params", "budget"):
        keep(name)


def _run(args, width: int, glyphs: str):
    env = {"COLUMNS": str(width), "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8",
           "T5PEEK_ASCII": "1" if glyphs == "ascii" else "0"}
    run = run_t5peek(*args, env=env)
    assert run.exit_code == 0, run.stdout + run.stderr
    return run.stdout


_WRAPPING = "|()[],;:"  # ASCII table frames and the punctuation around a count or a name


def _token(text: str) -> str:
    return text.strip(_WRAPPING)


def _words(text: str | None) -> list[str]:
    return [_token(word) for word in (text or "").split() if _token(word)]


def _expected_params(doc: dict) -> tuple[list[str], list[str]]:
    """(whole tokens, phrases on one line) that the text of `params` must show."""
    tokens = [f"{doc['total']:,}", human_count(doc["total"])]
    for row in doc["rows"]:
        tokens += [f"{row['params']:,}", f"{row['percent']:.1f}", *_words(row["label"]), *_words(row["note"])]
        if row.get("blocks"):
            tokens += [str(row["blocks"]), f"{row['per_block']:,}"]
    for group in doc["tied"]:
        tokens += [group["stored_as"], *group["shared_with"], f"{group['params']:,}"]
    phrases = [human_bytes(size) for size in doc["memory_bytes"].values()]
    if doc["stored_bytes"] is not None:
        phrases.append(human_bytes(doc["stored_bytes"]))
    return tokens, phrases


def _expected_budget(doc: dict) -> tuple[list[str], list[str]]:
    tokens: list[str] = []
    phrases = [human_bytes(doc["needed_bytes"])]
    for row in doc["rows"]:
        tokens += _words(row["what"]) + _words(row["formula"]) + _words(row["modules"])
        if row["flops"] is not None:
            phrases.append(f"{human_count(row['flops'])} FLOP")
        elif row["bytes"] is not None:
            phrases.append(human_bytes(row["bytes"]))
    if doc["parameters"] != doc["active_parameters"]:
        tokens += [f"{doc['parameters']:,}", f"{doc['active_parameters']:,}"]
    return tokens, phrases


def _expected_placement(doc: dict) -> tuple[list[str], list[str]]:
    if not doc.get("placement"):
        return [], []
    tokens, phrases = [], []
    for share in doc["placement"]["shares"]:
        limit = doc["placement"]["max_memory"].get(share["device"])
        tokens += share["modules"][:6]
        phrases += [human_bytes(share["bytes"]), "unbounded" if limit >= 2**60 else human_bytes(limit)]
    return tokens, phrases


def check_whole(text: str, tokens: list[str], phrases: list[str], width: int, model: str) -> None:
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        assert cell_len(line) <= width, f"line {number} is {cell_len(line)} cells, over {width}: {line!r}\n{text}"
    shown = {_token(word) for word in text.split()}
    missing = [token for token in tokens if token not in shown]
    assert not missing, f"not whole at {width} columns: {missing}\n{text}"
    split = [phrase for phrase in phrases if not any(phrase in line for line in lines)]
    assert not split, f"not on one line at {width} columns: {split}\n{text}"
    assert model in "".join(text.split()), f"the model's name is cut at {width} columns:\n{text}"


def _check_variant(variant: str, width: int, glyphs: str, folder) -> None:
    args = (*VARIANTS[variant], str(folder))
    if variant not in _DOCS:
        _DOCS[variant] = json.loads(_run((*args, "--json"), 80, "unicode"))
    doc = _DOCS[variant]
    tokens, phrases = (_expected_params if args[0] == "params" else _expected_budget)(doc)
    tokens, phrases = (a + b for a, b in zip((tokens, phrases), _expected_placement(doc)))
    if glyphs == "ascii":  # `×` is printed `x`
        tokens, phrases = ([fallback_text(text, "ascii") for text in texts] for texts in (tokens, phrases))
    check_whole(_run(args, width, glyphs), tokens, phrases, width, str(folder))


QUICK = [(variant, width) for variant in VARIANTS if not variant.endswith("split") for width in NARROW]
# the rest, and the --max-memory split (its first plan imports accelerate and builds a meta model: seconds)
SLOW = [(variant, width) for variant in VARIANTS for width in NARROW + WIDE if (variant, width) not in QUICK]


@pytest.mark.parametrize("glyphs", ["unicode", "ascii"])
@pytest.mark.parametrize(("variant", "width"), QUICK)
def test_every_number_is_whole_from_40_to_80_columns(variant, width, glyphs, t5_11b, computed_once):
    _check_variant(variant, width, glyphs, t5_11b)


@pytest.mark.slow
@pytest.mark.parametrize("glyphs", ["unicode", "ascii"])
@pytest.mark.parametrize(("variant", "width"), SLOW)
def test_every_number_is_whole_at_every_width_and_split(variant, width, glyphs, t5_11b, computed_once):
    _check_variant(variant, width, glyphs, t5_11b)


# ----------------------------------------------------------------------------- the wrapping itself


def test_a_number_is_never_broken_even_where_it_overflows():
    from t5peek.render.table import wrap_text

    lines = wrap_text("in bfloat16: 11,307,321,344 params × 2", 10)
    assert "11,307,321,344" in lines and all(len(line) <= 10 for line in lines if line != "11,307,321,344")


def test_a_long_name_breaks_after_its_dots_and_loses_nothing():
    from t5peek.render.table import wrap_text

    name = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
    lines = wrap_text(f"tied: {name}", 24)
    assert all(len(line) <= 24 for line in lines), lines
    assert "".join(lines[1:]) == name and all(line.endswith(".") for line in lines[1:-1]), lines


def test_an_amount_keeps_its_unit():
    from t5peek.render.table import wrap_text

    lines = wrap_text("offloaded to disk: 25 modules (19.5 GiB). Offloaded weights", 35)
    assert any("(19.5 GiB)." in line for line in lines), lines


def test_a_name_wider_than_the_line_folds_rather_than_overflows():
    from t5peek.render.table import wrap_text

    lines = wrap_text("T5ForConditionalGenerationWithAVeryLongName", 20)
    assert all(len(line) <= 20 for line in lines) and "".join(lines) == "T5ForConditionalGenerationWithAVeryLongName"
