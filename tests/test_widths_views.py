"""Every number and name whole at every width (the README's promise) in `info`, `arch` and `trace`: on the demo model
and a flan-t5-base-shaped checkpoint, at 40 to 200 columns, with Unicode glyphs and with T5PEEK_ASCII=1.

What --json says, the text says whole: every token id, probability, shape (`1×10×128`), parameter count, class and
module name the view shows is one whole word of the text (never `12…`, `1×10×12…`, `T5ForConditionalGene` over
`ration`); a long dotted name may break after a dot only; and no line is wider than COLUMNS (in ASCII `→` is `->`).

The model runs once per view (test_golden's `computed_once`); each width draws the same records again."""

from __future__ import annotations

import json
import re

import pytest
from rich.cells import cell_len

from helpers import run_t5peek
from sparse_checkpoint import FLAN_T5_BASE, write_sparse_checkpoint  # noqa: E402
from t5peek.output import fallback_text
from t5peek.render.format import human_count, probability
from test_golden import computed_once  # noqa: F401 - the fixture

NARROW = (40, 60, 64, 72, 80)
WIDE = (100, 120, 200)
DE = "translate English to German: the house is small"
ES = "translate English to Spanish: the red house is small"
FLAN = "<flan-t5-base>"

VIEWS = {
    "info": ("info", "demo"),
    "arch": ("arch", "demo", "--depth", "3"),
    "arch-flan": ("arch", FLAN),
    "trace": ("trace", "-m", "demo", DE),
    "trace-depth": ("trace", "-m", "demo", DE, "--depth", "3"),
    "trace-steps": ("trace", "-m", "demo", DE, "--steps", "4"),
    "trace-target": ("trace", "-m", "demo", DE, "--target", "das Haus ist klein"),
    "trace-compare": ("trace", "-m", "demo", ES, "--target", "la casa azul es pequeña", "--compare", "--depth", "0"),
    "trace-stats": ("trace", "-m", "demo", DE, "--stats"),
}


@pytest.fixture(scope="module")
def flan(tmp_path_factory):
    return write_sparse_checkpoint(tmp_path_factory.mktemp("models") / "flan-t5-base", FLAN_T5_BASE)


_DOCS: dict = {}


def _run(args, width: int, glyphs: str) -> str:
    env = {"COLUMNS": str(width), "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8",
           "T5PEEK_ASCII": "1" if glyphs == "ascii" else "0"}
    run = run_t5peek(*args, env=env)
    assert run.exit_code == 0, run.stdout + run.stderr
    return run.stdout


_WRAPPING = "|()[],;:'"  # punctuation around a count, an id or a name


def _shape(dims) -> str:
    return "×".join(str(d) for d in dims)


def _trace_tokens(doc: dict) -> list[str]:
    tokens = [str(i) for i in doc["source_ids"]]
    for step in doc["steps"]:
        tokens += [str(step["input_id"]), str(step["next_id"]), probability(step["next_probability"])]
    tokens += [str(i) for key in ("labels", "decoder_input_ids", "predicted_ids") for i in doc[key] or ()]
    first_step = next((p for p in doc["phases"] if p["kind"] == "step"), None)
    for phase in [doc["phases"][0], first_step] if first_step else doc["phases"][:1]:
        for record in phase["records"]:  # the first phase of each kind shows every record in full
            tokens += [_shape(s) for s in (*record["input_shapes"].values(), *record["output_shapes"].values())
                       if isinstance(s, list) and s]
            tokens += [record["class"]] if record["role"] != "model" else []
            leaf = record["module"].rpartition(".")[2]
            tokens += [leaf] if leaf and not leaf.isdigit() else []
    comparison = doc["comparison"] or {}
    for position in comparison.get("positions", ()):
        tokens += [str(position["input_id"]), str(position["label_id"]), probability(position["label_probability"])]
    for position in comparison.get("free_running", ()):
        tokens += [str(position["chosen_id"]), probability(position["probability"])]
    return tokens


def _nodes(node: dict):
    yield node
    for child in node["children"]:
        yield from _nodes(child)


def _arch_tokens(doc: dict) -> tuple[list[str], list[str]]:
    tokens, names = [f"{doc['total']:,}", human_count(doc["total"])], []
    for node in _nodes(doc["root"]):
        tokens += [node["name"], *(node["summary"] or node["class"]).split()]
        if node["params"]:
            tokens.append(human_count(node["params"]))
        tokens += node["tied_sources"]
        names += [word for word in node["differs"].split() if "." in word]
    return tokens, names


