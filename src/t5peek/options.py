"""Options shared by the commands, defined once, in two groups: where MODEL comes from (model, revision,
offline, refresh) and how weights run (device, dtype, allow-pickle, force, device-map, max-memory).
A command declares only the options it uses, then `open_model(...)` gives it the Python API's Model.
"""

from __future__ import annotations

import enum
from typing import Annotated, Optional

import typer

from t5peek.loading import DEFAULT_MODEL
from t5peek.errors import UsageError
from t5peek.placement import parse_max_memory
from t5peek.loading import DEMO_NAME


class Device(str, enum.Enum):
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"
    auto = "auto"


class Dtype(str, enum.Enum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


MODEL_HELP = "Hub id (org/name), local folder, or 'demo' for the bundled model."

ModelArg = Annotated[Optional[str], typer.Argument(help=MODEL_HELP, show_default=False, metavar="MODEL")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help=MODEL_HELP + f" [default: {DEFAULT_MODEL}]",
                                                 show_default=False)]
RevisionOpt = Annotated[Optional[str], typer.Option("--revision", help="Hub branch, tag or commit.")]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Use only the local cache; open no connection "
                                          "(same as HF_HUB_OFFLINE=1).")]
RefreshOpt = Annotated[bool, typer.Option("--refresh", help="Ask the Hub for the newest commit of the revision "
                                          "even when a copy is cached (by default the cache is used as is).")]
DeviceOpt = Annotated[Device, typer.Option("--device", help="Where to run.", case_sensitive=False)]
DtypeOpt = Annotated[Dtype, typer.Option("--dtype", help="Compute dtype; auto keeps the stored one "
                                         "(float32 on the CPU for float16 checkpoints).", case_sensitive=False)]
AllowPickleOpt = Annotated[bool, typer.Option("--allow-pickle", help="Accept pytorch_model.bin, read with "
                                              "torch's weights_only loader (code in it is refused).")]
MEMORY_CHECK_HELP = "Load even when the weights look too big for the memory available."
ForceOpt = Annotated[bool, typer.Option("--skip-memory-check", "--force", help=MEMORY_CHECK_HELP + " (--force is its "
                                        "old name, kept everywhere but on generate, where --force forces a token).")]
SkipMemoryCheckOpt = Annotated[bool, typer.Option("--skip-memory-check", help=MEMORY_CHECK_HELP)]
DeviceMapOpt = Annotated[Optional[str], typer.Option("--device-map", help="'auto' splits the model over GPUs, "
                                                   "the CPU and disk with accelerate.")]
MaxMemoryOpt = Annotated[Optional[list[str]], typer.Option("--max-memory", metavar="DEVICE=SIZE",
                                                           help="Memory per device for the split, e.g. "
                                                           "--max-memory 0=10GiB --max-memory cpu=30GB.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the traceback of errors.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.")]


def model_name(model_arg: str | None, model_opt: str | None) -> str:
    """MODEL may come as the positional argument or as --model; the default is the Hub's flan-t5-base."""
    if model_arg and model_opt and model_arg != model_opt:
        raise UsageError(f"MODEL given twice ('{model_arg}' and --model '{model_opt}'); give it once.")
    given = model_arg if model_arg is not None else model_opt
    return DEFAULT_MODEL if given is None else given  # an empty MODEL is refused by name, not replaced


def open_model(name: str, out, *, revision: str | None = None, offline: bool = False, refresh: bool = False,
               device: Device = Device.cpu, dtype: Dtype = Dtype.auto, allow_pickle: bool = False,
               force: bool = False, device_map: str | None = None, max_memory: list[str] | None = None):
    """The Python API's Model for a command, its warnings and progress going to `out`."""
    from t5peek.api import Model  # when a command runs: `t5peek --help` loads no model code

    return Model(name, revision=revision, offline=offline, refresh=refresh, device=Device(device).value,
                 dtype=Dtype(dtype).value, allow_pickle=allow_pickle, force=force, device_map=device_map,
                 max_memory=parse_max_memory(max_memory), warn=out.warn, progress=out.progress)


def check_prompt_is_not_a_model(prompt: str | None, model_given: bool, command: str) -> None:
    """`t5peek trace demo` takes 'demo' as the prompt: catch the slip before anything is downloaded."""
    from pathlib import Path

    if prompt is None:  # typer 0.16 with click >= 8.2 lets a missing argument through as None
        raise UsageError(f"t5peek {command} needs PROMPT.",
                         hint=f't5peek {command} -m demo "translate English to German: the house is small"')
    if model_given:
        return
    stripped = prompt.strip()
    if stripped == DEMO_NAME or (stripped and Path(stripped).expanduser().is_dir()):
        raise UsageError(f"PROMPT is '{stripped}', which names a model, and no -m was given, so the default model "
                         f"{DEFAULT_MODEL} would be used. Did you mean `-m {stripped}`?",
                         hint=f't5peek {command} -m {stripped} "translate English to German: the house is small"')
