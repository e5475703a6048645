"""Text from a model file reaches no terminal raw, on any path (issue #25): escape sequences, C1 controls,
bidirectional overrides and other invisible characters in token strings, config values and the tracebacks of
--debug are shown as escapes (`\\x1b`, `\\u202e`), and JSON writes them as \\uXXXX escapes that read back as the
same strings."""

from __future__ import annotations

import json
import shutil
import sys
import unicodedata
from pathlib import Path

import pytest

from helpers import assert_known_outcome, run_t5peek
from t5peek.render.format import INVISIBLE, show_token

DEMO = Path(__file__).resolve().parent.parent / "src" / "t5peek" / "demo"
PROMPT = "translate English to Spanish: the red house is small"
# An escape sequence with a bell (OSC), a C1 control (CSI), a right-to-left override, a left-to-right isolate,
# a zero-width space, DEL and a tag character.
EVIL = "\x1b]0;owned\x07\x9b31m\u202e\u2066\u200b\x7f\U000e0041"
SHOWN = r"\x1b]0;owned\x07\x9b31m\u202e\u2066\u200b\x7f\U000e0041"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u2066", "\u200b", "\x7f", "\U000e0041")


def _raw_in(text: str) -> list[str]:
    return [repr(char) for char in RAW if char in text]


def test_tokens_show_every_control_and_invisible_character_as_an_escape():
    assert show_token("la" + EVIL) == "la" + SHOWN
    assert show_token("a\nb\tc\rd") == r"a\nb\tc\rd"
    assert show_token("¿Qué tal? 東京 ❤") == "¿Qué tal? 東京 ❤"


def test_every_control_and_format_character_unicode_knows_is_escaped():
    """Cc, Cf, Zl, Zp and lone surrogates, as this Python's Unicode tables have them, and the Hangul fillers that
    show as blank space; nothing else this Python knows (an older Unicode may not know every format character)."""
    missed, extra = [], []
    for code in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(code))
        if category in ("Cc", "Cf", "Zl", "Zp", "Cs") and not INVISIBLE.match(chr(code)):
            missed.append(hex(code))
        elif category not in ("Cc", "Cf", "Zl", "Zp", "Cs", "Cn") and INVISIBLE.match(chr(code)):
            extra.append(hex(code))
    assert missed == []
    assert extra == ["0x115f", "0x1160", "0x3164", "0xffa0"]


def test_the_terminal_gets_none_of_them_and_keeps_its_columns():
    """What the console drops, rich measured as zero cells wide: every column stays where it was laid out. Only
    newline, the joiners that shape letters and emoji, and what rich gives a cell reach the terminal."""
    from rich.cells import cell_len

    from t5peek.render.format import _CONTROL

    dropped = [chr(code) for code in range(sys.maxunicode + 1) if _CONTROL.match(chr(code))]
    assert all(INVISIBLE.match(char) and (cell_len(char) == 0 or "\ud800" <= char <= "\udfff") for char in dropped)
    kept = [chr(code) for code in range(sys.maxunicode + 1) if INVISIBLE.match(chr(code)) and chr(code) not in dropped]
    assert all(char in "\n\u200c\u200d" or cell_len(char) > 0 for char in kept)
    assert all(char in dropped for char in "\x1b\x07\x9b\u202e\u2066\u200e\u061c\u2028\U000e0041")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile") / "model"
    shutil.copytree(DEMO, folder)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    for word in ("la", "casa", "roja", "es", "pequeña"):
        vocab[word + EVIL] = vocab.pop(word)
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    return folder


def test_a_token_with_a_bidi_override_is_shown_escaped(hostile):
    run = run_t5peek("generate", "-m", hostile, PROMPT, "-n", "2")
    assert_known_outcome(run, 0)
    assert _raw_in(run.stdout + run.stderr) == []
    assert "la" + SHOWN in run.stdout


def test_json_escapes_c1_and_bidi_controls_and_reads_back_the_true_token(hostile):
    run = run_t5peek("generate", "-m", hostile, PROMPT, "-n", "2", "--json")
    assert_known_outcome(run, 0)
    assert _raw_in(run.stdout) == []
    assert r"\u202e" in run.stdout and r"\u009b" in run.stdout and r"\udb40\udc41" in run.stdout
    assert run.json()["steps"][0]["token"] == "la" + EVIL


@pytest.fixture
def evil_config(tmp_path) -> Path:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5" + EVIL}))
    return tmp_path


def test_a_config_value_in_an_error_line_is_shown_escaped(evil_config):
    run = run_t5peek("info", evil_config)
    assert_known_outcome(run, 2, "t5" + SHOWN)
    assert _raw_in(run.stdout + run.stderr) == []


def test_a_debug_traceback_shows_config_values_escaped(evil_config):
    run = run_t5peek("info", evil_config, "--debug")
    assert run.exit_code == 2 and "Traceback" in run.stderr, run.stderr
    assert _raw_in(run.stderr) == []
    assert "t5" + SHOWN in run.stderr.split("Traceback")[1]


def test_a_json_error_escapes_the_config_value_and_reads_back_as_it_was(evil_config):
    run = run_t5peek("info", evil_config, "--json")
    assert run.exit_code == 2
    assert _raw_in(run.stdout) == []
    assert "t5" + EVIL in json.loads(run.stdout)["error"]["message"]


def test_json_on_an_ascii_stdout_stays_the_same_document(evil_config):
    utf8 = run_t5peek("info", evil_config, "--json")
    ascii_ = run_t5peek("info", evil_config, "--json", env={"PYTHONIOENCODING": "ascii"})
    assert json.loads(ascii_.stdout) == json.loads(utf8.stdout)
    assert ascii_.stdout.isascii()
