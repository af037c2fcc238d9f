"""One case in, one CheckResult out.

`check(case)` evaluates a layer type's hand-written unit Jacobian B and input Jacobian in
the case's dtype, forms the compact gradient A = Σ_n diag(δ_n) B_n (formula 2) and the
input gradient δ_in = δ · ∂f/∂z (formula 1), and holds both against the oracles:

- dense: the same A through the explicit (or sparse) J × JP block-diagonal product, and,
  for rank-one layers, through the seed's outer product (δ ⊙ u) vᵀ;
- autograd: ∂E/∂θ and ∂E/∂z by reverse mode in float64, and the whole Jacobian's
  unit-to-unit blocks, which measure the block-diagonal precondition;
- finite-differences: central differences with Richardson extrapolation in float64.

Each entry must lie within the bound of `gradcheck.tolerance`. The verdict is the first
that applies of: invalid-input (bad arrays, a forward that is not finite, hand-written
code that raises or returns the wrong shape), non-differentiable (a kink, tie or
singularity within the finite-difference step or the rounding error), mismatch of the
input gradient, coupled (the layer breaks the block-diagonal precondition, declared or
measured), mismatch of the parameter gradient, pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from gradcheck import compact, explain, oracles, tolerance
from gradcheck.activations import Activation, resolve_activation
from gradcheck.diagnosis import Diagnosis
from gradcheck.errors import GradcheckError, UnknownNameError
from gradcheck.layers import LayerType, identity_if_unused, resolve_layer_type

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


class _CaseError(Exception):
    """Internal: the case cannot be checked; the message says why."""


def _as_array(name: str, value: ArrayLike) -> np.ndarray:
    try:
        array = np.asarray(value)
    except Exception as error:  # ragged lists, objects numpy cannot convert
        raise _CaseError(f"{name} is not an array: {error}") from None
    if array.dtype.kind in "biu":
        kind = "boolean" if array.dtype.kind == "b" else "integer"
        raise _CaseError(
            f"{name} has {kind} dtype {array.dtype}; gradients are checked in floating "
            "point: pass float32 or float64 arrays"
        )
    if array.dtype.kind == "c":
        raise _CaseError(
            f"{name} is complex ({array.dtype}); only real float32 or float64 is supported"
        )
    if array.dtype not in SUPPORTED_DTYPES:
        raise _CaseError(f"{name} has dtype {array.dtype}; only float32 and float64 are supported")
    if array.ndim != 2:
        raise _CaseError(f"{name} must be 2-dimensional, got shape {array.shape}")
    if 0 in array.shape:
        raise _CaseError(f"{name} has a zero-sized dimension (shape {array.shape})")
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise _CaseError(f"{name} contains {array[index]} at index {index}; values must be finite")
    return array


def _validated(case: Case, layer: LayerType) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = _as_array("z", case.z)
    theta = _as_array("theta", case.theta)
    delta = _as_array("delta", case.delta)
    if len({z.dtype, theta.dtype, delta.dtype}) != 1:
        raise _CaseError(
            f"z, theta and delta must share one dtype, got {z.dtype}, {theta.dtype}, {delta.dtype}"
        )
    (batch, inputs), (units, parameters) = z.shape, theta.shape
    if delta.shape != (batch, units):
        raise _CaseError(
            f"delta must have shape (N, J) = ({batch}, {units}) for z of shape {z.shape} and "
            f"theta of shape {theta.shape}, got {delta.shape}"
        )
    problem = layer.shape_problem(inputs, units, parameters)
    if problem is not None:
        raise _CaseError(problem)
    return z, theta, delta


# ---- comparisons ---------------------------------------------------------------------------

_ENTRY_NAMES = {
    "parameters": ("unit", "parameter"),
    "inputs": ("row", "input"),
    "probes": ("probe",),
}


def _compare(
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
    names = entry_names or _ENTRY_NAMES[target]
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


class _Clock:
    """Wall time per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, stage: str, function: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return function()
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


# ---- the check ------------------------------------------------------------------------------

#: Cases of one layer type, activation, dtype and shape are checked this many at a time.
BATCH_SIZE = 64
_LAYOUTS = ("auto", "full", "columns", "probes")
_KINK_MODES = ("report", "subgradient")


