"""How the command line's usage errors become t5peek's one-line messages, and shell completion: the only module
that reaches into Typer's and Click's internals (their exception classes, a parameter's type, its choices and
bounds, the completion scripts).

Recent Typer releases carry a private copy of Click (`typer._click`); older ones use Click itself. Everything that
depends on which is here, so a Typer upgrade that moves them again breaks one small module.
"""

from __future__ import annotations

import difflib
import enum
import os
import re
import sys

import typer
from typer.core import TyperGroup

from t5peek.errors import ExitCode
from t5peek.output import Terminated, report_failure

try:
    from typer._click import exceptions as click_exceptions  # typer 0.2x carries its own copy of click
except ImportError:
    from click import exceptions as click_exceptions


class Group(TyperGroup):
    """Usage errors the t5peek way: one line on stderr naming the option and what it takes, a hint, exit 2, and
    under --json the error document on stdout, like every other failure."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        self._args = [str(arg) for arg in (sys.argv[1:] if args is None else args)]
        _complete_the_shell_named(self)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except getattr(click_exceptions, "NoArgsIsHelpError", ()) as exc:
            exc.show()
            code = int(ExitCode.USAGE)
        except click_exceptions.UsageError as exc:
            code = self._usage_error(exc, self._args)
        except click_exceptions.ClickException as exc:
            code = report_failure("error", ExitCode.ERROR, exc.format_message(), None, None)
        except typer.Abort as exc:  # click 8.1's answer to Ctrl-C while parsing
            code = self._terminated() if isinstance(exc.__context__, Terminated) else \
                report_failure("interrupted", ExitCode.INTERRUPTED, "interrupted.", None, None)
        except OSError as exc:  # help or --version on a full disk; a closed pipe is handled by typer
            code = report_failure("error", ExitCode.ERROR, f"Cannot write the output: {exc.strerror or exc}.", None,
                                  None)
        code = code if isinstance(code, int) else int(ExitCode.OK)
        if standalone_mode:
            sys.exit(code)
        return code

    def _main_shell_completion(self, ctx_args, prog_name, complete_var=None):
        """A completion request (`_T5PEEK_COMPLETE=complete_bash` and what the shell sets beside it) that typer
        cannot read is one line and exit 2, not a traceback."""
        variable = complete_var or f"_{prog_name}_COMPLETE".replace("-", "_").upper()
        instruction = os.environ.get(variable)
        if not instruction:
            return
        problem = _completion_problem(variable, instruction)
        if problem is None:
            try:
                super()._main_shell_completion(ctx_args, prog_name, complete_var)
                return
            except Exception as exc:  # noqa: BLE001 - whatever else the environment holds
                problem = f"Shell completion failed: {type(exc).__name__}: {exc}".rstrip(": ")
        sys.exit(report_failure("usage", ExitCode.USAGE, problem,
                                "The script of `t5peek --show-completion SHELL` sets these variables.", None))

    # typer turns every KeyboardInterrupt it sees into a silent exit 130; SIGTERM while parsing is reported here.

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except Terminated:
            raise typer.Exit(self._terminated()) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Terminated:
            raise typer.Exit(self._terminated()) from None

    def _terminated(self) -> int:
        args = getattr(self, "_args", [])
        command = _command_in(args, self.commands)
        return report_failure("interrupted", ExitCode.TERMINATED, "terminated.", None,
                              (command or "") if _json_asked(args) else None)

    def _usage_error(self, exc, args: list[str]) -> int:
        command = _command_in(args, self.commands)
        try:
            message, hint = describe_usage_error(exc, args, command, self.commands)
        except Exception:  # noqa: BLE001 - click's own words are better than a traceback
            message, hint = exc.format_message(), "See `t5peek --help`."
        return report_failure("usage", ExitCode.USAGE, message, hint, (command or "") if _json_asked(args) else None)


# ----------------------------------------------------------------------------- shell completion

SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
_INSTRUCTION = re.compile(rf"(source|complete)_({'|'.join(SHELLS)})")


def _completion_problem(variable: str, instruction: str) -> str | None:
    if not _INSTRUCTION.fullmatch(instruction):
        return (f"{variable}={instruction!r} is not a completion request; t5peek completes "
                f"{_or(list(SHELLS))} (complete_bash, source_zsh, ...).")
    if instruction != "complete_bash":
        return None
    for name, what in (("COMP_WORDS", "the words typed so far"), ("COMP_CWORD", "the number of the word completed")):
        if name not in os.environ:
            return f"Shell completion for bash needs {name}: {what}."
    cword = os.environ["COMP_CWORD"]
    return None if cword.strip().isdigit() else f"COMP_CWORD must be the number of the word completed, not {cword!r}."


def _complete_the_shell_named(group) -> None:
    """`--show-completion zsh`, `--install-completion fish`: the shell named after the option, the current shell
    when none is. Where typer can detect the shell, its options take no value, so the name was never read and
    bash got bash's script whatever it named."""
    for param in group.params:
        if param.name in ("show_completion", "install_completion"):
            install = param.name == "install_completion"
            param.callback = _install_completion if install else _show_completion
            param.help = (f"{'Install' if install else 'Show'} completion for SHELL when one follows "
                          f"({_or(list(SHELLS))}), else for the current shell.")


