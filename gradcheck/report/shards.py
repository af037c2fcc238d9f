"""Join the reports of the shards of one campaign into the report of the whole (`merge`).

The result depends only on the set of reports, not on their order or on how merges are
grouped: counts and microsecond-exact seconds are summed, maxima are order-free (NaN
wins), cells are sorted by key and failures and cost points by their content.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from gradcheck.errors import GradcheckError
from gradcheck.report._values import SCHEMA_VERSION, shard_parts
from gradcheck.report.model import Cell, CostPoint, Failure, Report

#: Settings that may differ between the shards of one campaign: where and how each ran.
_PER_SHARD = frozenset({"shard", "workers"})

_Item = TypeVar("_Item", Cell, Failure, CostPoint)


def _merged_shard(shards: Sequence[Any]) -> str | None:
    seen: set[tuple[int, int]] = set()
    for shard in shards:
        parts = shard_parts(shard)
        if parts is None:
            raise GradcheckError(
                "cannot merge the report of a whole campaign (settings.shard is None) with "
                "another report of the same campaign: every case would count twice"
            )
        if seen & parts:
            named = ", ".join(f"{k}/{n}" for k, n in sorted(seen & parts))
            raise GradcheckError(f"shard {named} is in more than one report: it would count twice")
        seen |= parts
    if len({n for _, n in seen}) != 1:
        shown = ", ".join(sorted(str(s) for s in shards))
        raise GradcheckError(f"the reports split the campaign in different ways ({shown})")
    total = next(iter(seen))[1]
    if seen == {(k, total) for k in range(1, total + 1)}:
        return None  # every shard is here: the merged report is the whole campaign's
    return ",".join(f"{k}/{n}" for k, n in sorted(seen))


def _merged_environment(environments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per key, the value every shard agrees on, or the sorted list of the distinct values
    (shards may run on different machines). Lists are flattened, so merging stays
    associative."""
    merged: dict[str, Any] = {}
    for key in sorted({k for e in environments for k in e}):
        values: set[str] = set()
        for environment in environments:
            value = environment.get(key)
            values.update(json.dumps(v) for v in (value if isinstance(value, list) else [value]))
        distinct = [json.loads(v) for v in sorted(values)]
        merged[key] = distinct[0] if len(distinct) == 1 else distinct
    return merged


def _copy(item: _Item) -> _Item:
    # Fresh objects, so that changing the merged report never changes a shard's report.
    return type(item).from_json_dict(item.to_json_dict())


def _failure_order(failure: Failure) -> tuple[Any, ...]:
    return (*failure.key, failure.verdict, json.dumps(failure.to_json_dict(), sort_keys=True))


def _cost_order(point: CostPoint) -> tuple[Any, ...]:
    return (point.parameters, point.units, point.batch, json.dumps(point.to_json_dict()))


def merge(reports: Iterable[Report]) -> Report:
    """One report from the reports of the shards of one campaign.

    Cells with the same key are combined (counts and seconds summed, worst ratios and
    errors maxed, histograms added); failures and cost points are joined. Refused with
    GradcheckError: reports of another schema version, reports whose settings differ in
    anything but the shard and the workers (the merged report keeps the most workers),
    and shards that overlap (a case would count twice). The status is "interrupted" if
    any shard was, else "running" if any still is, else "complete"; created is the
    earliest; settings.shard is None once every shard is present.
    """
    reports = list(reports)
    if not reports:
        raise GradcheckError("merge needs at least one report")
    versions = sorted({r.version for r in reports})
    if versions != [SCHEMA_VERSION]:
        raise GradcheckError(
            f"cannot merge reports of schema versions {versions}: this gradcheck merges "
            f"version {SCHEMA_VERSION}"
        )
    first = {k: v for k, v in reports[0].settings.items() if k not in _PER_SHARD}
    for report in reports[1:]:
        other = {k: v for k, v in report.settings.items() if k not in _PER_SHARD}
        if other != first:
            differing = sorted(
                k for k in first.keys() | other.keys() if first.get(k) != other.get(k)
            )
            raise GradcheckError(
                "cannot merge reports of different campaigns: their settings differ in "
                f"{', '.join(differing)} (only the shard and the workers may differ)"
            )
    settings = dict(reports[0].settings)
    workers = [w for r in reports if isinstance(w := r.settings.get("workers"), int)]
    if len(workers) == len(reports):
        settings["workers"] = max(workers)
    if len(reports) > 1:
        settings["shard"] = _merged_shard([r.settings.get("shard") for r in reports])
    cells: dict[tuple[str, str, str], Cell] = {}
    for report in reports:
        for cell in report.cells:
            known = cells.get(cell.key)
            cells[cell.key] = _copy(cell) if known is None else known.combined(cell)
    statuses = {r.status for r in reports}
    return Report(
        created=min(r.created for r in reports),
        status=next(s for s in ("interrupted", "running", "complete") if s in statuses),
        environment=_merged_environment([r.environment for r in reports]),
        settings=settings,
        cells=[cells[key] for key in sorted(cells)],
        failures=sorted((_copy(f) for r in reports for f in r.failures), key=_failure_order),
        cost=sorted((_copy(p) for r in reports for p in r.cost), key=_cost_order),
    )
