"""The report of a campaign as plain data: cells, failures, cost points; JSON without loss.

A campaign checks many cases per *cell* (layer type × activation × dtype). A `Cell` keeps
counts and statistics, never the cases themselves, so the report of a million checks stays
small; a `Failure` keeps one counterexample whole, with the code that reproduces it.
`Report.to_json_dict()` is the content of report.json (the source of truth; Markdown and
HTML are renderings of it) and `Report.from_json_dict()` reads it back exactly.

JSON has no NaN or infinity: every float field is written as a number or as one of the
strings "NaN", "Infinity", "-Infinity", and decoded back to the float.

No I/O here (files are `gradcheck.report.io`), and no numpy or checker import, so reading
a report stays cheap.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from typing import Any

from gradcheck.core.results import CheckResult, WorstEntry, larger, worst_entries
from gradcheck.errors import GradcheckError
from gradcheck.report._values import (
    ORACLES,
    RATIO_BIN_EDGES,
    RATIO_BINS,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    STATUSES,
    USER_STYLES,
    VERDICTS,
    Fields,
    add_seconds,
    check_count,
    check_created,
    check_environment,
    check_settings,
    check_text,
    check_verdict,
    decode_float,
    encode_float,
    encode_optional,
    ratio_bin,
    thaw,
    worse,
)
from gradcheck.report.failure import Counterexample, Failure

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
    "Summary",
    "WorstEntry",
    "decode_float",
    "encode_float",
    "ratio_bin",
    "utc_now",
    "worst_entries",
]


def utc_now() -> str:
    """The current time as ISO-8601 UTC, to the second: ``2024-05-01T12:00:00Z``."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(kw_only=True)
class OracleSummary:
    """What one oracle measured over the examples of a cell.

    comparisons: how many comparisons it made (an example makes one or several).
    worst_ratio: the largest error/bound seen (None before any comparison); above 1 is a miss.
    max_abs_error: the largest |hand-written - reference| seen (None before any comparison).
    histogram: each example's worst error/bound for this oracle, counted in the bins of
    `RATIO_BIN_EDGES` (RATIO_BINS counts).
    """

    comparisons: int = 0
    worst_ratio: float | None = None
    max_abs_error: float | None = None
    histogram: list[int] = field(default_factory=lambda: [0] * RATIO_BINS)

    def __post_init__(self) -> None:
        check_count(self.comparisons, "comparisons")
        self.histogram = [check_count(n, "a histogram bin") for n in self.histogram]
        if len(self.histogram) != RATIO_BINS:
            raise GradcheckError(
                f"a histogram has {RATIO_BINS} bins (see RATIO_BIN_EDGES), got "
                f"{len(self.histogram)}"
            )

    @property
    def examples(self) -> int:
        """How many examples this oracle compared: the histogram's total."""
        return sum(self.histogram)

    def combined(self, other: OracleSummary) -> OracleSummary:
        """The statistics of both sets of examples together."""
        return OracleSummary(
            comparisons=self.comparisons + other.comparisons,
            worst_ratio=worse(self.worst_ratio, other.worst_ratio),
            max_abs_error=worse(self.max_abs_error, other.max_abs_error),
            histogram=[a + b for a, b in zip(self.histogram, other.histogram, strict=True)],
        )

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "comparisons": self.comparisons,
            "worst_ratio": encode_optional(self.worst_ratio),
            "max_abs_error": encode_optional(self.max_abs_error),
            "histogram": list(self.histogram),
        }

    @classmethod
    def from_json_dict(cls, data: Any, where: str = "oracle") -> OracleSummary:
        fields = Fields(data, where)
        return cls(
            comparisons=fields.count("comparisons"),
            worst_ratio=fields.number("worst_ratio", optional=True),
            max_abs_error=fields.number("max_abs_error", optional=True),
            histogram=fields.array("histogram"),
        )


def _zero_verdicts() -> dict[str, int]:
    return dict.fromkeys(VERDICTS, 0)


def _empty_oracles() -> dict[str, OracleSummary]:
    return {name: OracleSummary() for name in ORACLES}


def _family(activation: str) -> str:
    """leaky_relu(-0.3) -> leaky_relu."""
    return activation.split("(", 1)[0]


