"""The command line's own surface, run as users run it (the installed `t5peek`, a fresh process each time): usage
errors in t5peek's one-line style, help examples that copy whole, COLUMNS, no library chatter, shell completion."""

from __future__ import annotations

import json
import os
import pickle
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import assert_known_outcome, run_t5peek, t5peek_script

PROMPT = "translate English to German: the house is small"
COMMANDS = ("info", "arch", "params", "trace", "generate", "lens", "attend", "budget", "patch", "knockout", "attribute",
            "report")


# ----------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize("args, fragments", [
    (("params", "--by", "foo"), ("--by 'foo'", "component, layer or type")),
    (("params", "demo", "--device", "tpu"), ("--device 'tpu'", "cpu, cuda, mps or auto")),
    (("params", "--by"), ("--by needs a value", "component, layer or type")),
    (("arch", "--depth", "-1"), ("--depth must be at least 0, not -1",)),
    (("arch", "demo", "--frob"), ("has no option --frob",)),
    (("arch", "--dpeth", "2"), ("has no option --dpeth", "did you mean --depth")),
    (("arch", "--json=yes"), ("--json is a flag",)),
    (("trace",), ("t5peek trace needs PROMPT",)),
    (("generate", "-n", "abc", "x"), ("--max-new-tokens takes a whole number, not 'abc'",)),
    (("generate", "x", "--temperature", "warm"), ("--temperature takes a number, not 'warm'",)),
    (("generate", "x", "--html"), ("--html needs a value",)),
    (("trace", "-m", "demo", "the", "house"), ("more arguments than it takes: house", "Quote PROMPT")),
    (("nope",), ("'nope' is not a t5peek command",
                  "info, arch, params, trace, generate, lens, attend, budget, patch, knockout, attribute and "
                  "report")),
    (("arhc", "demo"), ("'arhc' is not a t5peek command", "did you mean arch")),
    (("--frob",), ("t5peek has no option --frob",)),
])
def test_usage_errors_are_one_line(args, fragments):
    run = run_t5peek(*args)
    assert_known_outcome(run, 2, *fragments)
    lines = run.stderr.splitlines()
    command = args[0] if args[0] in ("params", "arch", "trace", "generate") else None
    assert len(lines) == 2 and lines[1].startswith("  hint: "), run.stderr
    assert (f"`t5peek {command} --help`" if command else "`t5peek --help`") in lines[1], run.stderr
    assert "Usage:" not in run.stderr and "Try '" not in run.stderr and run.stdout == ""


@pytest.mark.parametrize("args, command", [
    (("arch", "--depth", "-1", "--json"), "arch"),
    (("params", "demo", "--json", "--by", "colour"), "params"),
    (("generate", "--json", "-n", "many", PROMPT), "generate"),
    (("nope", "--json"), ""),
])
def test_usage_errors_under_json_are_documents(args, command):
    run = run_t5peek(*args)
    assert_known_outcome(run, 2)
    document = json.loads(run.stdout)
    assert document["command"] == command and document["schema_version"] == 1
    error = document["error"]
    assert error["kind"] == "usage" and error["exit_code"] == 2
    assert error["message"] in run.stderr and error["hint"] in run.stderr


def test_help_version_and_no_arguments_keep_their_exit_codes():
    assert_known_outcome(run_t5peek("--help"), 0)
    version = run_t5peek("--version")
    assert_known_outcome(version, 0)
    assert version.stdout.startswith("t5peek ")
    bare = run_t5peek()
    assert bare.exit_code in (0, 2) and "Commands:" in bare.stdout + bare.stderr  # click 8.2 answers 2, 8.1 0
    assert "error:" not in bare.stderr


# ----------------------------------------------------------------------------- help


