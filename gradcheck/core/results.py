"""What a check produces, as plain data: verdicts, comparisons, results and the table of
their worst entries.

Shared by every checker (the catalogue's, large layers', networks', users' layers'), so
that a result means the same whichever produced it. Importing it is cheap (no numpy):
the report reads results, and the pytest plugin reads reports, in every test run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradcheck.diagnosis.classes import Diagnosis

#: The oracles a check runs by default, in the order results are listed.
ORACLES = ("dense", "autograd", "finite-differences")


class Verdict(str, Enum):
    """What a check concluded."""

    PASS = "pass"
    MISMATCH = "mismatch"
    COUPLED = "coupled"
    NON_DIFFERENTIABLE = "non-differentiable"
    INVALID_INPUT = "invalid-input"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class CaseSummary:
    """The case's names and sizes, as plain data."""

    layer_type: str
    activation: str
    dtype: str
    inputs: int
    units: int
    batch: int
    parameters_per_unit: int


@dataclass(frozen=True)
class Comparison:
    """A hand-written gradient held against one reference, entry by entry.

    error = |hand-written - reference|; bound comes from the error model. worst_entry
    names the entry with the largest error / bound, where the values are reported.
    unbounded_entries counts entries whose bound is infinite (an intermediate overflowed
    and the error model could not bound it): they are not checked by this oracle.
    """

    oracle: str
    target: str
    method: str
    max_abs_error: float
    max_rel_error: float
    worst_ratio: float
    worst_entry: Mapping[str, int]
    worst_error: float
    worst_bound: float
    hand_written: float
    reference: float
    seconds: float
    unbounded_entries: int = 0

    @property
    def passed(self) -> bool:
        return self.worst_ratio <= 1.0


class Outcome:
    """What every result of a check answers from its verdict and comparisons (the
    catalogue's `CheckResult`, a user layer's `UserResult`, a network's outcome)."""

    verdict: Verdict
    comparisons: tuple[Comparison, ...]

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    def worst(self) -> Comparison | None:
        """The comparison closest to (or furthest over) its bound."""
        return max(self.comparisons, key=lambda c: c.worst_ratio, default=None)

    def failures(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if not c.passed)

    def worst_entries(self) -> list[WorstEntry]:
        """The table of worst entries (see `worst_entries`)."""
        return worst_entries(self.comparisons)


@dataclass(frozen=True)
class CheckResult(Outcome):
    """The outcome of one check: a verdict, every comparison, and what was measured."""

    verdict: Verdict
    message: str
    case: CaseSummary | None
    comparisons: tuple[Comparison, ...] = ()
    off_diagonal_mass: float | None = None
    rank_one: str = "not applicable"
    seconds: Mapping[str, float] = field(default_factory=dict)
    diagnosis: Diagnosis | None = None


def larger(a: float, b: float) -> float:
    """The larger of two statistics, NaN beating everything.

    NaN must win (an error that is NaN is the worst news) and the result must not depend
    on the order of the arguments, which Python's max() does not promise for NaN.
    """
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return max(a, b)


@dataclass(kw_only=True)
class WorstEntry:
    """One row of a failure's table: an entry of a gradient and what each oracle said.

    target: "parameters" (∂E/∂θ) or "inputs" (∂E/∂z); entry: the entry's indices by name
    ({"unit": 0, "parameter": 4}, {"row": 1, "input": 2} or {"probe": 3}); references: the
    reference value of each oracle whose worst entry this was; ratio: the largest
    error/bound among them (above 1 is a miss).
    """

    target: str
    entry: dict[str, int]
    hand_written: float
    references: dict[str, float]
    ratio: float


def worst_entries(comparisons: Sequence[Comparison]) -> list[WorstEntry]:
    """The table of the comparisons' worst entries, largest error/bound first.

    Each comparison reports the entry where it is furthest from its bound; comparisons that
    name the same entry of the same gradient share a row, so a bug that all three oracles
    see shows as one row with three references.
    """
    rows: dict[tuple[str, tuple[tuple[str, int], ...]], WorstEntry] = {}
    shown: dict[tuple[Any, str], float] = {}  # (row, oracle) -> ratio of the value shown
    for comparison in comparisons:
        entry = {name: int(index) for name, index in comparison.worst_entry.items()}
        ratio = float(comparison.worst_ratio)
        key = (comparison.target, tuple(entry.items()))
        row = rows.setdefault(
            key,
            WorstEntry(
                target=comparison.target,
                entry=entry,
                hand_written=float(comparison.hand_written),
                references={},
                ratio=ratio,
            ),
        )
        # An oracle with two comparisons at one entry (dense: the block product and the
        # outer product) shows the one further from its bound.
        previous = shown.get((key, comparison.oracle))
        if previous is None or larger(previous, ratio) != previous:
            row.references[comparison.oracle] = float(comparison.reference)
            shown[(key, comparison.oracle)] = ratio
        row.ratio = larger(row.ratio, ratio)
    return sorted(rows.values(), key=lambda r: -math.inf if math.isnan(r.ratio) else -r.ratio)
