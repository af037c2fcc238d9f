"""Markdown and HTML renderings: what they show, what they escape, that the page stands
alone, and that a browser draws it."""

from __future__ import annotations

import base64
import os
import re
import shutil
import struct
import subprocess
import sys

import pytest
from test_report_support import build_report, full_report, hostile_cell

from gradcheck import GradcheckError
from gradcheck.report import (
    Cell,
    Counterexample,
    Failure,
    Report,
    render_html,
    render_markdown,
)
from gradcheck.report.markdown import MAX_CELLS

HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_MESSAGE = "mismatch: the cell </td></tr></table><b>broke</b> | out ``` of its fence"


def hostile_report() -> Report:
    """The campaign's report plus a cell and a failure whose strings came from hostile code."""
    report = full_report()
    report.cells.append(hostile_cell())
    report.failures.append(
        Failure(
            layer_type=HOSTILE_NAME,
            activation="a|b",
            dtype="float64",
            verdict="mismatch",
            message=HOSTILE_MESSAGE,
            diagnosis="sign | <i>scale</i>",
            case=Counterexample.of(activation="a|b", z=[[1.0]], theta=[[2.0]], delta=[[3.0]]),
            reproduction="print('</code></pre><script>alert(2)</script>')\n```\nprint('done')",
        )
    )
    return report


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(hostile_report())


def table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| ")]


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


# ---- Markdown ----------------------------------------------------------------------------------


def test_markdown_leads_with_status_and_summary_and_lists_problem_cells_first():
    report = full_report()
    text = render_markdown(report)
    summary = report.summary
    assert text.startswith("# gradcheck report: complete\n")
    assert f"**{summary.verdicts['mismatch']} mismatch**" in text
    assert f"{summary.examples} examples in {summary.cells} cells" in text
    rows = table_rows(text.split("## Failures")[0])[1:]  # after the header row
    assert len(rows) == len(report.cells)
    problems = sum(1 for c in report.cells if c.has_problems)
    assert problems >= 2
    for row in rows[:problems]:
        columns = [c.strip() for c in row.strip("|").split("|")]
        assert columns[5] != "·" or columns[8] != "·"  # a mismatch or invalid input


def test_markdown_shows_every_failure_with_its_reproduction():
    report = full_report()
    text = render_markdown(report)
    assert f"## Failures ({len(report.failures)})" in text
    for failure in report.failures:
        assert failure.message in text
        assert "```python\n" + failure.reproduction.rstrip() + "\n```" in text
    mismatch = next(f for f in report.failures if f.verdict == "mismatch")
    assert f"Diagnosis: **{mismatch.diagnosis}**" in text
    assert f"| {mismatch.worst_entries[0].hand_written:.9g} |" in text


def test_markdown_escapes_pipes_and_cannot_be_broken_out_of():
    text = render_markdown(hostile_report())
    rows = table_rows(text)
    header = next(r for r in rows if r.startswith("| layer type"))
    for row in rows:
        if "a\\|b" in row:
            assert unescaped_pipes(row) == unescaped_pipes(header)
    assert "a\\|b" in text and "\\<script\\>" in text
    # The message holds ``` so its fence must be longer; the snippet's own fence likewise.
    assert "````text\n" + HOSTILE_MESSAGE + "\n````" in text
    assert "````python\n" in text


def test_markdown_lists_only_cells_with_problems_when_there_are_many():
    report = build_report()
    report.cells += [
        Cell(
            layer_type=f"layer{i}",
            activation="tanh",
            dtype="float64",
            examples=1,
            verdicts={"pass": 1},
        )
        for i in range(MAX_CELLS)
    ]
    text = render_markdown(report)
    problems = [c for c in report.cells if c.has_problems]
    assert len(table_rows(text.split("## Failures")[0])) == 1 + len(problems)
    assert f"{len(report.cells) - len(problems)} more cells" in text


# ---- HTML --------------------------------------------------------------------------------------


def test_html_escapes_everything_that_came_from_user_code(page):
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;b&gt;broke&lt;/b&gt;" in page
    assert "<b>broke</b>" not in page and "<i>scale</i>" not in page
    assert "&lt;/code&gt;&lt;/pre&gt;&lt;script&gt;alert(2)" in page


def test_html_is_one_self_contained_page(page):
    assert not re.search(r"https?://", page)
    assert not re.search(r"<link|<iframe|<object|@import|url\(", page, re.IGNORECASE)
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 3  # heat map, histograms, cost
    for source in sources:
        prefix = "data:image/png;base64,"
        assert source.startswith(prefix)
        png = base64.b64decode(source[len(prefix) :])
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", png[16:24])
        assert width > 300 and height > 200