@dataclass(kw_only=True)
class Cell:
    """The results of one layer type × activation × dtype: verdict counts and statistics.

    verdicts maps each of the six verdicts to a count (all five always present); oracles
    maps each of the three oracles to its `OracleSummary`; seconds is the total check
    time, kept to the microsecond.
    """

    layer_type: str
    activation: str
    dtype: str
    examples: int = 0
    verdicts: dict[str, int] = field(default_factory=_zero_verdicts)
    seconds: float = 0.0
    oracles: dict[str, OracleSummary] = field(default_factory=_empty_oracles)

    def __post_init__(self) -> None:
        for name in ("layer_type", "activation", "dtype"):
            check_text(getattr(self, name), f"a cell's {name}")
        check_count(self.examples, "a cell's examples")
        verdicts = _zero_verdicts()
        for verdict, count in self.verdicts.items():
            verdicts[check_verdict(verdict, "a cell")] = check_count(count, "a verdict count")
        oracles = _empty_oracles()
        for name, summary in self.oracles.items():
            if name not in ORACLES:
                raise GradcheckError(f"unknown oracle {name!r}; one of {', '.join(ORACLES)}")
            oracles[name] = summary
        self.verdicts, self.oracles = verdicts, oracles
        self.seconds = add_seconds(self.seconds)

    @property
    def key(self) -> tuple[str, str, str]:
        """(layer type, activation, dtype): what identifies a cell in a campaign."""
        return (self.layer_type, self.activation, self.dtype)

    @property
    def worst_ratio(self) -> float | None:
        """The largest error/bound of any oracle (None when nothing was compared)."""
        worst = None
        for summary in self.oracles.values():
            worst = worse(worst, summary.worst_ratio)
        return worst

    @property
    def coupled_only(self) -> bool:
        """Coupled examples and no mismatch: its large ratios are expected, not failures."""
        return self.verdicts["coupled"] > 0 and self.verdicts["mismatch"] == 0

    @property
    def has_problems(self) -> bool:
        """A mismatch, invalid input or an error was seen: what a reader must look at."""
        return any(self.verdicts[v] > 0 for v in ("mismatch", "invalid-input", "error"))

    def add_error(self, seconds: float = 0.0) -> None:
        """Count one check whose user code raised (verdict "error") in the cell."""
        self.verdicts["error"] += 1
        self.examples += 1
        self.seconds = add_seconds(self.seconds, float(seconds))

    def add(self, result: CheckResult) -> None:
        """Fold one CheckResult into the cell: its verdict, comparisons and total time.

        A result whose case names another layer type, activation or dtype is refused (the
        parameter of a parametric activation does not count); a result without a case
        (input rejected before its sizes were known) is taken as belonging here.
        """
        case = result.case
        # A parametric activation's label carries the drawn parameter, leaky_relu(-0.3);
        # its cell is the activation, whatever the parameter.
        if case is not None and (case.layer_type, _family(case.activation), case.dtype) != (
            self.layer_type,
            _family(self.activation),
            self.dtype,
        ):
            raise GradcheckError(
                f"a result of {case.layer_type} / {case.activation} / {case.dtype} does not "
                f"belong in the cell {' / '.join(self.key)}"
            )
        verdict = check_verdict(result.verdict, "a result")
        seconds = add_seconds(self.seconds, float(result.seconds.get("total", 0.0)))
        # Per oracle, this example's worst ratio and largest error over its comparisons.
        worst: dict[str, tuple[int, float, float]] = {}
        for comparison in result.comparisons:
            if comparison.oracle not in ORACLES:
                raise GradcheckError(
                    f"a result compares with the oracle {comparison.oracle!r}, which the "
                    f"report does not know (it knows {', '.join(ORACLES)})"
                )
            count, ratio, error = worst.get(comparison.oracle, (0, -math.inf, -math.inf))
            worst[comparison.oracle] = (
                count + 1,
                larger(ratio, float(comparison.worst_ratio)),
                larger(error, float(comparison.max_abs_error)),
            )
        for name, (count, ratio, error) in worst.items():
            histogram = [0] * RATIO_BINS
            histogram[ratio_bin(ratio)] = 1
            seen = OracleSummary(
                comparisons=count, worst_ratio=ratio, max_abs_error=error, histogram=histogram
            )
            self.oracles[name] = self.oracles[name].combined(seen)
        self.verdicts[verdict] += 1
        self.examples += 1
        self.seconds = seconds

    def combined(self, other: Cell) -> Cell:
        """Both cells' examples as one new cell (their keys must agree)."""
        if other.key != self.key:
            raise GradcheckError(
                f"cannot combine the cell {' / '.join(self.key)} with {' / '.join(other.key)}"
            )
        return Cell(
            layer_type=self.layer_type,
            activation=self.activation,
            dtype=self.dtype,
            examples=self.examples + other.examples,
            verdicts={v: self.verdicts[v] + other.verdicts[v] for v in VERDICTS},
            seconds=add_seconds(self.seconds, other.seconds),
            oracles={o: self.oracles[o].combined(other.oracles[o]) for o in ORACLES},
        )

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "layer_type": self.layer_type,
            "activation": self.activation,
            "dtype": self.dtype,
            "examples": self.examples,
            "verdicts": {v: self.verdicts[v] for v in VERDICTS},
            "seconds": self.seconds,
            "oracles": {o: self.oracles[o].to_json_dict() for o in ORACLES},
        }

    @classmethod
    def from_json_dict(cls, data: Any, where: str = "cell") -> Cell:
        fields = Fields(data, where)
        verdicts, oracles = fields.mapping("verdicts"), fields.mapping("oracles")
        return cls(
            layer_type=fields.text("layer_type"),
            activation=fields.text("activation"),
            dtype=fields.text("dtype"),
            examples=fields.count("examples"),
            # "error" came later than the other verdicts: a report without it counted none.
            verdicts={v: verdicts.count(v) for v in VERDICTS if v != "error" or v in verdicts.data},
            seconds=fields.number("seconds"),
            oracles={
                o: OracleSummary.from_json_dict(oracles.get(o), oracles.path(o)) for o in ORACLES
            },
        )