@dataclass(frozen=True)
class _Options:
    oracles: tuple[str, ...]
    finite_differences: str
    probes: int
    kinks: str


def _options(oracles: Sequence[str], finite_differences: str, probes: int, kinks: str) -> _Options:
    if isinstance(oracles, str) or not isinstance(oracles, Sequence):
        raise GradcheckError(f"oracles must be a sequence of oracle names, got {oracles!r:.80}")
    for name in oracles:
        if name not in ORACLES:
            raise UnknownNameError("oracle", name, list(ORACLES))
    if not isinstance(finite_differences, str) or finite_differences not in _LAYOUTS:
        raise GradcheckError(
            "finite_differences must be 'auto', 'full', 'columns' or 'probes', "
            f"got {finite_differences!r}"
        )
    if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
        raise GradcheckError(f"probes must be a positive integer, got {probes!r}")
    if not isinstance(kinks, str) or kinks not in _KINK_MODES:
        raise GradcheckError(f"kinks must be 'report' or 'subgradient', got {kinks!r}")
    return _Options(tuple(oracles), finite_differences, probes, kinks)


def check(
    case: Case,
    *,
    oracles: Sequence[str] = ORACLES,
    finite_differences: str = "auto",
    probes: int = 16,
    kinks: str = "report",
) -> CheckResult:
    """Check one case's hand-written gradients against the oracles.

    oracles: any of "dense", "autograd", "finite-differences".
    finite_differences: "auto", "full", "columns" or "probes" (see gradcheck.oracles).
    probes: how many random directions the "probes" layout uses.
    kinks: "report" gives a case at a kink the verdict non-differentiable; "subgradient"
    checks instead that the hand-written derivatives lie between the one-sided
    differences there (a subgradient check).
    Unknown names raise `UnknownNameError`; everything wrong with the case itself comes
    back as an invalid-input verdict whose message names the array and the problem.
    """
    if not isinstance(case, Case):
        raise GradcheckError(
            f"check takes a gradcheck.Case, got {type(case).__name__}: {case!r:.80}"
        )
    return check_many(
        [case], oracles=oracles, finite_differences=finite_differences, probes=probes, kinks=kinks
    )[0]


def check_many(
    cases: Sequence[Case],
    *,
    oracles: Sequence[str] = ORACLES,
    finite_differences: str = "auto",
    probes: int = 16,
    kinks: str = "report",
) -> list[CheckResult]:
    """Check many cases, in order; the same as `check` on each, but cases that share a
    layer type, activation, dtype and shape are stacked and checked in one vectorised pass."""
    options = _options(oracles, finite_differences, probes, kinks)
    if isinstance(cases, Case) or not isinstance(cases, Sequence):
        raise GradcheckError(f"check_many takes a sequence of gradcheck.Case, got {cases!r:.80}")
    for case in cases:
        if not isinstance(case, Case):
            raise GradcheckError(
                f"expected a gradcheck.Case, got {type(case).__name__}: {case!r:.80}"
            )
    results: list[CheckResult | None] = [None] * len(cases)
    groups: dict[tuple[Any, ...], list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]] = {}
    for index, case in enumerate(cases):
        layer = resolve_layer_type(case.layer_type)
        phi = identity_if_unused(layer, resolve_activation(case.activation))
        try:
            z, theta, delta = _validated(case, layer)
        except _CaseError as problem:
            results[index] = CheckResult(Verdict.INVALID_INPUT, f"invalid input: {problem}", None)
            continue
        from gradcheck import large  # here, not at the top: large imports this module

        if large.applies(layer, theta.size):  # big layers: block by block, O(n) memory
            results[index] = large.check_validated(layer, phi, z, theta, delta, options)
            continue
        key = (layer, phi, z.dtype, z.shape, theta.shape)
        groups.setdefault(key, []).append((index, z, theta, delta))
    for (layer, phi, *_), members in groups.items():
        for start in range(0, len(members), BATCH_SIZE):
            chunk = members[start : start + BATCH_SIZE]
            stacked = (np.stack([member[k] for member in chunk]) for k in (1, 2, 3))
            batch = _Batch(layer, phi, *stacked)
            for (index, *_), result in zip(chunk, batch.check(options), strict=True):
                results[index] = result
    return [result for result in results if result is not None]