def test_html_has_every_section_and_failure(page):
    report = hostile_report()
    for heading in (
        "Worst error / bound per cell",
        "Error / bound per oracle",
        "Cost: compact against dense",
        "Cells",
        f"Failures ({len(report.failures)})",
    ):
        assert f"<h2>{heading}</h2>" in page
    for index in range(1, len(report.failures) + 1):
        assert f'id="failure-{index}"' in page
    assert page.count('<a href="#failure-') >= sum(
        1 for c in report.cells if c.verdicts["mismatch"]
    )


def test_html_draws_figures_only_when_there_is_data():
    empty = render_html(Report(created="2024-05-01T12:00:00Z"))
    assert "<img" not in empty and "No cell has finished yet" in empty
    without_cost = render_html(build_report())
    assert without_cost.count("<img") == 2 and "compact against dense" not in without_cost


def test_a_layer_name_with_dollar_signs_is_drawn_as_written():
    report = build_report()
    report.cells.append(Cell(layer_type=r"odd$\frac$name", activation="tanh", dtype="float64"))
    assert r"odd$\frac$name" in render_html(report)


@pytest.mark.parametrize("missing", ["jinja2", "matplotlib"])
def test_a_missing_optional_dependency_says_what_to_install(monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` fail
    with pytest.raises(GradcheckError, match=r"pip install 'gradcheck\[report\]'") as raised:
        render_html(build_report())
    assert missing in str(raised.value)


# ---- a real browser ------------------------------------------------------------------------------


def _chromium(tmp_path, *arguments: str) -> subprocess.CompletedProcess[str]:
    command = [
        shutil.which("chromium") or "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--enable-logging=stderr",  # the page's console messages, as INFO:CONSOLE lines
        "--v=0",
        f"--user-data-dir={tmp_path / 'profile'}",
        *arguments,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _seen_report() -> Report:
    """The campaign's report with hostile names, plus a user layer whose code raised: what
    a user opens after a run with failures and after `gradcheck check`."""
    report = hostile_report()
    user = Cell(layer_type="my_layers.affine", activation="functional", dtype="float64")
    user.add_error()
    report.cells.append(user)
    report.failures.append(
        Failure(
            layer_type="my_layers.affine",
            activation="functional",
            dtype="float64",
            verdict="error",
            message="backward raised RuntimeError: boom",
            exception="UserCodeError",
            case=Counterexample.of(
                activation="functional", z=[[1.0]], theta=[[[2.0]]], delta=[[1.0]]
            ),
            reproduction="gradcheck.check_backward(...)",
        )
    )
    return report


@pytest.mark.browser
@pytest.mark.skipif(
    shutil.which("chromium") is None and os.environ.get("CI") != "true",
    reason="chromium is not installed (CI installs it, and there a missing browser fails)",
)
def test_a_headless_browser_draws_the_page(tmp_path):
    html = tmp_path / "report.html"
    html.write_text(render_html(_seen_report()), encoding="utf-8")
    # What the browser built from the page: the sections a user reads are in its DOM.
    dumped = _chromium(tmp_path, "--dump-dom", html.as_uri())
    dom = dumped.stdout
    assert "<h2>Failures (" in dom and dom.count('<section class="failure"') >= 2
    assert re.search(r'<img src="data:image/png;base64,[^"]{1000,}"[^>]*alt="heat map', dom)
    assert 'class="verdict error"' in dom and "UserCodeError" in dom
    assert "<script>alert(1)</script>" not in dom  # the hostile name stayed text
    # No console errors: the page has no script, and nothing it loads may fail.
    console = [line for line in dumped.stderr.splitlines() if ":CONSOLE" in line]
    assert not [line for line in console if "Uncaught" in line or "rror" in line], console
    screenshot = tmp_path / "screenshot.png"
    _chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1280,2000", html.as_uri())
    assert screenshot.exists(), "chromium wrote no screenshot"
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert struct.unpack(">II", png[16:24]) == (1280, 2000)
    from matplotlib.image import imread

    pixels = imread(screenshot)[:, :, :3]
    # Not a blank page: plenty of ink, and the figures' colours (blue and red) are drawn.
    assert (pixels.mean(axis=2) < 0.5).mean() > 0.01
    blue = (pixels[:, :, 2] > 0.5) & (pixels[:, :, 0] < 0.3)
    red = (pixels[:, :, 0] > 0.5) & (pixels[:, :, 1] < 0.2) & (pixels[:, :, 2] < 0.2)
    assert blue.sum() > 1000 and red.sum() > 100
    keep = os.environ.get("GRADCHECK_REPORT_SCREENSHOT")
    if keep:  # to look at the page: GRADCHECK_REPORT_SCREENSHOT=/tmp/report-screenshot.png
        shutil.copyfile(screenshot, keep)
