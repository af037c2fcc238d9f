"""The stacked path of the catalogue checker: K cases of one shape checked in one pass.

`check_many` (`gradcheck.catalogue.checker`) groups cases that share a layer type,
activation, dtype and shapes and hands each group to a `Batch`, whose arrays carry the
cases on a leading axis of length K. Every stage then runs once for the whole group, as
numpy operations over that axis: the float64 forward with its rounding and the kink test,
the hand-written side (`gradcheck.catalogue.hand_written`: B, ∂f/∂z, A = δ ⊙ B, δ_in on
`Tracked` arrays in the cases' dtype), each oracle, the subgradient test at kinks, and the
verdict of each case (`gradcheck.catalogue.verdicts`). Each case keeps its own reasons and
comparisons, so a bad case never spoils the others in its group.

A Batch also keeps the hand-written side and each reference, which
`gradcheck.diagnosis.catalogue` reads to explain a mismatch.
Layers too big to stack take the block-by-block path, `gradcheck.catalogue.large`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gradcheck.catalogue.activations import Activation
from gradcheck.catalogue.cases import Options
from gradcheck.catalogue.hand_written import HandWritten, hand_written_side, rank_one_reference
from gradcheck.catalogue.layers import LayerType
from gradcheck.catalogue.verdicts import case_verdict
from gradcheck.core import compact, oracles, tolerance
from gradcheck.core.comparison import (
    CaseError,
    Clock,
    compare,
)
from gradcheck.core.differences import second_look
from gradcheck.core.probes import projections
from gradcheck.core.results import CaseSummary, CheckResult, Comparison, Verdict
from gradcheck.diagnosis import catalogue as explain
from gradcheck.diagnosis.classes import Diagnosis

#: θ or z with at most this many entries get full finite differences (each entry alone).
FULL_DIFFERENCES_BUDGET = 64
#: A coupled layer needs full differences (columns assume independent units) up to here.
COUPLED_DIFFERENCES_BUDGET = 4096
#: Output units whose Jacobian blocks are measured; larger layers use an even sample.
COUPLING_UNITS_BUDGET = 64


class Batch:
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
        self.hand: HandWritten | None = None
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

    def hand_written(self) -> HandWritten:
        """B, ∂f/∂z, A = δ ⊙ B and δ_in in the working dtype with running error bounds."""
        hand, events = hand_written_side(self.layer, self.phi, self.z, self.theta, self.delta)
        self.mark_events(events)
        return hand

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

    def subgradient(self, hand: HandWritten, forward_error: np.ndarray) -> None:
        """At a kink, B and ∂f/∂z must lie between the one-sided differences.

        Output by output, where the user engine (`gradcheck.user.compare`) tests ∂E/∂x
        between E's one-sided extrapolations: a catalogue layer's units are independent,
        so each row of B is held to its own output's quotients (a kink in one unit cannot
        hide behind another's slope); a user's forward is a black box whose outputs
        cannot be moved one unit at a time."""
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
        outer, bound = rank_one_reference(self.layer, self.phi, self.z, self.theta, self.delta)
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
        """A and δ_in against central differences. A case whose hand-written values miss
        the first look's bound is differenced again with the forward's rounding charged at
        the stencil points (`gradcheck.core.differences.second_look`) before it counts."""
        arguments = (self.forward, self.z64, self.theta64, self.delta64, forward_error)

        def subset(cases: np.ndarray) -> tuple[Any, ...]:
            return (self.forward, *(a[cases] for a in arguments[1:]))

        # A coupled layer's A is not its gradient: its misses on θ are not looked at twice.
        uncoupled = np.full(self.count, not self.layer.coupled)
        if self.mass is not None:
            uncoupled &= ~(np.asarray(self.mass) > 0.0)

        start = time.perf_counter()
        per_case = self.theta[0].size
        parameter_layout = layout
        if layout == "auto" and self.layer.coupled:
            parameter_layout = "full" if per_case <= COUPLED_DIFFERENCES_BUDGET else "probes"
        elif layout == "auto":
            parameter_layout = "full" if per_case <= FULL_DIFFERENCES_BUDGET else "columns"
        if parameter_layout == "probes":
            reference, directions = oracles.probe_differences(*arguments, probes=probes)
            projected, hand_bound = projections(
                directions, gradient.value, gradient.error, self.theta64, cases=1
            )
            reference, _ = second_look(
                reference, projected, hand_bound,
                lambda cases: oracles.probe_differences(
                    *subset(cases), probes=probes, tracked=True,
                    directions=directions[:, cases],  # the directions g was projected on
                )[0], uncoupled,
            )  # fmt: skip
            found = compare(
                "finite-differences", "parameters", reference.method, projected,
                reference.value, hand_bound + reference.error, time.perf_counter() - start,
                ("probe",),
            )  # fmt: skip
            self.add(found)
        else:
            self.entrywise(
                "parameters", oracles.parameter_differences, gradient, parameter_layout,
                forward_error, start, uncoupled,
            )  # fmt: skip
        input_layout = (
            layout
            if layout in ("full", "columns")
            else ("full" if self.z[0].size <= FULL_DIFFERENCES_BUDGET else "columns")
        )
        self.entrywise(
            "inputs", oracles.input_differences, inputs_gradient, input_layout, forward_error,
            time.perf_counter(),
        )  # fmt: skip

    def entrywise(
        self,
        target: str,
        differences: Callable[..., oracles.Reference],
        hand: tolerance.Tracked,
        layout: str,
        forward_error: np.ndarray,
        start: float,
        among: np.ndarray | None = None,
    ) -> None:
        """One target's hand-written values against its differences in `layout`, entry by
        entry; the cases that miss (among those given) are looked at a second time."""
        arguments = (self.forward, self.z64, self.theta64, self.delta64, forward_error)
        reference = differences(*arguments, layout=layout)
        reference, _ = second_look(
            reference, hand.value, hand.error,
            lambda cases: differences(
                self.forward, *(a[cases] for a in arguments[1:]), layout=layout, tracked=True
            ), among,
        )  # fmt: skip
        self.references["finite-differences", target] = reference
        found = compare(
            "finite-differences", target, reference.method, hand.value, reference.value,
            hand.error + reference.error, time.perf_counter() - start,
        )  # fmt: skip
        self.add(found)

    def diagnose(self, k: int) -> Diagnosis | None:
        """Gather case k's evidence and name the bug (see gradcheck.diagnosis.classes);
        the hand-written side is formed again on the case with its batch stacked twice."""
        if self.hand is None:
            return None

        def again(z: np.ndarray, theta: np.ndarray, delta: np.ndarray) -> HandWritten:
            return hand_written_side(self.layer, self.phi, z, theta, delta)[0]

        return explain.diagnose_case(self, k, again)

    def verdict(self, k: int, seconds: Mapping[str, float]) -> CheckResult:
        mass = None if self.mass is None else float(self.mass[k])
        coupling = None
        if self.layer.coupled or (mass is not None and mass > 0.0):
            coupling = "" if mass is None else f"; {mass:.1%} of the gradient's mass crosses units"
        return case_verdict(
            self.summary, tuple(self.comparisons[k]), seconds,
            invalid=self.invalid[k], non_differentiable=self.non_differentiable[k],
            coupling=coupling, mass=mass, rank_one=self.rank_one,
            diagnose=lambda: self.diagnose(k), at_kink=bool(self.at_kink[k]),
        )  # fmt: skip