@dataclass(kw_only=True)
class CostPoint:
    """What the compact gradient and the dense block-diagonal product cost at one size.

    units J, parameters_per_unit P, batch N; seconds and bytes as the caller measured
    them. The dense side is None where it was not measured (above its size budget the
    dense matrix must never be materialised).
    """

    units: int
    parameters_per_unit: int
    batch: int
    compact_seconds: float
    dense_seconds: float | None
    compact_bytes: int
    dense_bytes: int | None

    def __post_init__(self) -> None:
        for name in ("units", "parameters_per_unit", "batch", "compact_bytes"):
            check_count(getattr(self, name), f"a cost point's {name}")
        if self.dense_bytes is not None:
            check_count(self.dense_bytes, "a cost point's dense_bytes")

    @property
    def parameters(self) -> int:
        """J·P, the size both costs are plotted against."""
        return self.units * self.parameters_per_unit

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "parameters_per_unit": self.parameters_per_unit,
            "batch": self.batch,
            "compact_seconds": encode_float(self.compact_seconds),
            "dense_seconds": encode_optional(self.dense_seconds),
            "compact_bytes": self.compact_bytes,
            "dense_bytes": self.dense_bytes,
        }

    @classmethod
    def from_json_dict(cls, data: Any, where: str = "cost point") -> CostPoint:
        fields = Fields(data, where)
        return cls(
            units=fields.count("units"),
            parameters_per_unit=fields.count("parameters_per_unit"),
            batch=fields.count("batch"),
            compact_seconds=fields.number("compact_seconds"),
            dense_seconds=fields.number("dense_seconds", optional=True),
            compact_bytes=fields.count("compact_bytes"),
            dense_bytes=fields.count("dense_bytes", optional=True),
        )


@dataclass(frozen=True, kw_only=True)
class Summary:
    """Totals over a report's cells; derived from them, never stored apart."""

    cells: int
    examples: int
    verdicts: dict[str, int]
    seconds: float

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "cells": self.cells,
            "examples": self.examples,
            "verdicts": dict(self.verdicts),
            "seconds": self.seconds,
        }


