"""The comparisons of a network check: K stacked networks against every oracle.

`NetworkCheck` runs the hand-written recursion of `gradcheck.catalogue.network` on
`Tracked` arrays in the networks' dtype and holds every A^ℓ, δ^ℓ and the loss rule's δ^L
against the oracles that `gradcheck.catalogue.network_checker` describes: the dense
product of each layer, one reverse pass of autograd through the whole E (which also
feeds each layer alone with autograd's δ^ℓ, for the blame), and central differences of
the whole E. It marks networks that are invalid (a forward or an intermediate that is
not finite) or non-differentiable (a kink within the reach of the steps). What the
comparisons mean for each layer, and the verdict, are `gradcheck.catalogue.network_results`.

This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive

from gradcheck.catalogue.network import (
    COMPACTION,
    FORMULA_1,
    HandWritten,
    InvalidNetworkError,
    StackedNetworks,
    compaction,
    with_cross_term,
)
from gradcheck.catalogue.network_results import NetworkResult, layer_result, network_result
from gradcheck.core import compact, oracles, tolerance
from gradcheck.core.comparison import Clock, compare
from gradcheck.core.differences import second_look
from gradcheck.core.probes import projections
from gradcheck.core.results import Comparison
from gradcheck.core.tolerance import Tracked, track

#: θ^ℓ with at most this many entries get full finite differences (each entry alone);
#: larger ones get random signed probes.
FULL_DIFFERENCES_BUDGET = 64


@primitive
def _tap(z: Any, zero: Any) -> Any:
    """z itself: autograd's gradient with respect to `zero` (always 0) is then ∂E/∂z,
    without any arithmetic that the error model would have to charge."""
    return z


defvjp(_tap, lambda ans, z, zero: lambda g: g, lambda ans, z, zero: lambda g: g)

_DIFFERENCES = "the finite differences of the float64 forward"


@dataclass(frozen=True)
class NetworkOptions:
    """The oracles to consult, the finite-difference layout ("auto", "full" or "probes")
    and the number of probes per layer, validated by `network_checker`."""

    oracles: tuple[str, ...]
    finite_differences: str
    probes: int


class NetworkCheck:
    """The checks of K stacked networks, and what is known of each."""

    def __init__(self, stack: StackedNetworks) -> None:
        self.stack = stack
        self.count, self.depth = stack.count, stack.depth
        self.z64 = stack.z.astype(np.float64)
        self.thetas64 = [theta.astype(np.float64) for theta in stack.thetas]
        self.targets64 = stack.targets.astype(np.float64)
        self.invalid: list[str | None] = [None] * self.count
        self.non_differentiable: list[str | None] = [None] * self.count
        self.loss_comparisons: list[list[Comparison]] = [[] for _ in range(self.count)]
        # [layer][case]: the recursion's comparisons, and the layer's own
        self.chain: list[list[list[Comparison]]] = [
            [[] for _ in range(self.count)] for _ in range(self.depth)
        ]
        self.own: list[list[list[Comparison]]] = [
            [[] for _ in range(self.count)] for _ in range(self.depth)
        ]
        self.clock = Clock()  # wall time per stage

    def run(self, options: NetworkOptions) -> list[NetworkResult]:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # Networks whose forward overflows are reported invalid; numpy need not warn.
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                rounding = self.clock.run("forward", self.reference_forward)
                with tolerance.recording() as events:
                    hand = self.clock.run("hand-written", self.stack.hand_written)
            except InvalidNetworkError as problem:
                return [self.result(k, invalid=str(problem)) for k in range(self.count)]
            dtype = self.stack.z.dtype.name
            self.mark_events(events, f"the hand-written rules in {dtype}")
            self.mark_overflow(f"the hand-written rules in {dtype}", _named(hand))
            if "dense" in options.oracles:
                self.clock.run("dense", lambda: self.dense(hand))
            if "autograd" in options.oracles:
                self.clock.run("autograd", lambda: self.autograd(hand))
            if "finite-differences" in options.oracles:
                self.clock.run(
                    "finite-differences", lambda: self.differences(hand, rounding, options)
                )
        return [self.result(k) for k in range(self.count)]

    def add(self, where: list[list[Comparison]], comparisons: list[Comparison]) -> None:
        for k, comparison in enumerate(comparisons):
            where[k].append(comparison)

    def mark_overflow(self, where: str, arrays: list[tuple[str, np.ndarray]]) -> None:
        """Cases whose values turn non-finite on finite inputs are invalid: an intermediate
        overflowed (deep layers reach magnitudes a single layer never sees), the running
        bound is infinite, and no oracle can be held against what cannot be bounded."""
        for what, values in arrays:
            bad = ~np.isfinite(np.asarray(values, dtype=np.float64))
            for k in np.flatnonzero(bad.reshape(self.count, -1).any(axis=1)):
                if self.invalid[k] is None:
                    index = tuple(int(i) for i in np.argwhere(bad[k])[0])
                    self.invalid[k] = (
                        f"{where} overflow: {what} is {values[k][index]} at {index} for these "
                        "inputs (outside the range the dtype can represent)"
                    )

    def mark_events(self, events: list[tolerance.Event], where: str) -> None:
        """Cases outside an activation's domain are invalid; cases at a kink, tie or
        singularity are non-differentiable."""
        for event in events:
            if event.kind == "domain":
                reasons, suffix = self.invalid, ""
                prefix = "a pre-activation leaves its activation's domain: "
            else:
                reasons = self.non_differentiable
                prefix = "non-differentiable: "
                suffix = "; the gradient is not defined within the finite-difference step"
            for k in np.flatnonzero(event.cases(self.count)):
                if reasons[k] is None:
                    reasons[k] = f"{prefix}{where}: {event.describe(int(k), self.count)}{suffix}"

    def reference_forward(self) -> Tracked:
        """The float64 forward from exact inputs, with its rounding bound (e per example);
        marks networks whose forward is not finite, and those that meet a kink, tie or
        singularity within the reach of the finite-difference steps."""
        stack = self.stack
        thetas = [track(theta) for theta in self.thetas64]
        with tolerance.recording():
            energy = stack.energy_from(0, track(self.z64), thetas, self.targets64)
        finite = np.isfinite(np.asarray(energy.value)).reshape(self.count, -1).all(axis=1)
        for k in np.flatnonzero(~finite):
            self.invalid[k] = "the forward (or the loss) is not finite for these inputs"
        # Every entry of z⁰ and θ^ℓ moves by up to 2h in the differences; the Tracked
        # forward carries that reach up through the layers to every pre-activation.
        z = track(self.z64, 2.0 * oracles.step_sizes(self.z64))
        for index, ((layer, phi), theta) in enumerate(zip(stack.rows, self.thetas64, strict=True)):
            with tolerance.recording() as events:
                z = layer.forward(z, track(theta, 2.0 * oracles.step_sizes(theta)), phi)
            self.mark_events(events, f"layer {index + 1} ({layer.name})")
        return energy

    # -- oracles -------------------------------------------------------------------------------

    def dense(self, hand: HandWritten) -> None:
        """A^ℓ against the explicit block-diagonal product of the same δ^ℓ and B^ℓ."""
        for index in range(self.depth):
            start = time.perf_counter()
            delta = np.asarray(hand.deltas[index + 1].value)
            unit_jacobian = np.asarray(hand.unit_jacobians[index].value)
            product, method = compact.dense_gradient(delta, unit_jacobian)
            self.add(
                self.chain[index],
                compare(
                    "dense",
                    "parameters",
                    method,
                    hand.gradients[index].value,
                    product,
                    tolerance.summation_bound(delta, unit_jacobian),
                    time.perf_counter() - start,
                ),
            )

    def reverse_mode(self) -> tuple[list[oracles.Reference], list[oracles.Reference]]:
        """∂E/∂θ^ℓ (ℓ = 1 … L) and ∂E/∂z^ℓ (ℓ = 0 … L) in one reverse pass in float64."""
        stack = self.stack
        targets = track(self.targets64)

        def energy(arguments: tuple[Any, tuple[Any, ...], tuple[Any, ...]]) -> Any:
            z, thetas, taps = arguments
            for (layer, phi), theta, tap in zip(stack.rows, thetas, taps, strict=True):
                z = _tap(layer.forward(z, theta, phi), tap)
            return anp.sum(stack.loss.forward(z, targets))

        taps = tuple(track(np.zeros((self.count, stack.batch, j))) for j in stack.widths[1:])
        thetas = tuple(track(theta) for theta in self.thetas64)
        d_z, d_thetas, d_taps = oracles.reverse_mode(energy, (track(self.z64), thetas, taps))

        def reference(gradient: Tracked) -> oracles.Reference:
            return oracles.Reference(
                np.asarray(gradient.value), np.asarray(gradient.error), "reverse mode"
            )

        return [reference(d) for d in d_thetas], [reference(d) for d in (d_z, *d_taps)]

    def autograd(self, hand: HandWritten) -> None:
        """The loss rule, every layer's A^ℓ and δ^(ℓ-1), and every layer alone."""
        start = time.perf_counter()
        d_thetas, d_zs = self.reverse_mode()
        self.mark_overflow(
            "autograd's float64 reference",
            [(f"∂E/∂θ^{index}", d.value) for index, d in enumerate(d_thetas, 1)]
            + [(f"∂E/∂z^{index}", d.value) for index, d in enumerate(d_zs)],
        )
        seconds = (time.perf_counter() - start) / (2 * self.depth + 1)
        self.add(
            self.loss_comparisons,
            compare(
                "autograd",
                "outputs",
                "reverse mode (the loss rule)",
                hand.deltas[-1].value,
                d_zs[-1].value,
                hand.deltas[-1].error + d_zs[-1].error,
                seconds,
                ("row", "output"),
            ),
        )
        for index, (layer, _) in enumerate(self.stack.rows):
            # The layer alone: autograd's δ^ℓ, rounded to the dtype as the hand-written
            # code would hold it, into this layer's own rules.
            above = d_zs[index + 1]
            reference_delta = Tracked(above.value, above.error).astype(self.stack.z.dtype)
            unit_jacobian = hand.unit_jacobians[index]
            input_jacobian = hand.input_jacobians[index]
            own_inputs = with_cross_term(
                compact.input_gradient(reference_delta, input_jacobian),
                FORMULA_1,
                reference_delta,
                input_jacobian,
            )
            pairs = [
                (self.chain, "inputs", "reverse mode", hand.deltas[index], d_zs[index]),
                (self.own, "inputs", "reverse mode, from autograd's δ", own_inputs, d_zs[index]),
            ]
            if not layer.coupled:  # A = δ ⊙ B is not a coupled layer's gradient
                own_gradient = with_cross_term(
                    compaction(layer)(reference_delta, unit_jacobian),
                    COMPACTION,
                    reference_delta,
                    unit_jacobian,
                )
                pairs += [
                    (self.chain, "parameters", "reverse mode", hand.gradients[index],
                     d_thetas[index]),
                    (self.own, "parameters", "reverse mode, from autograd's δ", own_gradient,
                     d_thetas[index]),
                ]  # fmt: skip
            for where, target, method, value, reference in pairs:
                self.add(
                    where[index],
                    compare(
                        "autograd",
                        target,
                        method,
                        value.value,
                        reference.value,
                        value.error + reference.error,
                        seconds,
                    ),
                )

    def differences(self, hand: HandWritten, rounding: Tracked, options: NetworkOptions) -> None:
        """Every A^ℓ (of a unit-partitioned layer) and δ⁰ against central differences of
        the whole E in float64. A network whose hand-written values miss the first look's
        bound |g - r| <= e_g + e_r is differenced again with the forward's running bound
        charged at the stencil points (the second look of `gradcheck.core.differences`)
        before the miss counts; entry by entry ("full", "columns") the estimate is also
        checked against ±4h (`converged`), along probes it is not
        (`oracles.probe_differences`, as on the catalogue's single-layer path)."""
        # E = Σ_n e_n, summed in float64 by the differences: its rounding by Tracked's rule.
        total_rounding = np.asarray(np.sum(rounding, axis=-1).error)
        for index, (layer, _) in enumerate(self.stack.rows):
            if layer.coupled:
                continue
            start = time.perf_counter()
            layout = options.finite_differences
            if layout == "auto":
                size = self.thetas64[index][0].size
                layout = "full" if size <= FULL_DIFFERENCES_BUDGET else "probes"
            reference, directions = self.parameter_differences(
                index, total_rounding, layout, options.probes
            )
            gradient = hand.gradients[index]
            if directions is None:
                value, hand_bound, names = gradient.value, gradient.error, None
            else:  # compare the projections ⟨A^ℓ, w_q⟩ on the probe directions
                value, hand_bound = projections(
                    directions, gradient.value, gradient.error, self.thetas64[index], cases=1
                )
                names = ("probe",)
            # Overflow is the first look's to say (a second look leaves `diverging` unresolved)
            self.mark_overflow(_DIFFERENCES, [(f"∂E/∂θ^{index + 1}", reference.value)])
            reference, _ = second_look(
                reference, value, hand_bound, self.parameter_second_look(
                    index, total_rounding, layout, options.probes, directions
                ),
            )  # fmt: skip
            self.add(
                self.chain[index],
                compare(
                    "finite-differences",
                    "parameters",
                    reference.method,
                    value,
                    reference.value,
                    hand_bound + reference.error,
                    time.perf_counter() - start,
                    names,
                ),
            )
        start = time.perf_counter()
        errors = np.asarray(rounding.error)
        reference = self.input_differences(errors)
        self.mark_overflow(_DIFFERENCES, [("∂E/∂z^0", reference.value)])
        reference, _ = second_look(
            reference, hand.deltas[0].value, hand.deltas[0].error,
            lambda cases: self.input_differences(errors, cases=cases, tracked=True),
        )  # fmt: skip
        self.add(
            self.chain[0],
            compare(
                "finite-differences",
                "inputs",
                reference.method,
                hand.deltas[0].value,
                reference.value,
                hand.deltas[0].error + reference.error,
                time.perf_counter() - start,
            ),
        )

    def arguments(self, cases: np.ndarray | None, tracked: bool) -> tuple[Any, list[Any], Any]:
        """z⁰, every θ^ℓ and the targets of the networks `cases` (default: all), Tracked
        from exact inputs on a second look (tracked=True)."""
        chosen = slice(None) if cases is None else cases
        z, thetas = self.z64[chosen], [theta[chosen] for theta in self.thetas64]
        targets = self.targets64[chosen]
        if not tracked:
            return z, thetas, targets
        return track(z), [track(theta) for theta in thetas], track(targets)

    def parameter_second_look(
        self,
        index: int,
        rounding: np.ndarray,
        layout: str,
        probes: int,
        directions: np.ndarray | None,
    ) -> Callable[[np.ndarray], oracles.Reference]:
        """The second look at ∂E/∂θ^ℓ for the networks a first look's miss names
        (`gradcheck.core.differences.second_look`); along probes, the first look's
        directions of those networks (the hand-written side was projected on them)."""

        def redo(cases: np.ndarray) -> oracles.Reference:
            chosen = None if directions is None else directions[:, cases]
            return self.parameter_differences(
                index, rounding, layout, probes, cases=cases, tracked=True, directions=chosen
            )[0]

        return redo

    def parameter_differences(
        self,
        index: int,
        rounding: np.ndarray,
        layout: str,
        probes: int,
        *,
        cases: np.ndarray | None = None,
        tracked: bool = False,
        directions: np.ndarray | None = None,
    ) -> tuple[oracles.Reference, np.ndarray | None]:
        """∂E/∂θ^ℓ of the whole E by central differences, each entry alone ("full"), or
        along random signed probes (drawn, or the given directions; also returned), for the networks
        `cases` (default: all).

        z^(ℓ-1) is computed once and shared by every perturbed copy. On the first look,
        rounding bounds |E_computed - E| at the evaluated points and covers the rounding
        of z^(ℓ-1) with the rest of the forward. On the second look (tracked=True)
        z^(ℓ-1) is computed on Tracked arrays from exact inputs, so its running bound
        flows through the layers above into the bound of E at each stencil point, where
        `gradcheck.core.differences.stencil_differences` charges it.
        """
        stack = self.stack
        z, thetas, targets = self.arguments(cases, tracked)
        # Events at the stencil points are not news: the reference forward marked every
        # kink within 2h; one between 2h and 4h (second look) moves R(2h) away from R(h),
        # which the convergence charge adds to the bound, so it cannot raise an alarm.
        with tolerance.recording():
            below = stack.forward_from(0, z, thetas, stop=index)  # z^(ℓ-1)

        def energy(variants: Any) -> Any:
            moved = thetas[:index] + [variants] + thetas[index + 1 :]
            with tolerance.recording():
                return np.sum(stack.energy_from(index, below, moved, targets), axis=-1)

        chosen = slice(None) if cases is None else cases
        theta, rounding = self.thetas64[index][chosen], rounding[chosen]
        if layout == "probes":
            # The probe oracle differentiates ⟨δ, f⟩; with f = E (one output) and δ = 1
            # that is the directional derivative of E. Its own z is not read (below is
            # closed over); a second look passes the first look's directions.
            return oracles.probe_differences(
                lambda _, variants: energy(variants)[..., None, None],
                np.asarray(getattr(below, "value", below)),
                theta,
                np.ones((len(theta), 1, 1)),
                rounding[:, None, None],
                probes=probes,
                tracked=tracked,
                directions=directions,
            )
        size = theta[0].size
        reference = oracles.central_differences(
            theta,
            np.eye(size, dtype=bool).reshape((size,) + theta.shape[1:]),
            lambda variants: energy(variants)[..., None, None],
            rounding[:, None, None],
            outputs_per_variant=self.evaluation_size(index),
            method="full",
            tracked=tracked,
        )
        return reference, None

    def input_differences(
        self, rounding: np.ndarray, *, cases: np.ndarray | None = None, tracked: bool = False
    ) -> oracles.Reference:
        """∂E/∂z⁰ by central differences, input i of every example at once: examples stay
        independent through every layer, so example n's loss reads its own column. For the
        networks `cases` (default: all); tracked=True is the second look (the forward's
        running bound at each stencil point charged in place of rounding)."""
        stack = self.stack
        _, thetas, targets = self.arguments(cases, tracked)
        chosen = slice(None) if cases is None else cases
        columns = np.eye(stack.widths[0], dtype=bool)[:, None, :].repeat(stack.batch, axis=1)

        def energy(variants: Any) -> Any:
            with tolerance.recording():
                return stack.energy_from(0, variants, thetas, targets)[..., None]

        return oracles.central_differences(
            self.z64[chosen],
            columns,
            energy,
            rounding[chosen][..., None],
            outputs_per_variant=self.evaluation_size(0),
            method="columns",
            tracked=tracked,
        )

    def evaluation_size(self, start: int) -> int:
        """About how many values one forward from layer start+1 up holds, for chunking."""
        sizes = [self.stack.batch * theta[0].size for theta in self.thetas64[start:]]
        return self.count * max(sizes)

    # -- verdicts --------------------------------------------------------------------------------

    def result(self, k: int, invalid: str | None = None) -> NetworkResult:
        seconds = {stage: elapsed / self.count for stage, elapsed in self.clock.seconds.items()}
        seconds["total"] = sum(seconds.values())
        layers = [
            layer_result(self.stack, index, self.chain[index][k], self.own[index][k])
            for index in range(self.depth)
        ]
        return network_result(
            self.stack, seconds, invalid or self.invalid[k], self.non_differentiable[k],
            tuple(self.loss_comparisons[k]), layers,
        )  # fmt: skip


def _named(hand: HandWritten) -> list[tuple[str, np.ndarray]]:
    """The hand-written pass's arrays in the order the recursion computes them (so that the
    first non-finite one is where an overflow starts), named in the seed's notation."""
    depth = len(hand.gradients)
    named = [(f"δ^{depth}", hand.deltas[depth].value)]
    for index in range(depth, 0, -1):
        named += [
            (f"B^{index}", hand.unit_jacobians[index - 1].value),
            (f"∂f^{index}/∂z", hand.input_jacobians[index - 1].value),
            (f"A^{index}", hand.gradients[index - 1].value),
            (f"δ^{index - 1}", hand.deltas[index - 1].value),
        ]
    return named