def _examples(help_text: str) -> list[str]:
    """The example commands of a help page, continuation lines joined, with the lines as printed."""
    block = help_text.split("Examples:", 1)[1]
    block = re.split(r"\n\S|\n\n  [A-Z]", block, maxsplit=1)[0]
    return [line for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_examples_never_wrap(command):
    """At 80 columns every example is whole on its lines (or continued with a backslash), and names only options
    the command has: what is copied from the help runs."""
    run = run_t5peek(*([command] if command else []), "--help", env={"COLUMNS": "80"})
    assert_known_outcome(run, 0)
    lines = _examples(run.stdout)
    assert len(lines) >= 3, run.stdout
    examples: list[str] = []
    for line in lines:
        assert len(line) <= 80, f"{len(line)} columns: {line}"
        if examples and examples[-1].endswith("\\"):
            examples[-1] = examples[-1][:-1] + line.strip()
        else:
            assert line.strip().startswith("t5peek "), f"a wrapped example line: {line!r}\n{run.stdout}"
            examples.append(line.strip())
    for example in examples:
        words = shlex.split(re.split(r"\s{3,}", example)[0])  # the root's examples carry a description
        assert words[0] == "t5peek" and words[1] in COMMANDS, example
        options = run_t5peek(words[1], "--help").stdout
        for word in words[2:]:
            if word.startswith("-"):
                assert re.search(rf"(^|[\s,/]){re.escape(word)}([\s,/]|$)", options, re.M), f"{word} in {example}"


def test_root_help_documents_the_environment():
    run = run_t5peek("--help")
    text = " ".join(run.stdout.split())
    assert "T5PEEK_ASCII=1" in text and "NO_COLOR" in text


# ----------------------------------------------------------------------------- COLUMNS


@pytest.mark.parametrize("columns", ["0", "-3", "wide"])
def test_unusable_columns_count_as_unset(columns):
    run = run_t5peek("arch", "demo", "--depth", "1", env={"COLUMNS": columns})
    assert_known_outcome(run, 0)
    assert "T5ForConditionalGeneration" in run.stdout
    failed = run_t5peek("arch", "./no-such-folder", env={"COLUMNS": columns})
    assert_known_outcome(failed, 1, "does not exist")


# ----------------------------------------------------------------------------- library chatter


def _demo_without_weights(folder: Path) -> Path:
    from t5peek.loading import DEMO_FOLDER

    shutil.copytree(DEMO_FOLDER, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    return folder


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickle_refusal_says_nothing_of_torch(tmp_path):
    """torch warns about the pickle protocol before refusing: t5peek's refusal is the only thing said."""
    folder = _demo_without_weights(tmp_path / "model")
    canary = tmp_path / "canary"
    with open(folder / "pytorch_model.bin", "wb") as handle:
        pickle.dump({"shared.weight": _Payload(str(canary))}, handle, protocol=4)
    run = run_t5peek("params", folder, "--weights", "--allow-pickle")
    assert_known_outcome(run, 3, "pickle")
    assert not canary.exists()
    assert "Warning" not in run.stderr and "torch" not in run.stderr, run.stderr
    assert all(line.startswith(("error:", "  hint:")) for line in run.stderr.splitlines()), run.stderr


def test_disk_offload_is_said_in_t5peeks_words():
    run = run_t5peek("trace", "-m", "demo", PROMPT, "-n", "1", "--device-map", "auto", "--max-memory", "cpu=1MB")
    assert_known_outcome(run, 0, "warning:", "offloaded to disk")
    assert "meta device" not in run.stderr, run.stderr
    assert all(line.startswith("warning:") for line in run.stderr.splitlines()), run.stderr


# ----------------------------------------------------------------------------- shell completion


def _complete(env: dict) -> str:
    run = run_t5peek(env=env)
    assert_known_outcome(run, 0)
    return run.stdout


def test_bash_completes_commands_and_options():
    assert _complete({"_T5PEEK_COMPLETE": "complete_bash", "COMP_WORDS": "t5peek ar", "COMP_CWORD": "1"}).split() \
        == ["arch"]
    options = _complete({"_T5PEEK_COMPLETE": "complete_bash", "COMP_WORDS": "t5peek generate --num",
                         "COMP_CWORD": "2"}).split()
    assert options == ["--num-beams"]
    values = _complete({"_T5PEEK_COMPLETE": "complete_bash", "COMP_WORDS": "t5peek params --by ",
                        "COMP_CWORD": "3"}).split()
    assert values == ["component", "layer", "type"]


def test_zsh_completes_commands_and_options():
    commands = _complete({"_T5PEEK_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "t5peek ge"})
    assert commands.startswith("_arguments") and '"generate"' in commands and '"arch"' not in commands
    options = _complete({"_T5PEEK_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "t5peek trace --st"})
    assert '"--steps"' in options and '"--stats"' in options and '"--target"' not in options


@pytest.mark.installed
@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_the_bash_script_completes_in_bash():
    """The script `--show-completion bash` prints, sourced in a real bash, completes through the installed script."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(t5peek_script()).parent), os.environ.get("PATH", "")]),
           "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    script = ('source <(t5peek --show-completion bash); COMP_WORDS=(t5peek params --wei); COMP_CWORD=2; '
              '_t5peek_completion t5peek; printf "%s\\n" "${COMPREPLY[@]}"')
    result = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["--weights"]


@pytest.mark.parametrize("shell, installed", [("bash", ".bash_completions/t5peek.sh"), ("zsh", ".zfunc/_t5peek")])
def test_install_completion(tmp_path, shell, installed):
    run = run_t5peek("--install-completion", shell,
                     env={"HOME": str(tmp_path), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert_known_outcome(run, 0)
    assert "_T5PEEK_COMPLETE" in (tmp_path / installed).read_text()


_SCRIPTS = {"bash": "COMP_WORDS", "zsh": "#compdef t5peek", "fish": "complete --command t5peek",
            "powershell": "Register-ArgumentCompleter", "pwsh": "Register-ArgumentCompleter"}
_DETECTING = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": None}  # as users run it: typer detects the shell


@pytest.mark.parametrize("shell", list(_SCRIPTS))
def test_show_completion_honours_the_shell_named(shell):
    """`--show-completion zsh` printed bash's script from bash: the shell named was never read (issue #25)."""
    run = run_t5peek("--show-completion", shell, env=_DETECTING)
    assert_known_outcome(run, 0)
    assert _SCRIPTS[shell] in run.stdout
    assert all(marker not in run.stdout for other, marker in _SCRIPTS.items() if marker != _SCRIPTS[shell])


@pytest.mark.parametrize("shell, written", [("zsh", [".zfunc/_t5peek", ".zshrc"]),
                                            ("fish", [".config/fish/completions/t5peek.fish"]),
                                            ("bash", [".bash_completions/t5peek.sh", ".bashrc"])])
def test_install_completion_honours_the_shell_named(tmp_path, shell, written):
    home = tmp_path / "home"  # never the user's own
    home.mkdir()
    run = run_t5peek("--install-completion", shell, env={**_DETECTING, "HOME": str(home)})
    assert_known_outcome(run, 0)
    assert f"{shell} completion installed in {home / written[0]}" in run.stdout
    assert sorted(str(path.relative_to(home)) for path in home.rglob("*") if path.is_file()) == sorted(written)


def test_without_a_shell_named_or_detected_completion_asks_for_one(monkeypatch):
    import shellingham

    def undetectable():
        raise shellingham.ShellDetectionFailure()

    monkeypatch.setattr(shellingham, "detect_shell", undetectable)
    run = run_t5peek("--show-completion", env=_DETECTING)
    assert_known_outcome(run, 2, "cannot tell which shell this is", "t5peek --show-completion bash")
    assert run.stdout == ""


@pytest.mark.parametrize("option", ["--show-completion", "--install-completion"])
def test_an_unknown_shell_is_a_usage_error(tmp_path, option):
    home = tmp_path / "home"
    home.mkdir()
    run = run_t5peek(option, "tcsh", env={**_DETECTING, "HOME": str(home)})
    assert_known_outcome(run, 2, f"{option} takes bash, zsh, fish, powershell or pwsh, not 'tcsh'")
    assert run.stdout == "" and list(home.iterdir()) == []


@pytest.mark.parametrize("env, words", [
    ({"COMP_WORDS": "t5peek ar", "COMP_CWORD": "abc"}, "COMP_CWORD must be the number of the word completed"),
    ({"COMP_WORDS": "t5peek ar", "COMP_CWORD": None}, "needs COMP_CWORD"),
    ({"COMP_WORDS": None, "COMP_CWORD": "1"}, "needs COMP_WORDS"),
    ({"_T5PEEK_COMPLETE": "complete_tcsh"}, "'complete_tcsh' is not a completion request"),
    ({"_T5PEEK_COMPLETE": "nonsense"}, "'nonsense' is not a completion request"),
])
def test_a_malformed_completion_request_is_one_line(env, words):
    run = run_t5peek(env={"_T5PEEK_COMPLETE": "complete_bash", **env})
    assert_known_outcome(run, 2, words)
    assert run.stdout == ""


@pytest.mark.installed
def test_completion_imports_no_torch():
    code = ("import sys\nfrom t5peek.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('torch', 'transformers', 'huggingface_hub') if m in sys.modules])")
    env = {**os.environ, "_T5PEEK_COMPLETE": "complete_bash", "COMP_WORDS": "t5peek trace --", "COMP_CWORD": "2"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    completions, loaded = result.stdout.strip().rsplit("\n", 1)
    assert "--steps" in completions.split()
    assert loaded == "[]"


@pytest.mark.parametrize("command", ["trace", "generate", "lens", "attend"])
@pytest.mark.parametrize("model", ["demo", "google/flan-t5-base"])
def test_a_model_where_prompt_goes_is_named_as_the_slip(command, model):
    """`t5peek generate demo "…"`: the prompt is quoted; what is missing is -m (issue #24)."""
    run = run_t5peek(command, model, "translate English to German: the house")
    assert_known_outcome(run, 2, f"'{model}' names a model", "after -m")
    assert f't5peek {command} -m {model} "translate English to German: the house"' in run.stderr
    assert "Quote PROMPT" not in run.stderr
