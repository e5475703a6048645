"""`t5peek report`: one offline page, a section per view, computed in one session; drawn by a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from support.browser import browser, dump_dom, needs_browser, png_is_not_blank, script_errors

pytest.importorskip("torch")

from t5peek.jsonable import document  # noqa: E402
from t5peek.render.pages.packing import expand  # noqa: E402
from t5peek.report import VIEWS, build_report  # noqa: E402

PROMPT = "translate English to Spanish: the red house is small"
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "report.png"


LOADS: list[str] = []


@pytest.fixture(scope="module")
def report():
    import t5peek
    from t5peek import loading

    original = loading.load_model

    def counted(*args, **kwargs):
        LOADS.append(str(args[0]))
        return original(*args, **kwargs)

    loading.load_model = counted
    try:
        return build_report(t5peek.Model("demo"), PROMPT, max_new_tokens=8)
    finally:
        loading.load_model = original


@pytest.fixture(scope="module")
def page_text(report):
    from t5peek.render.pages.report import report_page

    return report_page(report)


def _blocks(text: str) -> dict[str, dict]:
    found = re.findall(r'<script type="application/json" class="t5peek-data" data-view="([a-z]+)" '
                       r'id="t5peek-data-\1">(.*?)</script>', text, re.S)
    return {view: expand(json.loads(body)) for view, body in found}


def test_report_has_every_view_in_order_computed_in_one_session(report):
    assert [s.view for s in report.sections] == list(VIEWS)
    assert all(s.error is None and s.record is not None for s in report.sections)
    generate = dict((s.view, s.record) for s in report.sections)["generate"]
    assert generate.head_attention and generate.encoder_self_attention is not None
    assert len(generate.steps) <= 8
    assert len(LOADS) == 1  # trace, generate, lens and attend all ran on one load of the weights


def test_report_page_sections_contents_and_data(report, page_text):
    for view in VIEWS:
        assert f'<section id="{view}" class="view" data-view="{view}">' in page_text
        assert f'<a href="#{view}">' in page_text
    assert '<nav id="contents">' in page_text
    blocks = _blocks(page_text)
    assert list(blocks) == list(VIEWS)
    for s in report.sections:
        data = blocks[s.view]
        if s.view == "generate":
            data.pop("attention")
        assert data == document(s.view, s.record), s.view  # golden: each view's --json document
    assert "default-src 'none'" in page_text and not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", page_text)
    assert len(page_text.encode("utf-8")) < 500_000


def test_a_view_the_family_lacks_says_why_in_its_place():
    from t5peek.errors import UnsupportedModel
    from t5peek.render.pages.report import report_page
    from t5peek.report import Report, ReportSection

    class Fake:
        name = "fake"

        def __getattr__(self, view):
            def refuse(*args, **kwargs):
                raise UnsupportedModel(f"{view} follows the T5 and BART families.")
            return refuse

    built = build_report(Fake(), PROMPT)
    assert all(s.record is None and "follows the T5 and BART families" in s.error for s in built.sections)
    text = report_page(Report("fake", PROMPT, (ReportSection("lens", None, "lens: <not> here"),)))
    assert '<section id="lens"' in text and "lens: &lt;not&gt; here" in text and "t5peek-data-lens" not in text


@pytest.fixture
def report_command():
    """`t5peek report` on the app (cli.py registers it; until then the test adds it)."""
    from t5peek.cli import app
    from t5peek.commands import report

    added = not any(command.name == "report" for command in app.registered_commands)
    if added:
        app.command("report", help=report.HELP)(report.report_command)
    yield
    if added:
        app.registered_commands.pop()


def test_report_command_writes_the_page(report_command, tmp_path):
    from helpers import run_t5peek

    target = tmp_path / "report.html"
    run = run_t5peek("report", "-m", "demo", PROMPT, "-o", target, "--max-new-tokens", "4")
    assert run.exit_code == 0, run.stderr
    assert f"wrote the report to {target}" in run.stderr and run.stdout == ""
    assert list(_blocks(target.read_text(encoding="utf-8"))) == list(VIEWS)
    missing = run_t5peek("report", "-m", "demo", PROMPT)
    assert missing.exit_code == 2 and "--output needs a file name" in missing.stderr
    nowhere = run_t5peek("report", "-m", "demo", PROMPT, "-o", tmp_path / "no" / "r.html")
    assert nowhere.exit_code == 2 and "does not exist" in nowhere.stderr and "Loading" not in nowhere.stderr


@pytest.mark.slow
@pytest.mark.browser
@needs_browser
def test_browser_draws_every_section_and_the_screenshot(page_text, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(page_text, encoding="utf-8")
    dom = dump_dom(tmp_path, page)
    assert script_errors(dom) is None, script_errors(dom)
    for view in VIEWS:
        assert re.search(rf'<section id="{view}" class="view" data-view="{view}"[^>]* data-rendered="true"', dom), view
    assert 'id="step-0"' in dom and "data-rendered-cells=" in dom

    shot = tmp_path / "report.png"
    result = browser(tmp_path, f"--screenshot={shot}", "--window-size=1200,1500", "--hide-scrollbars",
                     url=page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.is_file() and png_is_not_blank(shot)
    if os.environ.get("T5PEEK_UPDATE_SCREENSHOT") == "1":  # the README's picture, refreshed on purpose only
        shutil.copyfile(shot, SCREENSHOT)