def _show_completion(ctx, param, value) -> None:
    if not value or ctx.resilient_parsing:
        return
    from typer._completion_shared import get_completion_script

    prog_name, variable = _completion_names(ctx)
    typer.echo(get_completion_script(prog_name=prog_name, complete_var=variable, shell=_shell(ctx, param, value)))
    raise typer.Exit(int(ExitCode.OK))


def _install_completion(ctx, param, value) -> None:
    if not value or ctx.resilient_parsing:
        return
    from typer._completion_shared import install

    prog_name, variable = _completion_names(ctx)
    shell = _shell(ctx, param, value)
    try:
        _, path = install(shell=shell, prog_name=prog_name, complete_var=variable)
    except (OSError, ValueError, LookupError) as exc:  # no home to write into, no powershell to ask for $profile
        reason = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).rstrip(".")
        where = getattr(exc, "filename", None)
        raise typer.Exit(report_failure("error", ExitCode.ERROR, f"Cannot install the {shell} completion: {reason}"
                                        + (f" ({where})." if where else "."), None, None)) from None
    typer.echo(f"{shell} completion installed in {path}; it takes effect in the next {shell} started.")
    raise typer.Exit(int(ExitCode.OK))


def _completion_names(ctx) -> tuple[str, str]:
    prog_name = ctx.find_root().info_name or "t5peek"
    return prog_name, "_{}_COMPLETE".format(prog_name.replace("-", "_").upper())


def _shell(ctx, param, value) -> str:
    """The shell named after the option (as its value, or as the next word), else the one t5peek runs in."""
    option = param.opts[0]
    args = getattr(ctx.find_root().command, "_args", [])
    named = str(getattr(value, "value", value)) if isinstance(value, (str, enum.Enum)) else None
    if named is None and option in args and args.index(option) + 1 < len(args):
        following = args[args.index(option) + 1]
        named = None if following.startswith("-") else following
    if named is not None and named not in SHELLS:
        raise typer.Exit(report_failure("usage", ExitCode.USAGE, f"{option} takes {_or(list(SHELLS))}, not "
                                                                 f"{named!r}.", "See `t5peek --help`.", None))
    return named or _detected_shell(option)


def _detected_shell(option: str) -> str:
    from typer._completion_shared import _get_shell_name

    try:
        shell = _get_shell_name()
    except Exception:  # noqa: BLE001 - shellingham reads /proc or runs ps: anything may fail there
        shell = None
    if shell not in SHELLS:
        raise typer.Exit(report_failure("usage", ExitCode.USAGE,
                                        f"Cannot tell which shell this is{f' ({shell})' if shell else ''}.",
                                        f"Name it: t5peek {option} bash (or {_or(list(SHELLS[1:]))}).", None))
    return shell


def _command_in(args: list[str], commands) -> str | None:
    """The command named on the command line: the first word that is not an option (the root takes flags only)."""
    for arg in args:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg if arg in commands else None
    return None


def _json_asked(args: list[str]) -> bool:
    return "--json" in (args[:args.index("--")] if "--" in args else args)


# ----------------------------------------------------------------------------- usage errors in words


def describe_usage_error(exc, args: list[str], command: str | None, commands) -> tuple[str, str]:
    """click's usage error as t5peek's one line and a hint."""
    where = f"t5peek {command}" if command else "t5peek"
    hint = f"See `{where} --help`."
    param = getattr(exc, "param", None)
    if isinstance(exc, click_exceptions.NoSuchOption):
        return _no_such_option(exc, where), hint
    if isinstance(exc, click_exceptions.MissingParameter) and param is not None:
        return _missing(param, where), _missing_hint(param, where, hint)
    if isinstance(exc, click_exceptions.BadParameter) and param is not None:
        return _bad_value(param, args, exc.message), hint
    if isinstance(exc, click_exceptions.BadOptionUsage):
        return _bad_option_usage(exc, commands.get(command) if command else None), hint
    text = exc.format_message()
    extra = re.match(r"Got unexpected extra argument\S* \((.*)\)", text)
    if extra:
        slip = _model_slip(command, args)
        if slip:
            return slip
        return f"{where} got more arguments than it takes: {extra.group(1)}.", _extra_hint(command, hint)
    if text.startswith("No such command"):
        return _no_such_command(args, commands), "See `t5peek --help`."
    return text, hint


def _no_such_option(exc, where: str) -> str:
    message = f"{where} has no option {exc.option_name}."
    close = [p for p in (exc.possibilities or []) if p not in ("--help", "-h")]
    return message + (f" Did you mean {_or(close)}?" if close else "")