def _info_tokens(doc: dict) -> tuple[list[str], list[str]]:
    tokens = [doc["architecture"], str(doc["d_model"]), str(doc["heads"]), str(doc["d_ff"]), f"{doc['vocab_size']:,}",
              f"{doc['total']:,}", human_count(doc["total"]), f"{doc['encoder_layers']}",
              str(doc["relative_buckets"]), str(doc["relative_max_distance"]), *doc["task_prefixes"]]
    return tokens, [doc["folder"]]


_CUT = re.compile(r"\d(…|\.\.\.)|(…|\.\.\.)\d")  # `12…`, `0.…`, `…5`: a number cut short


def check_view(view: str, width: int, glyphs: str, folder) -> None:
    args = tuple(str(folder) if arg == FLAN else arg for arg in VIEWS[view])
    if view not in _DOCS:
        _DOCS[view] = json.loads(_run((*args, "--json"), 80, "unicode"))
    doc = _DOCS[view]
    tokens, names = (_trace_tokens(doc), []) if args[0] == "trace" else \
        (_arch_tokens if args[0] == "arch" else _info_tokens)(doc)
    if glyphs == "ascii":  # `×` is printed `x`
        tokens = [fallback_text(token, "ascii") for token in tokens]
    text = _run(args, width, glyphs)
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        assert cell_len(line) <= width, f"line {number} is {cell_len(line)} cells, over {width}: {line!r}\n{text}"
    cut = [line for line in lines if _CUT.search(line)]
    assert not cut, f"numbers cut short at {width} columns: {cut}\n{text}"
    shown = {word.strip(_WRAPPING) for word in text.split()}
    missing = sorted({token for token in tokens if token.strip(_WRAPPING) not in shown and re.search(r"\w", token)})
    assert not missing, f"not whole at {width} columns: {missing}\n{text}"
    joined = re.sub(r"[\s│├└─|`+]", "", text)  # a long name may break after a dot, between the tree's guides
    assert all(re.sub(r"[\s│├└─|`+]", "", name) in joined for name in names), f"a name is cut:\n{text}"


QUICK = [(view, width) for view in VIEWS for width in NARROW]
SLOW = [(view, width) for view in VIEWS for width in WIDE]


@pytest.mark.parametrize("glyphs", ["unicode", "ascii"])
@pytest.mark.parametrize(("view", "width"), QUICK)
def test_numbers_and_names_whole_from_40_to_80_columns(view, width, glyphs, flan, computed_once):  # noqa: F811
    check_view(view, width, glyphs, flan)


@pytest.mark.slow
@pytest.mark.parametrize("glyphs", ["unicode", "ascii"])
@pytest.mark.parametrize(("view", "width"), SLOW)
def test_numbers_and_names_whole_at_100_to_200_columns(view, width, glyphs, flan, computed_once):  # noqa: F811
    check_view(view, width, glyphs, flan)


@pytest.mark.parametrize("glyphs", ["unicode", "ascii"])
@pytest.mark.parametrize("width", [40, 64])
def test_generate_beams_fit_the_width(width, glyphs, computed_once):  # noqa: F811
    """Beam search's `best next tokens` cell wider than a 40-column line wraps its words; `kept: 1 ← beam 0` keeps
    to 64 columns where `←` is `<-`; a long task_specific_params value flows after its name."""
    text = _run(("generate", "-m", "demo", ES, "--num-beams", "3"), width, glyphs)
    over = [line for line in text.split("\n") if cell_len(line) > width]
    assert not over and not _CUT.search(text), f"{over}\n{text}"
    assert "-15.08" in text.split() and "early_stopping=true" in text.split(), text


# ----------------------------------------------------------------------------- the wrapping itself


def test_fit_text_breaks_as_rich_does_but_never_inside_a_word():
    from rich.text import Text

    from t5peek.render.table import fit_text

    text = "tied  (no lm_head.weight stored: the output head reuses the input embedding)"
    assert [line.plain for line in fit_text(text, 30)] == [line.plain.rstrip() for line in Text(text).wrap(
        __import__("rich.console").console.Console(width=30), 30)]
    lines = [line.plain for line in fit_text("(block.0): layer.0.SelfAttention.relative_attention_bias.weight", 28)]
    assert lines == ["(block.0):", "layer.0.SelfAttention.", "relative_attention_bias.", "weight"], lines
    assert [line.plain for line in fit_text("Embedding(32128, 768)", 12)] == ["Embedding(", "32128, 768)"]
