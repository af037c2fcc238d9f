"""What a check produces and how it compares: the plain data of results, the validation
of a case's arrays, entry-by-entry comparison against a bound, and the checks' options.

Shared by every checker (the catalogue's, large layers', networks', users' layers'), so
that a result means the same whichever produced it. This module is free of I/O,
hypothesis and pytest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from gradcheck.catalogue.activations import Activation
from gradcheck.catalogue.layers import LayerType
from gradcheck.core import tolerance
from gradcheck.errors import GradcheckError, UnknownNameError

if TYPE_CHECKING:
    from gradcheck.diagnosis.classes import Diagnosis

#: The oracles a check runs by default, in the order results are listed.
ORACLES = ("dense", "autograd", "finite-differences")
#: θ or z with at most this many entries get full finite differences (each entry alone).
FULL_DIFFERENCES_BUDGET = 64
#: A coupled layer needs full differences (columns assume independent units) up to here.
COUPLED_DIFFERENCES_BUDGET = 4096
#: Output units whose Jacobian blocks are measured; larger layers use an even sample.
COUPLING_UNITS_BUDGET = 64
SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Verdict(str, Enum):
    """What a check concluded."""

    PASS = "pass"
    MISMATCH = "mismatch"
    COUPLED = "coupled"
    NON_DIFFERENTIABLE = "non-differentiable"
    INVALID_INPUT = "invalid-input"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, kw_only=True)
class Case:
    """One concrete draw: layer type, activation, inputs z (N × I), parameters θ (J × P),
    upstream gradient δ = ∂E/∂f (N × J). The dtype is the arrays' own."""

    layer_type: str | LayerType
    activation: str | Activation | None = None
    z: ArrayLike
    theta: ArrayLike
    delta: ArrayLike

    def __repr__(self) -> str:
        layer = getattr(self.layer_type, "name", self.layer_type)
        activation = getattr(self.activation, "label", self.activation)
        arrays = ", ".join(
            f"{name}={np.asarray(value).tolist()!r}"  # exact: floats repr round-trip
            for name, value in (("z", self.z), ("theta", self.theta), ("delta", self.delta))
        )
        dtype = getattr(np.asarray(self.z), "dtype", "")
        return f"Case({layer!r}, {activation!r}, {dtype}, {arrays})"


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


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: a verdict, every comparison, and what was measured."""

    verdict: Verdict
    message: str
    case: CaseSummary | None
    comparisons: tuple[Comparison, ...] = ()
    off_diagonal_mass: float | None = None
    rank_one: str = "not applicable"
    seconds: Mapping[str, float] = field(default_factory=dict)
    diagnosis: Diagnosis | None = None

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    def worst(self) -> Comparison | None:
        """The comparison closest to (or furthest over) its bound."""
        return max(self.comparisons, key=lambda c: c.worst_ratio, default=None)

    def failures(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if not c.passed)


# ---- validation ---------------------------------------------------------------------------


class CaseError(Exception):
    """Internal: the case cannot be checked; the message says why."""


def as_array(name: str, value: ArrayLike) -> np.ndarray:
    try:
        array = np.asarray(value)
    except Exception as error:  # ragged lists, objects numpy cannot convert
        raise CaseError(f"{name} is not an array: {error}") from None
    if array.dtype.kind in "biu":
        kind = "boolean" if array.dtype.kind == "b" else "integer"
        raise CaseError(
            f"{name} has {kind} dtype {array.dtype}; gradients are checked in floating "
            "point: pass float32 or float64 arrays"
        )
    if array.dtype.kind == "c":
        raise CaseError(
            f"{name} is complex ({array.dtype}); only real float32 or float64 is supported"
        )
    if array.dtype not in SUPPORTED_DTYPES:
        raise CaseError(f"{name} has dtype {array.dtype}; only float32 and float64 are supported")
    if array.ndim != 2:
        raise CaseError(f"{name} must be 2-dimensional, got shape {array.shape}")
    if 0 in array.shape:
        raise CaseError(f"{name} has a zero-sized dimension (shape {array.shape})")
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise CaseError(f"{name} contains {array[index]} at index {index}; values must be finite")
    return array


def validated(case: Case, layer: LayerType) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = as_array("z", case.z)
    theta = as_array("theta", case.theta)
    delta = as_array("delta", case.delta)
    if len({z.dtype, theta.dtype, delta.dtype}) != 1:
        raise CaseError(
            f"z, theta and delta must share one dtype, got {z.dtype}, {theta.dtype}, {delta.dtype}"
        )
    (batch, inputs), (units, parameters) = z.shape, theta.shape
    if delta.shape != (batch, units):
        raise CaseError(
            f"delta must have shape (N, J) = ({batch}, {units}) for z of shape {z.shape} and "
            f"theta of shape {theta.shape}, got {delta.shape}"
        )
    problem = layer.shape_problem(inputs, units, parameters)
    if problem is not None:
        raise CaseError(problem)
    return z, theta, delta


# ---- comparisons ---------------------------------------------------------------------------

ENTRY_NAMES = {
    "parameters": ("unit", "parameter"),
    "inputs": ("row", "input"),
    "probes": ("probe",),
}


def compare(
    oracle: str,
    target: str,
    method: str,
    hand_written: ArrayLike,
    reference: ArrayLike,
    bound: ArrayLike,
    seconds: float,
    entry_names: tuple[str, ...] | None = None,
) -> list[Comparison]:
    """Hold stacked hand-written gradients (K, ...) against references: one Comparison per case."""
    hand = np.asarray(hand_written, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    limit = np.broadcast_to(np.asarray(bound, dtype=np.float64), hand.shape)
    count = hand.shape[0]
    with np.errstate(all="ignore"):
        error = np.abs(hand - ref)
        ratio = np.where(limit > 0, error / limit, np.where(error == 0, 0.0, np.inf))
    ratio = np.where(np.isnan(ratio), np.inf, ratio)  # a NaN on either side never passes
    flat = ratio.reshape(count, -1)
    worst = np.argmax(flat, axis=1)
    cases = np.arange(count)
    entries = np.unravel_index(worst, hand.shape[1:])

    def at(values: np.ndarray) -> np.ndarray:
        return values.reshape(count, -1)[cases, worst]

    with np.errstate(all="ignore"):
        finite_error = np.where(np.isnan(error), -np.inf, error).reshape(count, -1)
        all_nan = np.isnan(error).reshape(count, -1).all(axis=1)
        max_error = np.where(all_nan, np.nan, finite_error.max(axis=1))
        scale = np.max(np.where(np.isfinite(ref), np.abs(ref), -np.inf).reshape(count, -1), axis=1)
        relative = np.where(scale > 0, max_error / scale, np.where(max_error == 0, 0.0, np.inf))
    unbounded = np.isinf(limit).reshape(count, -1).sum(axis=1)
    names = entry_names or ENTRY_NAMES[target]
    worst_ratio, worst_error, worst_bound = at(ratio), at(error), at(limit)
    hand_at, ref_at = at(hand), at(ref)
    return [
        Comparison(
            oracle=oracle,
            target=target,
            method=method,
            max_abs_error=float(max_error[k]),
            max_rel_error=float(relative[k]),
            worst_ratio=float(worst_ratio[k]),
            worst_entry={name: int(index[k]) for name, index in zip(names, entries, strict=True)},
            worst_error=float(worst_error[k]),
            worst_bound=float(worst_bound[k]),
            hand_written=float(hand_at[k]),
            reference=float(ref_at[k]),
            seconds=seconds / count,
            unbounded_entries=int(unbounded[k]),
        )
        for k in range(count)
    ]


class Clock:
    """Wall time per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, stage: str, function: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return function()
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