def _missing(param, where: str) -> str:
    what = getattr(param, "help", None)
    return f"{where} needs {_name(param)}" + (f": {what[0].lower()}{what[1:].rstrip('.')}." if what else ".")


def _missing_hint(param, where: str, hint: str) -> str:
    if _name(param) == "PROMPT":
        return f'For example: {where} -m demo "translate English to German: the house is small". {hint}'
    return hint


_TAKES_PROMPT = ("trace", "generate", "lens", "attend")
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def _model_slip(command: str | None, args: list[str]) -> tuple[str, str] | None:
    """`t5peek generate demo "the house"`: the model given where PROMPT goes, without -m."""
    from pathlib import Path

    from t5peek.loading import DEMO_NAME

    if command not in _TAKES_PROMPT or command not in args:
        return None
    given = args[args.index(command) + 1:]
    if len(given) < 2 or given[0].startswith("-"):
        return None
    first = given[0]
    if first != DEMO_NAME and not _HUB_ID.fullmatch(first) and not Path(first).expanduser().is_dir():
        return None
    prompt = next((arg for arg in given[1:] if not arg.startswith("-")), "the house is small")
    return (f"'{first}' names a model, but t5peek {command} takes PROMPT first and the model after -m.",
            f't5peek {command} -m {first} "{prompt}"')


def _extra_hint(command: str | None, hint: str) -> str:
    if command in ("trace", "generate", "lens", "attend"):
        return f'Quote PROMPT when it has spaces: t5peek {command} -m demo "the house is small". {hint}'
    return hint


def _no_such_command(args: list[str], commands) -> str:
    name = next((arg for arg in args if not arg.startswith("-")), "")
    close = difflib.get_close_matches(name, list(commands))
    return (f"'{name}' is not a t5peek command; the commands are {_or(list(commands), 'and')}."
            + (f" Did you mean {_or(close)}?" if close else ""))


def _bad_option_usage(exc, command) -> str:
    option = exc.option_name
    if "does not take a value" in exc.format_message():
        return f"{option} is a flag: it takes no value."
    param = next((p for p in getattr(command, "params", []) if option in p.opts), None)
    choices = _choices(param) if param is not None else []
    return f"{option} needs a value" + (f": {_or(choices)}." if choices else ".")


def _bad_value(param, args: list[str], reason: str) -> str:
    """`--by 'colour' is not one of component, layer or type.`, `--depth must be at least 0, not -1.`"""
    name = _name(param)
    value = _given(param, args)
    given = f" {value!r}" if value is not None else ""
    choices = _choices(param)
    if choices:
        return f"{name}{given} is not one of {_or(choices)}."
    number = _number_type(param)
    if number is not None and value is not None and not _parses(value, number):
        return f"{name} takes {'a whole number' if number is int else 'a number'}, not {value!r}."
    low, high = _bounds(param)
    if low is not None or high is not None:
        allowed = f"from {low} to {high}" if low is not None and high is not None else \
            f"at least {low}" if low is not None else f"at most {high}"
        return f"{name} must be {allowed}" + (f", not {value}." if value is not None else ".")
    return f"{name}{given}: {reason.removeprefix('Value error, ')}"


def _name(param) -> str:
    long = [opt for opt in getattr(param, "opts", []) if opt.startswith("--")]
    if long:
        return long[0]
    return param.metavar or (param.name or "").upper()


def _given(param, args: list[str]) -> str | None:
    """The value given on the command line to option `param` (the last one, which is the one that counts)."""
    found = None
    opts = [opt for opt in getattr(param, "opts", []) if opt.startswith("-")]
    for index, arg in enumerate(args):
        for opt in opts:
            if arg == opt and index + 1 < len(args):
                found = args[index + 1]
            elif arg.startswith(opt + "=") and opt.startswith("--"):
                found = arg[len(opt) + 1:]
            elif not opt.startswith("--") and arg.startswith(opt) and len(arg) > len(opt):
                found = arg[len(opt):]
    return found


def _choices(param) -> list[str]:
    descriptor = getattr(param, "type_descriptor", None)  # typer 0.2x
    choices = getattr(descriptor, "choices", None) or getattr(getattr(param, "type", None), "choices", None)
    return [c.value if isinstance(c, enum.Enum) else str(c) for c in choices or ()]


def _number_type(param) -> type | None:
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if annotation in (int, float):
        return annotation
    name = getattr(getattr(param, "type", None), "name", "")  # click's types
    return int if name.startswith("integer") else float if name.startswith("float") else None


def _bounds(param) -> tuple[object, object]:
    holder = param if hasattr(param, "type_descriptor") else getattr(param, "type", None)
    return getattr(holder, "min", None), getattr(holder, "max", None)


def _parses(value: str, number: type) -> bool:
    try:
        number(value)
    except ValueError:
        return False
    return True


def _or(words: list[str], last: str = "or") -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


