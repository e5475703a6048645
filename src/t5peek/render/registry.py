"""Which renderer draws which record: the one map, used by the notebook display and by commands that draw a
record with its renderer's defaults."""

from __future__ import annotations

from typing import Callable

from t5peek.arch import ArchReport
from t5peek.attend.records import AttendReport
from t5peek.budget.records import BudgetReport
from t5peek.generate import DecodeRun
from t5peek.info import ModelInfo
from t5peek.attribution.records import AttributionRun
from t5peek.interventions.records import KnockoutRun, PatchRun
from t5peek.lens.records import LensRun
from t5peek.params import ParamReport
from t5peek.render.arch import render_arch
from t5peek.render.attend import render_attend
from t5peek.render.attribute import render_attribute
from t5peek.render.budget import render_budget
from t5peek.render.info import render_info
from t5peek.render.knockout import render_knockout
from t5peek.render.patch import render_patch
from t5peek.render.lens import render_lens
from t5peek.render.params import render_params
from t5peek.render.steps import render_run
from t5peek.render.trace import render_trace
from t5peek.trace import TraceReport

RENDERERS: dict[type, Callable] = {
    ModelInfo: render_info, ArchReport: render_arch, ParamReport: render_params, TraceReport: render_trace,
    DecodeRun: render_run, AttendReport: render_attend, BudgetReport: render_budget, LensRun: render_lens,
    PatchRun: render_patch, KnockoutRun: render_knockout, AttributionRun: render_attribute,
}


def renderer_for(record) -> Callable:
    """`render(record, console)` for a t5peek record."""
    try:
        return RENDERERS[type(record)]
    except KeyError:
        raise TypeError(f"no renderer draws a {type(record).__name__}") from None
