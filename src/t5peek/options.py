"""Options shared by every command that loads a model, defined once.

Each command takes `common: CommonOptions` built by `common_options(...)`, so the flags read the same everywhere.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from t5peek.loading import DEFAULT_MODEL


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
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Use only the local cache (same as HF_HUB_OFFLINE=1).")]
DeviceOpt = Annotated[Device, typer.Option("--device", help="Where to run.", case_sensitive=False)]
DtypeOpt = Annotated[Dtype, typer.Option("--dtype", help="Compute dtype; auto keeps the stored one "
                                         "(float32 on the CPU for float16 checkpoints).", case_sensitive=False)]
AllowPickleOpt = Annotated[bool, typer.Option("--allow-pickle", help="Accept pytorch_model.bin, read with "
                                              "torch's weights_only loader (code in it is refused).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Load even when the weights look too big for the "
                                        "memory available.")]
DeviceMapOpt = Annotated[Optional[str], typer.Option("--device-map", help="'auto' splits the model over GPUs, "
                                                   "the CPU and disk with accelerate.")]
MaxMemoryOpt = Annotated[Optional[list[str]], typer.Option("--max-memory", metavar="DEVICE=SIZE", help="Memory per device for the split, "
                                                           "e.g. --max-memory 0=10GiB --max-memory cpu=30GB.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the traceback of errors.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.")]


@dataclass(frozen=True)
class CommonOptions:
    model: str
    revision: str | None
    offline: bool
    device: str
    dtype: str
    allow_pickle: bool
    debug: bool
    json: bool


def common_options(model_arg: str | None, model_opt: str | None, revision: str | None, offline: bool,
                   device: Device, dtype: Dtype, allow_pickle: bool, debug: bool, json: bool) -> CommonOptions:
    """Bundle the shared flags; MODEL may come as the positional argument or as --model."""
    from t5peek.errors import UsageError

    if model_arg and model_opt and model_arg != model_opt:
        raise UsageError(f"MODEL given twice ('{model_arg}' and --model '{model_opt}'); give it once.")
    return CommonOptions(model=model_arg or model_opt or DEFAULT_MODEL, revision=revision, offline=offline,
                         device=Device(device).value, dtype=Dtype(dtype).value, allow_pickle=allow_pickle,
                         debug=debug, json=json)
