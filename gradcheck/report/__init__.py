"""The report of a campaign: report.json (the source of truth), Markdown and HTML.

`Report` holds a `Cell` of statistics per layer type × activation × dtype, the `Failure`s
kept whole and `CostPoint`s of compact against dense; `write_report`/`read_report` and
`ReportWriter` keep it on disk atomically; `merge` joins the reports of shards;
`render_markdown` and `render_html` render it.

What lives here: `model` (the report's dataclasses), `failure` (a failure kept whole),
`_values` (the report's vocabulary and plain-value rules), `io` (files, the schema, the
environment), `shards` (merging), `markdown`, `html` and `figures` (rendering).

It may import errors, core (the result types), diagnosis (its data) and the package's
`__version__`; nothing of catalogue, user, strategies, campaign or cli, so that both
engines and the entry points can hand it their results.

Importing this package is cheap: it loads neither numpy, jinja2 nor matplotlib. The HTML
renderer imports jinja2 and matplotlib when called (``pip install 'gradcheck[report]'``).
"""

from __future__ import annotations

from gradcheck.report._values import printable
from gradcheck.report.html import render_html
from gradcheck.report.io import ReportWriter, environment, load_schema, read_report, write_report
from gradcheck.report.markdown import render_markdown
from gradcheck.report.model import (
    ORACLES,
    RATIO_BIN_EDGES,
    RATIO_BINS,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    STATUSES,
    VERDICTS,
    Cell,
    CostPoint,
    Counterexample,
    Failure,
    OracleSummary,
    Report,
    Summary,
    WorstEntry,
    decode_float,
    encode_float,
    ratio_bin,
    utc_now,
    worst_entries,
)
from gradcheck.report.shards import merge

__all__ = [
    "ORACLES",
    "RATIO_BINS",
    "RATIO_BIN_EDGES",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "STATUSES",
    "VERDICTS",
    "Cell",
    "CostPoint",
    "Counterexample",
    "Failure",
    "OracleSummary",
    "Report",
    "ReportWriter",
    "Summary",
    "WorstEntry",
    "decode_float",
    "encode_float",
    "environment",
    "load_schema",
    "merge",
    "printable",
    "ratio_bin",
    "read_report",
    "render_html",
    "render_markdown",
    "utc_now",
    "worst_entries",
    "write_report",
]
