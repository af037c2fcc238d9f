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

from gradcheck import compact, oracles, tolerance
from gradcheck.activations import Activation, resolve_activation
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
        raise _CaseError(
            f"{name} has integer dtype {array.dtype}; gradients are checked in floating "
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
) -> Comparison:
    hand = np.asarray(hand_written, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    limit = np.broadcast_to(np.asarray(bound, dtype=np.float64), hand.shape)
    with np.errstate(all="ignore"):
        error = np.abs(hand - ref)
        ratio = np.where(limit > 0, error / limit, np.where(error == 0, 0.0, np.inf))
    ratio = np.where(np.isnan(ratio), np.inf, ratio)  # a NaN on either side never passes
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    scale = float(np.nanmax(np.abs(ref))) if np.isfinite(ref).any() else np.nan
    max_error = float(np.nanmax(error)) if not np.isnan(error).all() else np.nan
    relative = max_error / scale if scale > 0 else (0.0 if max_error == 0 else np.inf)
    names = entry_names or _ENTRY_NAMES[target]
    return Comparison(
        oracle=oracle,
        target=target,
        method=method,
        max_abs_error=max_error,
        max_rel_error=float(relative),
        worst_ratio=float(ratio[worst]),
        worst_entry={name: int(i) for name, i in zip(names, worst, strict=True)},
        worst_error=float(error[worst]),
        worst_bound=float(limit[worst]),
        hand_written=float(hand[worst]),
        reference=float(ref[worst]),
        seconds=seconds,
        unbounded_entries=int(np.isinf(limit).sum()),
    )


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


def check(
    case: Case,
    *,
    oracles: Sequence[str] = ORACLES,
    finite_differences: str = "auto",
    probes: int = 16,
) -> CheckResult:
    """Check one case's hand-written gradients against the oracles.

    oracles: any of "dense", "autograd", "finite-differences".
    finite_differences: "auto", "full", "columns" or "probes" (see gradcheck.oracles).
    probes: how many random directions the "probes" layout uses.
    Unknown names raise `UnknownNameError`; everything wrong with the case itself comes
    back as an invalid-input verdict whose message names the array and the problem.
    """
    started = time.perf_counter()
    layer = resolve_layer_type(case.layer_type)
    phi = identity_if_unused(layer, resolve_activation(case.activation))
    for name in oracles:
        if name not in ORACLES:
            raise UnknownNameError("oracle", name, list(ORACLES))
    if finite_differences not in ("auto", "full", "columns", "probes"):
        raise GradcheckError(
            "finite_differences must be 'auto', 'full', 'columns' or 'probes', "
            f"got {finite_differences!r}"
        )
    if not isinstance(probes, int) or probes < 1:
        raise GradcheckError(f"probes must be a positive integer, got {probes!r}")
    try:
        z, theta, delta = _validated(case, layer)
    except _CaseError as problem:
        return CheckResult(Verdict.INVALID_INPUT, f"invalid input: {problem}", None)
    summary = CaseSummary(
        layer.name, phi.label, z.dtype.name, z.shape[1], theta.shape[0], z.shape[0], theta.shape[1]
    )
    run = _Run(layer, phi, z, theta, delta, summary)
    try:
        result = run.check(oracles, finite_differences, probes)
    except _CaseError as problem:
        result = CheckResult(Verdict.INVALID_INPUT, f"invalid input: {problem}", summary)
    seconds = dict(result.seconds)
    seconds.update(run.clock.seconds)
    seconds["total"] = time.perf_counter() - started
    return CheckResult(
        result.verdict,
        result.message,
        result.case,
        result.comparisons,
        result.off_diagonal_mass,
        result.rank_one,
        seconds,
    )


class _Run:
    """The state of one check: the case in the working dtype and in float64."""

    def __init__(
        self,
        layer: LayerType,
        phi: Activation,
        z: np.ndarray,
        theta: np.ndarray,
        delta: np.ndarray,
        summary: CaseSummary,
    ) -> None:
        self.layer, self.phi, self.summary = layer, phi, summary
        self.z, self.theta, self.delta = z, theta, delta
        self.z64, self.theta64, self.delta64 = (a.astype(np.float64) for a in (z, theta, delta))
        self.clock = _Clock()
        self.comparisons: list[Comparison] = []

    def forward(self, z: Any, theta: Any) -> Any:
        return self.layer.forward(z, theta, self.phi)

    def result(self, verdict: Verdict, message: str, **extra: Any) -> CheckResult:
        return CheckResult(verdict, message, self.summary, tuple(self.comparisons), **extra)

    # -- stages ----------------------------------------------------------------------------

    def reference_forward(self) -> tuple[np.ndarray, list[tolerance.Event]]:
        """The float64 forward with its rounding bound, and the events met within the
        finite-difference step (kinks, ties, singularities, domain exits)."""
        with tolerance.recording():
            rounded = self.forward(tolerance.track(self.z64), tolerance.track(self.theta64))
        with tolerance.recording() as events:
            self.forward(
                tolerance.track(self.z64, 2.0 * oracles.step_sizes(self.z64)),
                tolerance.track(self.theta64, 2.0 * oracles.step_sizes(self.theta64)),
            )
        outputs = np.asarray(rounded.value)
        bad = ~np.isfinite(outputs)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise _CaseError(
                f"the forward of {self.layer.name} is {outputs[index]} at output {index} "
                "for these inputs (outside the layer's domain)"
            )
        return np.asarray(rounded.error), events

    def hand_written(
        self,
    ) -> tuple[tolerance.Tracked, tolerance.Tracked, np.ndarray, list[tolerance.Event]]:
        """B, A = δ ⊙ B and δ_in in the working dtype, with their running error bounds."""
        n, i = self.z.shape
        j, p = self.theta.shape
        z, theta, delta = (tolerance.track(a) for a in (self.z, self.theta, self.delta))
        layer, phi = self.layer, self.phi
        compaction = layer.parameter_gradient or compact.compact_gradient
        with tolerance.recording() as events:
            unit_jacobian = self._call(
                "unit_jacobian", lambda: layer.unit_jacobian(z, theta, phi), (n, j, p)
            )
            input_jacobian = self._call(
                "input_jacobian", lambda: layer.input_jacobian(z, theta, phi), (n, j, i)
            )
            gradient = self._call(
                "parameter_gradient", lambda: compaction(delta, unit_jacobian), (j, p)
            )
            inputs_gradient = compact.input_gradient(delta, input_jacobian)
        return gradient, inputs_gradient, np.asarray(unit_jacobian.value), events

    def _call(
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
                f"{self.layer.name}.{what} returned shape {result.shape}, expected {shape}"
            )
        return result

    def check(self, chosen: Sequence[str], layout: str, probes: int) -> CheckResult:
        forward_error, step_events = self.clock.run("forward", self.reference_forward)
        domain = [e for e in step_events if e.kind == "domain"]
        if domain:
            raise _CaseError(
                f"the pre-activation leaves the activation's domain: {domain[0].describe()}"
            )
        gradient, inputs_gradient, unit_jacobian, rounding_events = self.clock.run(
            "hand-written", self.hand_written
        )
        events = step_events + rounding_events
        if events:
            return self.result(
                Verdict.NON_DIFFERENTIABLE,
                f"non-differentiable: {events[0].describe()}; the gradient is not defined "
                "within the finite-difference step",
            )
        rank_one = "not applicable"
        mass = None
        if "dense" in chosen:
            rank_one = self.clock.run("dense", lambda: self.dense(gradient, unit_jacobian))
        if "autograd" in chosen:
            mass = self.clock.run("autograd", lambda: self.autograd(gradient, inputs_gradient))
        if "finite-differences" in chosen:
            self.clock.run(
                "finite-differences",
                lambda: self.finite_differences(
                    gradient, inputs_gradient, forward_error, layout, probes
                ),
            )
        return self.verdict(mass, rank_one)

    def dense(self, gradient: tolerance.Tracked, unit_jacobian: np.ndarray) -> str:
        start = time.perf_counter()
        product, method = compact.dense_gradient(self.delta, unit_jacobian)
        self.comparisons.append(
            _compare(
                "dense",
                "parameters",
                method,
                gradient.value,
                product,
                tolerance.summation_bound(self.delta, unit_jacobian),
                time.perf_counter() - start,
            )
        )
        if self.layer.rank_one is None:
            return "not applicable"
        start = time.perf_counter()
        u, v = self.layer.rank_one(self.z, self.theta, self.phi)
        outer = compact.rank_one_gradient(self.delta, u, v)
        magnitude = np.einsum("nj,np->jp", np.abs(self.delta * u).astype(np.float64), np.abs(v))
        bound = 2.0 * tolerance.gamma(self.delta.shape[0] + 2, self.z.dtype) * magnitude
        comparison = _compare(
            "dense",
            "parameters",
            "rank-one outer product",
            gradient.value,
            outer,
            bound,
            time.perf_counter() - start,
        )
        self.comparisons.append(comparison)
        return "holds" if comparison.passed else "fails"

    def autograd(self, gradient: tolerance.Tracked, inputs_gradient: tolerance.Tracked) -> float:
        start = time.perf_counter()
        d_theta, d_z = oracles.autograd_gradients(
            self.forward, self.z64, self.theta64, self.delta64
        )
        seconds = time.perf_counter() - start
        for hand, reference, target in (
            (gradient, d_theta, "parameters"),
            (inputs_gradient, d_z, "inputs"),
        ):
            self.comparisons.append(
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
        start = time.perf_counter()
        units = self.theta.shape[0]
        sample = None
        if units > COUPLING_UNITS_BUDGET:
            sample = np.linspace(0, units - 1, COUPLING_UNITS_BUDGET).astype(int)
        contributions = oracles.unit_contributions(
            self.forward, self.z64, self.theta64, self.delta64, units=sample
        )
        mass = oracles.off_diagonal_mass(contributions.value, sample)
        if self.layer.coupled or mass > 0.0:
            # The diagonal blocks are what B claims to be, coupled or not.
            chosen = np.arange(units) if sample is None else sample
            rows = np.arange(len(chosen))
            self.comparisons.append(
                _compare(
                    "autograd",
                    "parameters",
                    "diagonal blocks",
                    gradient.value[chosen],
                    contributions.value[rows, chosen],
                    gradient.error[chosen] + contributions.error[rows, chosen],
                    time.perf_counter() - start,
                )
            )
        return mass

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
        parameter_layout = layout
        if layout == "auto":
            small = self.theta.size <= FULL_DIFFERENCES_BUDGET
            if self.layer.coupled:
                small = self.theta.size <= COUPLED_DIFFERENCES_BUDGET
                parameter_layout = "full" if small else "probes"
            else:
                parameter_layout = "full" if small else "columns"
        if parameter_layout == "probes":
            reference, directions = oracles.probe_differences(*arguments, probes=probes)
            projected = np.einsum("kjp,jp->k", directions, gradient.value.astype(np.float64))
            bound = np.einsum("kjp,jp->k", np.abs(directions), gradient.error) + reference.error
            self.comparisons.append(
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
            self.comparisons.append(
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
            else ("full" if self.z.size <= FULL_DIFFERENCES_BUDGET else "columns")
        )
        reference = oracles.input_differences(*arguments, layout=input_layout)
        self.comparisons.append(
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

    def verdict(self, mass: float | None, rank_one: str) -> CheckResult:
        extra = {"off_diagonal_mass": mass, "rank_one": rank_one}
        # Formula 1 holds for every layer, so its failures come first, coupled or not.
        failures = sorted(
            (c for c in self.comparisons if not c.passed),
            key=lambda c: (c.target != "inputs", -c.worst_ratio),
        )
        coupled = self.layer.coupled or (mass is not None and mass > 0.0)
        if failures and (failures[0].target == "inputs" or not coupled):
            return self.result(Verdict.MISMATCH, _mismatch_message(failures[0]), **extra)
        if coupled:
            share = "" if mass is None else f"; {mass:.1%} of the gradient's mass crosses units"
            return self.result(
                Verdict.COUPLED,
                f"coupled: {self.layer.name} breaks the block-diagonal precondition (output j "
                f"depends on other units' parameters){share}, so the compact form A = δ ⊙ B "
                "is not the parameter gradient",
                **extra,
            )
        closest = max(self.comparisons, key=lambda c: c.worst_ratio, default=None)
        detail = ""
        if closest is not None:
            symbol = "z" if closest.target == "inputs" else "θ"
            detail = (
                f" (closest: {closest.oracle} on ∂E/∂{symbol} at "
                f"{closest.worst_ratio:.2g} of its bound)"
            )
        message = f"pass: {len(self.comparisons)} comparisons agree{detail}"
        return self.result(Verdict.PASS, message, **extra)


def _mismatch_message(comparison: Comparison) -> str:
    where = ", ".join(f"{name} {index}" for name, index in comparison.worst_entry.items())
    target = "∂E/∂z (formula 1)" if comparison.target == "inputs" else "∂E/∂θ (formula 2)"
    return (
        f"mismatch: {comparison.oracle} ({comparison.method}) disagrees on {target} at {where}: "
        f"hand-written {comparison.hand_written:.9g}, reference {comparison.reference:.9g}, "
        f"error {comparison.worst_error:.3g} exceeds the bound {comparison.worst_bound:.3g} "
        f"({comparison.worst_ratio:.3g}x)"
    )