@dataclass(kw_only=True)
class Report:
    """The report of a campaign: how it ran, a `Cell` per layer type × activation × dtype,
    the failures kept whole, and compact-vs-dense cost measurements.

    environment: versions of python, numpy, autograd, hypothesis, gradcheck and the
    platform (collect them with `gradcheck.report.environment()`). settings: the
    campaign's options as plain JSON values (command, seed, examples_per_cell,
    layer_types, activations, dtypes, oracles, shard such as "1/4" or None, workers,
    target or None). status: "running", "complete" or "interrupted".
    """

    version: int = SCHEMA_VERSION
    created: str = field(default_factory=utc_now)
    status: str = "running"
    environment: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    cost: list[CostPoint] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.version != SCHEMA_VERSION or isinstance(self.version, bool):
            raise GradcheckError(
                f"this gradcheck makes reports of version {SCHEMA_VERSION}, not {self.version!r}"
            )
        if self.status not in STATUSES:
            raise GradcheckError(f"unknown status {self.status!r}; one of {', '.join(STATUSES)}")
        check_created(self.created)
        self.environment = thaw(Fields(self.environment, "environment").data)
        self.settings = thaw(Fields(self.settings, "settings").data)
        check_environment(self.environment)
        check_settings(self.settings)

    @property
    def user_layers(self) -> bool:
        """Of user layers (`gradcheck check`, the plugin): every "activation" is a style."""
        styles = {c.activation for c in self.cells} | {f.activation for f in self.failures}
        return bool(styles) and styles <= USER_STYLES

    @property
    def axes(self) -> tuple[str, str]:  # what layer_type and activation stand for
        return ("layer", "style") if self.user_layers else ("layer type", "activation")

    @property
    def summary(self) -> Summary:
        """Totals over the cells: cells, examples, a count per verdict, seconds."""
        return Summary(
            cells=len(self.cells),
            examples=sum(c.examples for c in self.cells),
            verdicts={v: sum(c.verdicts[v] for c in self.cells) for v in VERDICTS},
            seconds=add_seconds(0.0, *(c.seconds for c in self.cells)),
        )

    def cell(self, *, layer_type: str, activation: str, dtype: str) -> Cell:
        """The cell with this key; an empty one is added if the report has none yet."""
        key = (layer_type, activation, dtype)
        for cell in self.cells:
            if cell.key == key:
                return cell
        cell = Cell(layer_type=layer_type, activation=activation, dtype=dtype)
        self.cells.append(cell)
        return cell

    def to_json_dict(self) -> dict[str, Any]:
        """The content of report.json: plain JSON values, no NaN or infinity anywhere."""
        # Checked again here: settings and environment are mutable mappings.
        check_environment(self.environment)
        check_settings(self.settings)
        return {
            "schema": SCHEMA_NAME,
            "version": self.version,
            "created": self.created,
            "status": self.status,
            "environment": thaw(self.environment),
            "settings": thaw(self.settings),
            "ratio_bin_edges": list(RATIO_BIN_EDGES),
            "summary": self.summary.to_json_dict(),
            "cells": [c.to_json_dict() for c in self.cells],
            "failures": [f.to_json_dict() for f in self.failures],
            "cost": [p.to_json_dict() for p in self.cost],
        }

    @classmethod
    def from_json_dict(cls, data: Any) -> Report:
        """The report `to_json_dict` wrote; GradcheckError names what is wrong if it is not.

        The summary is derived from the cells, so it is not read back.
        """
        fields = Fields(data, "the report")
        schema = fields.data.get("schema")
        if schema != SCHEMA_NAME:
            raise GradcheckError(
                f'not a gradcheck report: "schema" is {schema!r}, expected {SCHEMA_NAME!r}'
            )
        version = fields.data.get("version")
        if version != SCHEMA_VERSION or isinstance(version, bool):
            newer = isinstance(version, int) and version > SCHEMA_VERSION
            raise GradcheckError(
                f"unsupported report version {version!r}: this gradcheck reads version "
                f"{SCHEMA_VERSION}"
                + ("; a newer gradcheck wrote it: upgrade gradcheck to read it" if newer else "")
            )
        edges = [decode_float(e, "ratio_bin_edges") for e in fields.array("ratio_bin_edges")]
        if edges != list(RATIO_BIN_EDGES):
            raise GradcheckError(
                f"the report's histogram bins {edges} differ from this gradcheck's "
                f"{list(RATIO_BIN_EDGES)}"
            )
        return cls(
            version=version,
            created=fields.text("created"),
            status=fields.text("status"),
            environment=dict(fields.mapping("environment").data),
            settings=dict(fields.mapping("settings").data),
            cells=[
                Cell.from_json_dict(c, f"cells[{i}]") for i, c in enumerate(fields.array("cells"))
            ],
            failures=[
                Failure.from_json_dict(f, f"failures[{i}]")
                for i, f in enumerate(fields.array("failures"))
            ],
            cost=[
                CostPoint.from_json_dict(p, f"cost[{i}]")
                for i, p in enumerate(fields.array("cost"))
            ],
        )