LAYOUTS = ("auto", "full", "columns", "probes")
KINK_MODES = ("report", "subgradient")


@dataclass(frozen=True)
class Options:
    oracles: tuple[str, ...]
    finite_differences: str
    probes: int
    kinks: str


def check_options(
    oracles: Sequence[str], finite_differences: str, probes: int, kinks: str
) -> Options:
    if isinstance(oracles, str) or not isinstance(oracles, Sequence):
        raise GradcheckError(f"oracles must be a sequence of oracle names, got {oracles!r:.80}")
    for name in oracles:
        if name not in ORACLES:
            raise UnknownNameError("oracle", name, list(ORACLES))
    if not isinstance(finite_differences, str) or finite_differences not in LAYOUTS:
        raise GradcheckError(
            "finite_differences must be 'auto', 'full', 'columns' or 'probes', "
            f"got {finite_differences!r}"
        )
    if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
        raise GradcheckError(f"probes must be a positive integer, got {probes!r}")
    if not isinstance(kinks, str) or kinks not in KINK_MODES:
        raise GradcheckError(f"kinks must be 'report' or 'subgradient', got {kinks!r}")
    return Options(tuple(oracles), finite_differences, probes, kinks)


def closest_detail(comparisons: Sequence[Comparison]) -> str:
    """The tail of a pass message naming the comparison nearest its bound, as in
    ' (closest: autograd on ∂E/∂θ at 0.31 of its bound)'; empty without comparisons."""
    closest = max(comparisons, key=lambda c: c.worst_ratio, default=None)
    if closest is None:
        return ""
    symbol = "z" if closest.target == "inputs" else "θ"
    return f" (closest: {closest.oracle} on ∂E/∂{symbol} at {closest.worst_ratio:.2g} of its bound)"


def mismatch_message(comparison: Comparison, diagnosis: Diagnosis | None = None) -> str:
    where = ", ".join(f"{name} {index}" for name, index in comparison.worst_entry.items())
    target = "∂E/∂z (formula 1)" if comparison.target == "inputs" else "∂E/∂θ (formula 2)"
    if "row" in comparison.worst_entry and "unit" in comparison.worst_entry:  # a Jacobian entry
        target = "∂f/∂z" if comparison.target == "inputs" else "B = ∂f/∂θ"
    return (
        f"mismatch: {comparison.oracle} ({comparison.method}) disagrees on {target} at {where}: "
        f"hand-written {comparison.hand_written:.9g}, reference {comparison.reference:.9g}, "
        f"error {comparison.worst_error:.3g} exceeds the bound {comparison.worst_bound:.3g} "
        f"({comparison.worst_ratio:.3g}x)" + ("" if diagnosis is None else f"; likely {diagnosis}")
    )


def call_hand_written(
    layer: LayerType,
    what: str,
    function: Callable[[], Any],
    shape: tuple[int, ...],
    *,
    stacked: bool = False,
) -> tolerance.Tracked:
    """Run a layer's hand-written code; what it raises or returns misshapen makes the case
    invalid (CaseError), and plain results are tracked as exact. stacked: the leading axis
    counts stacked cases, and messages leave it out."""
    try:
        with np.errstate(all="ignore"):
            result = function()
    except Exception as error:
        raise CaseError(f"{layer.name}.{what} raised {type(error).__name__}: {error}") from None
    result = result if isinstance(result, tolerance.Tracked) else tolerance.track(result)
    if result.shape != shape:
        raise CaseError(
            f"{layer.name}.{what} returned shape {result.shape[1:]}, expected {shape[1:]}"
        )
    return result
