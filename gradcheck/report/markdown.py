"""The report as Markdown, for pull requests and terminals.

Everything that came from user code (layer names, messages, reproduction snippets) is
escaped or fenced, so that a name with a pipe cannot break a table and a message cannot
inject markup.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from gradcheck.report._values import USER_STYLES, printable
from gradcheck.report.model import ORACLES, VERDICTS, Cell, Failure, Report, WorstEntry

#: With at most this many cells every cell is listed; with more, only cells with problems.
MAX_CELLS = 40
#: Failures shown in full; the rest are counted (report.json has them all).
MAX_FAILURES = 20

_STATUS_NOTES = {
    "running": "The campaign is still running: this report covers the cells finished so far.",
    "interrupted": "The campaign was interrupted: this report covers the cells that finished.",
    "complete": "",
}
_ENTRY_SYMBOLS = {"parameters": "∂E/∂θ", "inputs": "∂E/∂z"}
# Characters with a meaning in Markdown tables or inline markup; escaped with a backslash.
_SPECIAL = re.compile(r"([\\|`*<>\[\]])")


def escape(text: object) -> str:
    """Text safe inside a Markdown table cell or heading: one line, markup escaped."""
    return _SPECIAL.sub(r"\\\1", " ".join(printable(text).split()))


def fenced(text: str, info: str = "") -> str:
    """A fenced code block that the text cannot close (the fence outgrows its backticks)."""
    text = printable(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text.rstrip()}\n{fence}"


def code(text: str) -> str:
    """An inline code span that the text cannot close."""
    text = " ".join(printable(text).split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{padding}{text}{padding}{ticks}"


def number(value: float | None, digits: int = 3) -> str:
    """A float for a table: NaN and infinities by name, None as a dash."""
    if value is None:
        return "—"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _problem_order(cell: Cell) -> tuple[int, int, int, tuple[str, str, str]]:
    v = cell.verdicts
    return (-v["mismatch"], -v["error"], -v["invalid-input"], cell.key)


def _closest_to_bound(cell: Cell) -> tuple[float, tuple[str, str, str]]:
    ratio = cell.worst_ratio
    return (-(ratio if ratio is not None and ratio == ratio else 0.0), cell.key)


def _worst(cell: Cell) -> str:
    text = number(cell.worst_ratio)
    return f"{text} (coupled)" if cell.coupled_only and cell.worst_ratio is not None else text


def _cells(report: Report, max_cells: int) -> list[str]:
    if not report.cells:
        return ["No cell has finished yet."]
    cells = sorted(report.cells, key=_problem_order)
    shown = cells if len(cells) <= max_cells else [c for c in cells if c.has_problems][:max_cells]
    quiet = not shown
    if quiet:  # nothing went wrong: the cells closest to their bound
        shown = sorted(cells, key=_closest_to_bound)[:max_cells]
    header = [*report.axes, "dtype", "examples", *VERDICTS, "worst error/bound"]
    rows = [
        [escape(c.layer_type), escape(c.activation), escape(c.dtype), str(c.examples)]
        + [str(c.verdicts[v]) if c.verdicts[v] else "·" for v in VERDICTS]
        + [_worst(c)]
        for c in shown
    ]
    lines = _table(header, rows) if rows else []
    hidden = len(cells) - len(shown)
    if hidden and quiet:
        lines += ["", f"{hidden} more cells, each further from its bound, are not listed."]
    elif hidden:
        lines += [
            "",
            f"{hidden} more cells without mismatches, errors or invalid input are not listed.",
        ]
    return lines


def _entry(row: WorstEntry) -> str:
    symbol = _ENTRY_SYMBOLS.get(row.target, row.target)
    where = ", ".join(f"{name} {index}" for name, index in row.entry.items())
    return escape(f"{symbol} {where}")


#: How a counterexample's arrays are named: the catalogue's z, θ, δ, or a user layer's
#: arguments (the first, the rest) and the dout of its output(s).
CATALOGUE_ARRAYS = {"z": "z", "theta": "θ", "delta": "δ"}
USER_ARRAYS = {"z": "first argument", "theta": "other arguments", "delta": "dout"}


def array_names(failure: Failure) -> dict[str, str]:
    return USER_ARRAYS if failure.activation in USER_STYLES else CATALOGUE_ARRAYS


def _failure(index: int, failure: Failure) -> list[str]:
    case = failure.case
    lines = [
        f"### {index}. {failure.verdict}: {escape(failure.layer_type)} / "
        f"{escape(failure.activation)} / {escape(failure.dtype)}",
        "",
        fenced(failure.message, "text"),
        "",
    ]
    if failure.exception:
        lines += [f"Raised: **{escape(failure.exception)}**", ""]
    if failure.diagnosis:
        lines += [f"Diagnosis: **{escape(failure.diagnosis)}**", ""]
    names = array_names(failure)
    shapes = ", ".join(
        f"{names.get(name, name)} {shape_text(failure, name, shape)}"
        for name, shape in case.shapes.items()
    )
    if failure.activation in USER_STYLES:
        lines += [f"Counterexample: {escape(shapes)}; style {escape(case.activation)}.", ""]
    else:
        lines += [f"Counterexample: {escape(shapes)}; activation {escape(case.activation)}.", ""]
    if failure.worst_entries:
        oracles = [o for o in ORACLES if any(o in r.references for r in failure.worst_entries)]
        rows = [
            [_entry(r), number(r.hand_written, 9)]
            + [number(r.references.get(o), 9) if o in r.references else "" for o in oracles]
            + [number(r.ratio)]
            for r in failure.worst_entries
        ]
        lines += _table(["entry", "hand-written", *oracles, "error/bound"], rows) + [""]
    lines += ["Reproduce:", "", fenced(failure.reproduction, "python"), ""]
    return lines


def shape_text(failure: Failure, name: str, shape: list[int] | None) -> str:
    """An array's shape as a reader wants it; a user layer's other arguments are a list
    of arrays (ragged by nature): their count."""
    values = getattr(failure.case, name, None)
    if failure.activation in USER_STYLES and name == "theta" and isinstance(values, list):
        return f"{len(values)} array" + ("s" if len(values) != 1 else "")
    if shape is not None:
        return "×".join(map(str, shape)) or "scalar"
    return "ragged"


def render_markdown(
    report: Report, *, max_cells: int = MAX_CELLS, max_failures: int = MAX_FAILURES
) -> str:
    """The report as Markdown: status and summary, the cells (problems first; all of them
    when there are at most `max_cells`), then each failure with its message, diagnosis,
    worst entries and reproduction snippet (the first `max_failures`)."""
    summary = report.summary
    counts = " · ".join(
        f"**{summary.verdicts[v]} {v}**" if v == "mismatch" and summary.verdicts[v] else
        f"{summary.verdicts[v]} {v}"
        for v in VERDICTS
    )  # fmt: skip
    lines = [
        f"# gradcheck report: {report.status}",
        "",
        f"{counts}: {summary.examples} examples in {summary.cells} cells, "
        f"{summary.seconds:.2f} s of checking.",
        "",
    ]
    if _STATUS_NOTES[report.status]:
        lines += [f"> {_STATUS_NOTES[report.status]}", ""]
    facts = [f"created {escape(report.created)}"]
    if report.settings.get("command"):
        facts.append(f"command {code(str(report.settings['command']))}")
    facts += [f"{key} {escape(report.settings[key])}" for key in ("seed", "shard")
              if report.settings.get(key) is not None]  # fmt: skip
    facts += [f"{key} {escape(report.environment[key])}" for key in ("gradcheck", "python", "numpy")
              if report.environment.get(key) is not None]  # fmt: skip
    lines += [" · ".join(facts), ""]
    lines += ["## Cells", "", *_cells(report, max_cells), ""]
    if report.failures:
        lines += [f"## Failures ({len(report.failures)})", ""]
        for index, failure in enumerate(report.failures[:max_failures], start=1):
            lines += _failure(index, failure)
        hidden = len(report.failures) - max_failures
        if hidden > 0:
            lines += [f"{hidden} more failures are in report.json.", ""]
    return "\n".join(lines).rstrip() + "\n"
