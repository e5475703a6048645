"""The `report` page: one section per view (an element with the view's name as its id), linked from a table of
contents, each drawn by the view's own module from its --json document."""

from __future__ import annotations

from t5peek.render.pages import section, view
from t5peek.render.pages.shell import Section, page


def report_page(report) -> str:
    sections = [section(s.view, s.record) if s.record is not None else Section(view(s.view), {}, error=s.error)
                for s in report.sections]
    return page(f"t5peek report · {report.model}", "t5peek report", sections, contents=True,
                subtitle=f"{report.model} · {report.prompt}")
