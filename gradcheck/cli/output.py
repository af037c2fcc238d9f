"""Writing a report's files, shared by the commands that write or render reports."""

from __future__ import annotations

import sys
from pathlib import Path

from gradcheck.errors import GradcheckError
from gradcheck.report import Report, render_html, render_markdown


def render(report: Report, out: Path, *, html: bool) -> None:
    """report.md (and report.html unless html is False) beside report.json in `out`."""
    write_text(out / "report.md", render_markdown(report))
    if html:
        try:
            write_text(out / "report.html", render_html(report))
        except GradcheckError as missing:  # jinja2 or matplotlib absent
            print(f"report.html skipped: {missing}", file=sys.stderr)


def write_text(path: Path, text: str) -> None:
    """Write `path` through a temporary file, so that a reader never sees half of it."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
