"""One case in, one CheckResult out.

`check(case)` evaluates a layer type's hand-written unit Jacobian B and input Jacobian in
the case's dtype, forms the compact gradient A = Σ_n diag(δ_n) B_n (formula 2) and the
input gradient δ_in = δ · ∂f/∂z (formula 1), and holds both against the oracles:

- dense: the same A through the J × JP block-diagonal product (explicit, or block by block), and,
  for rank-one layers, through the seed's outer product (δ ⊙ u) vᵀ;
- autograd: ∂E/∂θ and ∂E/∂z by reverse mode in float64, and the whole Jacobian's
  unit-to-unit blocks, which measure the block-diagonal precondition;
- finite-differences: central differences with Richardson extrapolation in float64.

Each entry must lie within the bound of `gradcheck.core.tolerance`. The verdict is the first
that applies of: invalid-input (bad arrays, a forward that is not finite, hand-written
code that raises or returns the wrong shape), non-differentiable (a kink, tie or
singularity within the finite-difference step or the rounding error), mismatch of the
input gradient, coupled (the layer breaks the block-diagonal precondition, declared or
measured), mismatch of the parameter gradient, pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.catalogue.activations import Activation, resolve_activation
from gradcheck.catalogue.cases import (
    COUPLED_DIFFERENCES_BUDGET,
    COUPLING_UNITS_BUDGET,
    FULL_DIFFERENCES_BUDGET,
    Case,
    Options,
    call_hand_written,
    check_options,
    validated,
)
from gradcheck.catalogue.layers import LayerType, identity_if_unused, resolve_layer_type
from gradcheck.core import compact, oracles, tolerance
from gradcheck.core.comparison import (
    SUPPORTED_DTYPES,
    CaseError,
    Clock,
    closest_detail,
    compare,
    mismatch_message,
)
from gradcheck.core.results import ORACLES, CaseSummary, CheckResult, Comparison, Verdict
from gradcheck.diagnosis import catalogue as explain
from gradcheck.diagnosis.classes import Diagnosis
from gradcheck.errors import GradcheckError

__all__ = [
    "ORACLES",
    "SUPPORTED_DTYPES",
    "Case",
    "CaseSummary",
    "CheckResult",
    "Comparison",
    "Verdict",
    "check",
    "check_many",
]

# ---- the check ------------------------------------------------------------------------------

#: Cases of one layer type, activation, dtype and shape are checked this many at a time.
BATCH_SIZE = 64


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
    finite_differences: "auto", "full", "columns" or "probes" (see gradcheck.core.oracles).
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
    options = check_options(oracles, finite_differences, probes, kinks)
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
            z, theta, delta = validated(case, layer)
        except CaseError as problem:
            results[index] = CheckResult(Verdict.INVALID_INPUT, f"invalid input: {problem}", None)
            continue
        from gradcheck.catalogue import large  # here, not at the top: large imports this module

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
        self.clock = Clock()
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
                suffix = "): write them with operations gradcheck.core.tolerance has rules for"
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
            unit_jacobian = call_hand_written(
                self.layer,
                "unit_jacobian",
                lambda: layer.unit_jacobian(z, theta, phi),
                (count, n, j, p),
                stacked=True,
            )
            input_jacobian = call_hand_written(
                self.layer,
                "input_jacobian",
                lambda: layer.input_jacobian(z, theta, phi),
                (count, n, j, i),
                stacked=True,
            )
            gradient = call_hand_written(
                self.layer,
                "parameter_gradient",
                lambda: compaction(delta, unit_jacobian),
                (count, j, p),
                stacked=True,
            )
            inputs_gradient = compact.input_gradient(delta, input_jacobian)
        self.mark_events(events)
        return _HandWritten(unit_jacobian, input_jacobian, gradient, inputs_gradient)

    def check(self, options: Options) -> list[CheckResult]:
        try:
            forward_error = self.clock.run("forward", self.reference_forward)
            hand = self.hand = self.clock.run("hand-written", self.hand_written)
        except CaseError as problem:
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
                compare(
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
            compare(
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
            compare(
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
                compare(
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
                compare(
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
                compare(
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
                compare(
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
            compare(
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
        """Gather case k's evidence and name the likely bug (see gradcheck.diagnosis.classes)."""
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
            return result(Verdict.MISMATCH, mismatch_message(failures[0], diagnosis), diagnosis)
        if coupled:
            share = "" if mass is None else f"; {mass:.1%} of the gradient's mass crosses units"
            return result(
                Verdict.COUPLED,
                f"coupled: {self.layer.name} breaks the block-diagonal precondition (output j "
                f"depends on other units' parameters){share}, so the compact form A = δ ⊙ B "
                "is not the parameter gradient",
            )
        detail = closest_detail(comparisons)
        kink = " at a kink, within the one-sided differences" if self.at_kink[k] else ""
        return result(Verdict.PASS, f"pass{kink}: {len(comparisons)} comparisons agree{detail}")
