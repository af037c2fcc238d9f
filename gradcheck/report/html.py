"""The report as one self-contained HTML page: inline CSS, figures as embedded PNG.

The page needs no network and runs no script. jinja2 renders it with autoescaping on,
so everything that came from user code (layer names, messages, snippets) is escaped.
jinja2 and matplotlib are imported when a page is rendered; without them `render_html`
raises GradcheckError naming the extra to install.
"""

from __future__ import annotations

import importlib.resources
import json
import math
from typing import Any

from gradcheck.errors import GradcheckError
from gradcheck.report import figures
from gradcheck.report._values import USER_STYLES
from gradcheck.report.markdown import array_names, number, shape_text
from gradcheck.report.model import ORACLES, VERDICTS, Cell, Failure, Report

_INSTALL = "pip install 'gradcheck[report]'"
_ENTRY_SYMBOLS = {"parameters": "∂E/∂θ", "inputs": "∂E/∂z"}
#: With more cells than this, the full table of cells starts folded away.
FEW_CELLS = 40
#: Arrays with at most this many entries are shown in full in a failure; larger ones by shape.
MAX_SHOWN_ENTRIES = 400


def _require() -> Any:
    """jinja2 (and a check that matplotlib is there), or a GradcheckError saying what to
    install instead of an ImportError traceback."""
    try:  # lazy: optional (gradcheck[report]) and heavy; importing gradcheck.report stays cheap
        import jinja2
        import matplotlib  # noqa: F401
    except ImportError as error:
        missing = error.name or "a dependency"
        raise GradcheckError(
            f"rendering the HTML report needs jinja2 and matplotlib ({missing} is not "
            f"installed): {_INSTALL}"
        ) from None
    return jinja2


def _verdict_class(cell: Cell) -> str:
    if cell.verdicts["mismatch"]:
        return "mismatch"
    if cell.verdicts["error"]:
        return "error"
    if cell.verdicts["invalid-input"]:
        return "invalid-input"
    if cell.coupled_only:
        return "coupled"
    return "pass"


def _array_text(values: Any) -> str:
    """Nested lists as aligned rows of numbers (one row per line)."""

    def entry(value: Any) -> str:
        return number(value, 6) if isinstance(value, (int, float)) else str(value)

    if not isinstance(values, list):
        return entry(values)
    rows = values if any(isinstance(v, list) for v in values) else [values]
    table = [[entry(v) for v in row] if isinstance(row, list) else [entry(row)] for row in rows]
    width = max((len(text) for row in table for text in row), default=0)
    return "\n".join("  ".join(text.rjust(width) for text in row) for row in table)


def _size(values: Any) -> int:
    return sum(_size(v) for v in values) if isinstance(values, list) else 1


def _failure_view(index: int, failure: Failure) -> dict[str, Any]:
    case = failure.case
    arrays = []
    for name, symbol in array_names(failure).items():
        shape = case.shapes.get(name)
        values = getattr(case, name)
        arrays.append({
            "name": symbol,
            "shape": shape_text(failure, name, shape).replace("×", " × "),
            "text": _array_text(values) if _size(values) <= MAX_SHOWN_ENTRIES else None,
        })  # fmt: skip
    oracles = [o for o in ORACLES if any(o in r.references for r in failure.worst_entries)]
    rows = [
        {
            "entry": f"{_ENTRY_SYMBOLS.get(r.target, r.target)} "
            + ", ".join(f"{k} {i}" for k, i in r.entry.items()),
            "hand_written": number(r.hand_written, 9),
            "references": [
                number(r.references[o], 9) if o in r.references else "" for o in oracles
            ],
            "ratio": number(r.ratio),
            "miss": not r.ratio <= 1.0,
        }
        for r in failure.worst_entries
    ]
    return {
        "id": f"failure-{index}",
        "index": index,
        "failure": failure,
        "arrays": arrays,
        "oracles": oracles,
        "rows": rows,
    }


def _plain_value(value: Any) -> str:
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _view(report: Report) -> dict[str, Any]:
    summary = report.summary
    failures = [_failure_view(i, f) for i, f in enumerate(report.failures, start=1)]
    first_failure: dict[tuple[str, str, str], str] = {}
    for view in failures:
        first_failure.setdefault(view["failure"].key, view["id"])
    cells = sorted(
        report.cells,
        key=lambda c: (
            -c.verdicts["mismatch"],
            -c.verdicts["error"],
            -c.verdicts["invalid-input"],
            c.key,
        ),
    )
    worst = [
        c.worst_ratio for c in report.cells if not c.coupled_only and c.worst_ratio is not None
    ]
    return {
        "report": report,
        "summary": summary,
        "axes": report.axes,
        "user_layers": report.user_layers,
        "user_styles": sorted(USER_STYLES),
        "verdicts": VERDICTS,
        "worst": number(max(worst, key=lambda r: math.inf if math.isnan(r) else r))
        if worst
        else None,
        "settings": [(k, _plain_value(v)) for k, v in report.settings.items()],
        "environment": [(k, _plain_value(v)) for k, v in report.environment.items()],
        "cells": [
            {
                "cell": c,
                "class": _verdict_class(c),
                "worst": number(c.worst_ratio),
                "failure": first_failure.get(c.key),
                "problem": c.has_problems,
            }
            for c in cells
        ],
        "failures": failures,
        "few_cells": FEW_CELLS,
        "heat_map": figures.heat_map(report),
        "heat_map_note": figures.heat_map_note(report),
        "histograms": figures.histograms(report),
        "cost": figures.cost_plot(report),
    }


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page: summary, a heat map of layer type ×
    activation per dtype, error/bound histograms per oracle, the compact-vs-dense cost
    plot (when measured), the cells, and every failure with its counterexample, worst
    entries and reproduction snippet."""
    jinja2 = _require()
    environment = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    source = importlib.resources.files("gradcheck.report").joinpath("report.html.jinja")
    template = environment.from_string(source.read_text(encoding="utf-8"))
    return str(template.render(**_view(report)))
