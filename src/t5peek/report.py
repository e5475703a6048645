"""`t5peek report`: every view of one model and one prompt, computed in one session (the weights load once).

The core returns the records, as each view's command would compute them; the page is drawn apart
(render/pages/report.py). A view this model's family does not support (an UnsupportedModel or other usage
refusal) becomes a section that says why; any other failure fails the report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from t5peek.errors import UsageError

VIEWS = ("info", "arch", "params", "trace", "generate", "lens", "attend")


@dataclass(frozen=True)
class ReportSection:
    view: str  # the command whose record this is
    record: object | None  # None when the view could not run
    error: str | None = None  # why it could not


@dataclass(frozen=True)
class Report:
    model: str
    prompt: str
    sections: tuple[ReportSection, ...]

    def json_fields(self) -> dict:
        from t5peek.jsonable import document

        return {"model": self.model, "prompt": self.prompt,
                "sections": {s.view: document(s.view, s.record) if s.record is not None else {"error": s.error}
                             for s in self.sections}}


def build_report(model, prompt: str, max_new_tokens: int | None = None,
                 on_view: Callable[[str], None] | None = None) -> Report:
    """Every view of `model` (a t5peek.Model) on `prompt`: info, arch, params, trace, generate (with every head's
    attention and the self-attention maps, as `generate --self --html` keeps them), lens and attend."""
    views = {
        "info": lambda: model.info(),
        "arch": lambda: model.arch(),
        "params": lambda: model.params(),
        "trace": lambda: model.trace(prompt),
        "generate": lambda: _generate(model, prompt, max_new_tokens),
        "lens": lambda: model.lens(prompt, max_new_tokens=max_new_tokens),
        "attend": lambda: model.attend(prompt),
    }
    sections = []
    for view in VIEWS:
        if on_view is not None:
            on_view(view)
        try:
            sections.append(ReportSection(view, views[view]()))
        except UsageError as exc:  # this family has no such view (or not with these options)
            sections.append(ReportSection(view, None, exc.message))
    return Report(model.name, prompt, tuple(sections))


def _generate(model, prompt: str, max_new_tokens: int | None):
    try:
        return model.generate(prompt, max_new_tokens=max_new_tokens, keep_heads=True, self_attention=True)
    except UsageError:  # the self-attention maps follow the T5 and BART families: the rest without them
        return model.generate(prompt, max_new_tokens=max_new_tokens, keep_heads=True)
