"""t5peek report PROMPT [-m MODEL] -o FILE.html"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from t5peek.options import (AllowPickleOpt, DebugOpt, Device, DeviceMapOpt, DeviceOpt, Dtype, DtypeOpt, ForceOpt,
                            MaxMemoryOpt, ModelOpt, OfflineOpt, RefreshOpt, RevisionOpt,
                            check_prompt_is_not_a_model, model_name, open_model)
from t5peek.output import Output, cli_command

HELP = """One offline HTML page for one model and prompt, a section per view: info, arch, params, trace,
generate (every layer's and head's attention, the self-attention maps), lens and attend, linked from
a table of contents. Computed in one session: the weights load once. A view the model's family does
not support says so in its place. The page needs no network: send the one file to a friend.

Examples:

\b
  t5peek report -m demo "translate English to Spanish: the red house" \\
      -o report.html
  t5peek report "summarize: ..." -m google/flan-t5-small -o report.html \\
      --max-new-tokens 20
"""


@cli_command
def report_command(
    prompt: Annotated[str, typer.Argument(help="The text to feed the encoder.", show_default=False,
                                          metavar="PROMPT")],
    output: Annotated[str, typer.Option("--output", "-o", help="The page to write, replaced whole; a FIFO or "
                                        "device such as /dev/stdout is written as it is.", metavar="FILE.html",
                                        show_default=False)] = "",
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", "-n", help="generate and lens: stop "
                                                          "after this many new tokens [default: as each "
                                                          "command's]", show_default=False)] = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    refresh: RefreshOpt = False,
    device: DeviceOpt = Device.cpu,
    dtype: DtypeOpt = Dtype.auto,
    allow_pickle: AllowPickleOpt = False,
    device_map: DeviceMapOpt = None,
    max_memory: MaxMemoryOpt = None,
    force: ForceOpt = False,
    debug: DebugOpt = False,
) -> None:
    from t5peek.outfile import check_target, write_target
    from t5peek.report import build_report

    check_prompt_is_not_a_model(prompt, model is not None, "report")
    target = check_target(output, "--output")
    out = Output(False, "report")
    peek = open_model(model_name(None, model), out, revision=revision, offline=offline, refresh=refresh,
                      device=device, dtype=dtype, allow_pickle=allow_pickle, force=force, device_map=device_map,
                      max_memory=max_memory)
    report = build_report(peek, prompt, max_new_tokens, on_view=lambda view: out.note(f"{view}…"))
    from t5peek.render.pages.report import report_page

    write_target(target, report_page(report).encode("utf-8"))
    for skipped in (s for s in report.sections if s.error is not None):
        out.warn(f"{skipped.view}: {skipped.error}")
    out.note(f"wrote the report to {target.path}")