@dataclass(frozen=True)
class _HandWritten:
    """The hand-written side of a batch, each with its running error bound."""

    unit_jacobian: tolerance.Tracked  # B, (K, N, J, P)
    input_jacobian: tolerance.Tracked  # ∂f/∂z, (K, N, J, I)
    gradient: tolerance.Tracked  # A = Σ_n diag(δ_n) B_n, (K, J, P)
    inputs_gradient: tolerance.Tracked  # δ_in = δ · ∂f/∂z, (K, N, I)


class _Batch:
    """K stacked cases of one layer type, activation, dtype and shape, and what is known of
    each: a reason it cannot be checked, and its comparisons."""

    def __init__(
        self, layer: LayerType, phi: Activation, z: np.ndarray, theta: np.ndarray, delta: np.ndarray
    ) -> None:
        self.layer, self.phi = layer, phi
        self.z, self.theta, self.delta = z, theta, delta
        self.z64, self.theta64, self.delta64 = (a.astype(np.float64) for a in (z, theta, delta))
        self.count, batch, inputs = z.shape
        units, parameters = theta.shape[1:]
        self.summary = CaseSummary(
            layer.name, phi.label, z.dtype.name, inputs, units, batch, parameters
        )
        self.clock = _Clock()
        self.comparisons: list[list[Comparison]] = [[] for _ in range(self.count)]
        self.invalid: list[str | None] = [None] * self.count
        self.non_differentiable: list[str | None] = [None] * self.count
        self.singular = np.zeros(self.count, dtype=bool)  # at a singularity, not a kink
        self.at_kink = np.zeros(self.count, dtype=bool)  # checked by the subgradient test
        self.mass: np.ndarray | None = None
        self.rank_one = "not applicable"
        # Kept to explain failures: the hand-written side and each reference, per target.
        self.hand: _HandWritten | None = None
        self.references: dict[tuple[str, str], oracles.Reference] = {}
        self.contributions: np.ndarray | None = None
        self.contributions_error: np.ndarray | None = None

    def forward(self, z: Any, theta: Any) -> Any:
        return self.layer.forward(z, theta, self.phi)

    def add(self, comparisons: list[Comparison], cases: Any = None) -> None:
        for k, comparison in enumerate(comparisons):
            if cases is None or cases[k]:
                self.comparisons[k].append(comparison)

    def mark(
        self, reasons: list[str | None], flags: np.ndarray, describe: Callable[[int], str]
    ) -> None:
        for k in np.flatnonzero(flags):
            if reasons[k] is None:
                reasons[k] = describe(int(k))

    # -- stages ----------------------------------------------------------------------------

    def reference_forward(self) -> np.ndarray:
        """The float64 forward's rounding bound; marks cases whose forward is not finite,
        or that meet a kink, tie or singularity within the finite-difference step."""
        with tolerance.recording():
            rounded = self.forward(tolerance.track(self.z64), tolerance.track(self.theta64))
        with tolerance.recording() as events:
            self.forward(
                tolerance.track(self.z64, 2.0 * oracles.step_sizes(self.z64)),
                tolerance.track(self.theta64, 2.0 * oracles.step_sizes(self.theta64)),
            )
        outputs = np.asarray(rounded.value)
        bad = ~np.isfinite(outputs)

        def not_finite(k: int) -> str:
            index = tuple(int(i) for i in np.argwhere(bad[k])[0])
            return (
                f"the forward of {self.layer.name} is {outputs[k][index]} at output {index} "
                "for these inputs (outside the layer's domain)"
            )

        self.mark(self.invalid, bad.reshape(self.count, -1).any(axis=1), not_finite)
        self.mark_events(events)
        return np.asarray(rounded.error)

    def mark_events(self, events: list[tolerance.Event]) -> None:
        """Cases outside an activation's domain are invalid, and so are cases whose rules
        convert a Tracked array the error model cannot follow; cases at a kink, tie or
        singularity are non-differentiable."""
        for event in events:
            if event.kind == "domain":
                reasons = self.invalid
                prefix, suffix = "the pre-activation leaves the activation's domain: ", ""
            elif event.kind == "untracked":
                reasons = self.invalid
                prefix = (
                    f"{self.layer.name}'s hand-written rules convert an array that the "
                    "error model cannot follow ("
                )
                suffix = "): write them with operations gradcheck.tolerance has rules for"
            else:
                reasons = self.non_differentiable
                prefix = "non-differentiable: "
                suffix = "; the gradient is not defined within the finite-difference step"
            touched = event.cases(self.count)
            if event.kind == "singularity":
                self.singular |= touched
            for k in np.flatnonzero(touched):
                if reasons[k] is None:
                    reasons[k] = prefix + event.describe(int(k), self.count) + suffix

    def hand_written(self) -> _HandWritten:
        """B, ∂f/∂z, A = δ ⊙ B and δ_in in the working dtype with running error bounds."""
        count, n, i = self.z.shape
        j, p = self.theta.shape[1:]
        z, theta, delta = (tolerance.track(a) for a in (self.z, self.theta, self.delta))
        layer, phi = self.layer, self.phi
        compaction = layer.parameter_gradient or compact.compact_gradient
        with tolerance.recording() as events:
            unit_jacobian = self.call(
                "unit_jacobian", lambda: layer.unit_jacobian(z, theta, phi), (count, n, j, p)
            )
            input_jacobian = self.call(
                "input_jacobian", lambda: layer.input_jacobian(z, theta, phi), (count, n, j, i)
            )
            gradient = self.call(
                "parameter_gradient", lambda: compaction(delta, unit_jacobian), (count, j, p)
            )
            inputs_gradient = compact.input_gradient(delta, input_jacobian)
        self.mark_events(events)
        return _HandWritten(unit_jacobian, input_jacobian, gradient, inputs_gradient)

    def call(
        self, what: str, function: Callable[[], Any], shape: tuple[int, ...]
    ) -> tolerance.Tracked:
        """Run hand-written code; what it raises or returns misshapen makes the case invalid."""
        try:
            with np.errstate(all="ignore"):
                result = function()
        except Exception as error:
            raise _CaseError(
                f"{self.layer.name}.{what} raised {type(error).__name__}: {error}"
            ) from None
        result = result if isinstance(result, tolerance.Tracked) else tolerance.track(result)
        if result.shape != shape:
            raise _CaseError(
                f"{self.layer.name}.{what} returned shape {result.shape[1:]}, expected {shape[1:]}"
            )
        return result

    def check(self, options: _Options) -> list[CheckResult]:
        try:
            forward_error = self.clock.run("forward", self.reference_forward)
            hand = self.hand = self.clock.run("hand-written", self.hand_written)
        except _CaseError as problem:
            return [
                CheckResult(Verdict.INVALID_INPUT, f"invalid input: {problem}", self.summary)
            ] * self.count
        gradient, inputs_gradient = hand.gradient, hand.inputs_gradient
        if "dense" in options.oracles:
            self.clock.run("dense", lambda: self.dense(gradient, hand.unit_jacobian.value))
        if "autograd" in options.oracles:
            self.clock.run("autograd", lambda: self.autograd(gradient, inputs_gradient))
        if "finite-differences" in options.oracles:
            self.clock.run(
                "finite-differences",
                lambda: self.finite_differences(
                    gradient,
                    inputs_gradient,
                    forward_error,
                    options.finite_differences,
                    options.probes,
                ),
            )
        if options.kinks == "subgradient":
            self.clock.run("finite-differences", lambda: self.subgradient(hand, forward_error))
        seconds = {stage: elapsed / self.count for stage, elapsed in self.clock.seconds.items()}
        seconds["total"] = sum(seconds.values())
        return [self.verdict(k, seconds) for k in range(self.count)]

    def subgradient(self, hand: _HandWritten, forward_error: np.ndarray) -> None:
        """At a kink, B and ∂f/∂z must lie between the one-sided differences."""
        kinked = np.array([reason is not None for reason in self.non_differentiable])
        kinked &= ~self.singular
        if self.layer.coupled or not kinked.any():
            return  # one-sided column differences need independent units
        start = time.perf_counter()
        for k in np.flatnonzero(kinked):
            # Central differences and autograd are meaningless at a kink; the algebra is not.
            self.comparisons[k] = [c for c in self.comparisons[k] if c.oracle == "dense"]
            self.non_differentiable[k] = None
        self.at_kink = kinked
        for wrt, jacobian, target, names in (
            ("theta", hand.unit_jacobian, "parameters", ("row", "unit", "parameter")),
            ("z", hand.input_jacobian, "inputs", ("row", "unit", "input")),
        ):
            low, high, slack = oracles.one_sided_differences(
                self.forward, self.z64, self.theta64, forward_error, wrt=wrt
            )
            value = np.asarray(jacobian.value, dtype=np.float64)
            nearest = np.clip(value, low, high)
            self.add(
                _compare(
                    "finite-differences",
                    target,
                    "one-sided differences (subgradient)",
                    value,
                    nearest,
                    slack + jacobian.error,
                    time.perf_counter() - start,
                    names,
                ),
                cases=kinked,
            )

    def dense(self, gradient: tolerance.Tracked, unit_jacobian: np.ndarray) -> None:
        start = time.perf_counter()
        product, method = compact.dense_gradient(self.delta, unit_jacobian)
        bound = tolerance.summation_bound(self.delta, unit_jacobian)
        self.references["dense", "parameters"] = oracles.Reference(product, bound, method)
        self.add(
            _compare(
                "dense",
                "parameters",
                method,
                gradient.value,
                product,
                bound,
                time.perf_counter() - start,
            )
        )
        if self.layer.rank_one is None:
            return
        start = time.perf_counter()
        u, v = self.layer.rank_one(self.z, self.theta, self.phi)
        outer = compact.rank_one_gradient(self.delta, u, v)
        magnitude = np.einsum(
            "...nj,...np->...jp", np.abs(self.delta * u).astype(np.float64), np.abs(v)
        )
        operations = self.delta.shape[-2] + 2
        bound = 2.0 * (
            tolerance.gamma(operations, self.z.dtype) * magnitude
            + tolerance.underflow(operations, self.z.dtype)
        )
        self.add(
            _compare(
                "dense",
                "parameters",
                "rank-one outer product",
                gradient.value,
                outer,
                bound,
                time.perf_counter() - start,
            )
        )
        self.rank_one = "holds"

    def autograd(self, gradient: tolerance.Tracked, inputs_gradient: tolerance.Tracked) -> None:
        start = time.perf_counter()
        units = self.theta.shape[1]
        sample = None
        if units > COUPLING_UNITS_BUDGET:
            sample = np.linspace(0, units - 1, COUPLING_UNITS_BUDGET).astype(int)
        d_theta, d_z, contributions = oracles.autograd_gradients(
            self.forward, self.z64, self.theta64, self.delta64, units=sample
        )
        seconds = time.perf_counter() - start
        for hand, reference, target in (
            (gradient, d_theta, "parameters"),
            (inputs_gradient, d_z, "inputs"),
        ):
            self.add(
                _compare(
                    "autograd",
                    target,
                    reference.method,
                    hand.value,
                    reference.value,
                    hand.error + reference.error,
                    seconds,
                )
            )
        self.references["autograd", "parameters"] = d_theta
        self.references["autograd", "inputs"] = d_z
        if sample is None:
            self.contributions = contributions.value
            self.contributions_error = contributions.error
        self.mass = oracles.off_diagonal_mass(contributions.value, sample)
        coupled = self.layer.coupled | (self.mass > 0.0)
        if coupled.any():
            # The diagonal blocks are what B claims to be, coupled or not.
            rows = np.arange(units if sample is None else len(sample))
            chosen = rows if sample is None else sample
            self.add(
                _compare(
                    "autograd",
                    "parameters",
                    "diagonal blocks",
                    gradient.value[:, chosen],
                    contributions.value[:, rows, chosen],
                    gradient.error[:, chosen] + contributions.error[:, rows, chosen],
                    0.0,
                ),
                cases=np.broadcast_to(coupled, (self.count,)),
            )

    def finite_differences(
        self,
        gradient: tolerance.Tracked,
        inputs_gradient: tolerance.Tracked,
        forward_error: np.ndarray,
        layout: str,
        probes: int,
    ) -> None:
        arguments = (self.forward, self.z64, self.theta64, self.delta64, forward_error)
        start = time.perf_counter()
        per_case = self.theta[0].size
        parameter_layout = layout
        if layout == "auto" and self.layer.coupled:
            parameter_layout = "full" if per_case <= COUPLED_DIFFERENCES_BUDGET else "probes"
        elif layout == "auto":
            parameter_layout = "full" if per_case <= FULL_DIFFERENCES_BUDGET else "columns"
        if parameter_layout == "probes":
            reference, directions = oracles.probe_differences(*arguments, probes=probes)
            projected = np.einsum("kqjp,kjp->kq", directions, gradient.value.astype(np.float64))
            bound = np.einsum("kqjp,kjp->kq", np.abs(directions), gradient.error) + reference.error
            self.add(
                _compare(
                    "finite-differences",
                    "parameters",
                    reference.method,
                    projected,
                    reference.value,
                    bound,
                    time.perf_counter() - start,
                    ("probe",),
                )
            )
        else:
            reference = oracles.parameter_differences(*arguments, layout=parameter_layout)
            self.references["finite-differences", "parameters"] = reference
            self.add(
                _compare(
                    "finite-differences",
                    "parameters",
                    reference.method,
                    gradient.value,
                    reference.value,
                    gradient.error + reference.error,
                    time.perf_counter() - start,
                )
            )
        start = time.perf_counter()
        input_layout = (
            layout
            if layout in ("full", "columns")
            else ("full" if self.z[0].size <= FULL_DIFFERENCES_BUDGET else "columns")
        )
        reference = oracles.input_differences(*arguments, layout=input_layout)
        self.references["finite-differences", "inputs"] = reference
        self.add(
            _compare(
                "finite-differences",
                "inputs",
                reference.method,
                inputs_gradient.value,
                reference.value,
                inputs_gradient.error + reference.error,
                time.perf_counter() - start,
            )
        )

    def diagnose(self, k: int) -> Diagnosis | None:
        """Gather case k's evidence and name the likely bug (see gradcheck.diagnosis)."""
        if self.hand is None:
            return None
        return explain.diagnose_case(self, k)

    def verdict(self, k: int, seconds: Mapping[str, float]) -> CheckResult:
        comparisons = tuple(self.comparisons[k])
        mass = None if self.mass is None else float(self.mass[k])
        rank_one = self.rank_one
        if rank_one == "holds" and any(
            c.method == "rank-one outer product" and not c.passed for c in comparisons
        ):
            rank_one = "fails"

        def result(
            verdict: Verdict, message: str, diagnosis: Diagnosis | None = None
        ) -> CheckResult:
            return CheckResult(
                verdict, message, self.summary, comparisons, mass, rank_one, seconds, diagnosis
            )

        if self.invalid[k] is not None:
            return CheckResult(
                Verdict.INVALID_INPUT,
                f"invalid input: {self.invalid[k]}",
                self.summary,
                seconds=seconds,
            )
        if self.non_differentiable[k] is not None:
            return CheckResult(
                Verdict.NON_DIFFERENTIABLE,
                str(self.non_differentiable[k]),
                self.summary,
                seconds=seconds,
            )
        # Formula 1 holds for every layer, so its failures come first, coupled or not.
        failures = sorted(
            (c for c in comparisons if not c.passed),
            key=lambda c: (c.target != "inputs", -c.worst_ratio),
        )
        coupled = self.layer.coupled or (mass is not None and mass > 0.0)
        if failures and (failures[0].target == "inputs" or not coupled):
            diagnosis = self.diagnose(k)
            return result(Verdict.MISMATCH, _mismatch_message(failures[0], diagnosis), diagnosis)
        if coupled:
            share = "" if mass is None else f"; {mass:.1%} of the gradient's mass crosses units"
            return result(
                Verdict.COUPLED,
                f"coupled: {self.layer.name} breaks the block-diagonal precondition (output j "
                f"depends on other units' parameters){share}, so the compact form A = δ ⊙ B "
                "is not the parameter gradient",
            )
        closest = max(comparisons, key=lambda c: c.worst_ratio, default=None)
        detail = ""
        if closest is not None:
            symbol = "z" if closest.target == "inputs" else "θ"
            detail = (
                f" (closest: {closest.oracle} on ∂E/∂{symbol} at "
                f"{closest.worst_ratio:.2g} of its bound)"
            )
        kink = " at a kink, within the one-sided differences" if self.at_kink[k] else ""
        return result(Verdict.PASS, f"pass{kink}: {len(comparisons)} comparisons agree{detail}")


def _mismatch_message(comparison: Comparison, diagnosis: Diagnosis | None = None) -> str:
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
