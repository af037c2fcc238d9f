"""One network in, one NetworkResult out: the recursion checked at every layer.

`check_network` runs the hand-written recursion (`gradcheck.catalogue.network`) in the network's
dtype on `Tracked` arrays, so that every A^ℓ and δ^ℓ carries a running bound on its
rounding that composes through the layers as the arithmetic does (a deep network's δ
went through more roundings and gets a wider bound; there is no depth factor), and
holds it against

- autograd: one reverse pass through the whole network's E in float64 gives ∂E/∂θ^ℓ for
  every layer and ∂E/∂z^ℓ for every intermediate (each z^ℓ passes through a zero "tap"
  whose gradient is ∂E/∂z^ℓ), each with the running bound of autograd's own evaluation;
- finite differences of the whole E: each entry of θ^ℓ alone (column compression is not
  valid across a network: the layers above mix units), random signed probes for large
  θ^ℓ, and input columns for z⁰ (examples stay independent through every layer);
- dense: A^ℓ against the block-diagonal product of the same δ^ℓ and B^ℓ.

Blame: each layer is also checked alone, with autograd's δ^ℓ in place of the propagated
one: compaction(δ^ℓ_ref, B^ℓ) against ∂E/∂θ^ℓ and δ^ℓ_ref · ∂f^ℓ/∂z against
∂E/∂z^(ℓ-1), each bounded by the hand-written rounding plus the reference's. A wrong
input Jacobian at layer ℓ then fails there, while the layers below, which only inherit
the wrong δ, pass their own checks; the first wrong layer from the output is reported,
with what is wrong there (its B, its compaction, its input Jacobian, or the loss rule).

Verdicts, in order: invalid-input, non-differentiable (a kink, tie or singularity within
the reach of the finite-difference steps, carried up through the layers, or within the
rounding of the hand-written pass), mismatch, coupled (a coupled layer type: its A is not
checked, formula 1 is), pass.

This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive

from gradcheck.catalogue.network import (
    COMPACTION,
    FORMULA_1,
    HandWritten,
    InvalidNetworkError,
    Network,
    StackedNetworks,
    compaction,
    with_cross_term,
)
from gradcheck.core import compact, oracles, tolerance
from gradcheck.core.comparison import compare
from gradcheck.core.results import ORACLES, Comparison, Verdict
from gradcheck.core.tolerance import Tracked, track
from gradcheck.errors import GradcheckError, UnknownNameError

#: θ^ℓ with at most this many entries get full finite differences (each entry alone);
#: larger ones get random signed probes.
FULL_DIFFERENCES_BUDGET = 64


@dataclass(frozen=True)
class LayerResult:
    """The checks of layer ℓ (1-based, from the input) of a network.

    comparisons hold the hand-written recursion: A^ℓ, formed from the propagated δ^ℓ,
    against each oracle, and δ^(ℓ-1) against autograd (and finite differences for ℓ = 1).
    own holds the layer checked alone, from autograd's δ^ℓ: its compaction of its B
    (target "parameters") and its input Jacobian (target "inputs"). wrong names what
    this layer gets wrong: "input Jacobian", "unit Jacobian B", "compaction" (A is not
    δ ⊙ B of its own B: the dense product disagrees). status is "pass", "wrong",
    "inherits a wrong δ" (only comparisons fed by the propagated δ fail) or "coupled"
    (a coupled layer type: A = δ ⊙ B is not its gradient; formula 1 is checked).
    """

    index: int
    layer_type: str
    activation: str
    inputs: int
    units: int
    parameters_per_unit: int
    comparisons: tuple[Comparison, ...]
    own: tuple[Comparison, ...]
    wrong: tuple[str, ...]
    status: str

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons + self.own)


@dataclass(frozen=True)
class NetworkResult:
    """The outcome of one network check.

    loss_comparisons hold δ^L from the loss rule against autograd's ∂E/∂z^L; layers one
    LayerResult per layer, ℓ = 1 (next to the input) first. blamed_layer is the first
    wrong layer from the output (None when nothing, or only the loss rule, is wrong);
    blamed_part what is wrong there: "loss rule", "input Jacobian", "unit Jacobian B",
    "compaction", or "δ recursion" when only propagated values disagree.
    """

    verdict: Verdict
    message: str
    loss: str
    dtype: str
    batch: int
    widths: tuple[int, ...]
    loss_comparisons: tuple[Comparison, ...] = ()
    layers: tuple[LayerResult, ...] = ()
    blamed_layer: int | None = None
    blamed_part: str | None = None
    seconds: Mapping[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def comparisons(self) -> tuple[Comparison, ...]:
        """Every comparison: the loss rule's, then each layer's recursion and own checks."""
        every = list(self.loss_comparisons)
        for layer in self.layers:
            every += list(layer.comparisons) + list(layer.own)
        return tuple(every)

    def failures(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if not c.passed)


# ---- entry points ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    oracles: tuple[str, ...]
    finite_differences: str
    probes: int


def _options(oracles: Sequence[str], finite_differences: str, probes: int) -> _Options:
    for name in oracles:
        if name not in ORACLES:
            raise UnknownNameError("oracle", name, list(ORACLES))
    if finite_differences == "columns":
        raise GradcheckError(
            "finite_differences='columns' is not valid for a network: the layers above θ^ℓ "
            "mix its units, so moving one parameter of every unit at once cannot be told "
            "apart; use 'auto', 'full' or 'probes'"
        )
    if finite_differences not in ("auto", "full", "probes"):
        raise GradcheckError(
            f"finite_differences must be 'auto', 'full' or 'probes', got {finite_differences!r}"
        )
    if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
        raise GradcheckError(f"probes must be a positive integer, got {probes!r}")
    return _Options(tuple(oracles), finite_differences, probes)


def check_network(
    network: Network,
    *,
    oracles: Sequence[str] = ORACLES,
    finite_differences: str = "auto",
    probes: int = 16,
) -> NetworkResult:
    """Check a network's hand-written backprop at every layer against the oracles.

    oracles: any of "dense", "autograd", "finite-differences" (autograd also supplies the
    reference δ^ℓ with which each layer is checked alone, and so the blame).
    finite_differences: "auto" (each entry of θ^ℓ alone up to FULL_DIFFERENCES_BUDGET
    entries, random signed probes above), "full" or "probes"; probes: directions per layer.
    Unknown names raise UnknownNameError; a malformed network comes back as an
    invalid-input verdict whose message says what is wrong.
    """
    return check_networks(
        [network], oracles=oracles, finite_differences=finite_differences, probes=probes
    )[0]


def check_networks(
    networks: Sequence[Network],
    *,
    oracles: Sequence[str] = ORACLES,
    finite_differences: str = "auto",
    probes: int = 16,
) -> list[NetworkResult]:
    """`check_network` on each network, in order; networks of one architecture (layer
    types, activations, loss, dtype and shapes) are stacked and checked in one pass."""
    options = _options(oracles, finite_differences, probes)
    results: list[NetworkResult | None] = [None] * len(networks)
    groups: dict[tuple[Any, ...], list[tuple[int, StackedNetworks]]] = {}
    for index, network in enumerate(networks):
        try:
            single = StackedNetworks.of(network)
        except InvalidNetworkError as problem:
            results[index] = _invalid(network, str(problem))
            continue
        groups.setdefault(single.architecture, []).append((index, single))
    for members in groups.values():
        check = _Check(StackedNetworks.stacked([single for _, single in members]))
        for (index, _), result in zip(members, check.run(options), strict=True):
            results[index] = result
    return [result for result in results if result is not None]


def _invalid(network: Network, problem: str) -> NetworkResult:
    try:
        z = np.asarray(network.z)
    except Exception:  # the message already says what is wrong with it
        z = np.zeros((0, 0))
    loss = getattr(network.loss, "name", str(network.loss))
    batch = int(z.shape[0]) if z.ndim == 2 else 0
    return NetworkResult(
        Verdict.INVALID_INPUT, f"invalid input: {problem}", loss, str(z.dtype), batch, ()
    )


# ---- the check ---------------------------------------------------------------------------


@primitive
def _tap(z: Any, zero: Any) -> Any:
    """z itself: autograd's gradient with respect to `zero` (always 0) is then ∂E/∂z,
    without any arithmetic that the error model would have to charge."""
    return z


defvjp(_tap, lambda ans, z, zero: lambda g: g, lambda ans, z, zero: lambda g: g)

_DIFFERENCES = "the finite differences of the float64 forward"
_PARTS = {"parameters": "unit Jacobian B", "inputs": "input Jacobian"}
_SYMBOLS = {"parameters": "∂E/∂θ", "inputs": "∂E/∂z (formula 1)", "outputs": "∂E/∂z^L"}


class _Check:
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
        self.seconds: dict[str, float] = {}

    def run(self, options: _Options) -> list[NetworkResult]:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # Networks whose forward overflows are reported invalid; numpy need not warn.
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                rounding = self.timed("forward", self.reference_forward)
                with tolerance.recording() as events:
                    hand = self.timed("hand-written", self.stack.hand_written)
            except InvalidNetworkError as problem:
                return [self.result(k, invalid=str(problem)) for k in range(self.count)]
            dtype = self.stack.z.dtype.name
            self.mark_events(events, f"the hand-written rules in {dtype}")
            self.mark_overflow(f"the hand-written rules in {dtype}", _named(hand))
            if "dense" in options.oracles:
                self.timed("dense", lambda: self.dense(hand))
            if "autograd" in options.oracles:
                self.timed("autograd", lambda: self.autograd(hand))
            if "finite-differences" in options.oracles:
                self.timed("finite-differences", lambda: self.differences(hand, rounding, options))
        return [self.result(k) for k in range(self.count)]

    def timed(self, stage: str, function: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return function()
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start

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

    def differences(self, hand: HandWritten, rounding: Tracked, options: _Options) -> None:
        """Every A^ℓ (of a unit-partitioned layer) and δ⁰ against central differences of
        the whole E in float64."""
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
            self.mark_overflow(_DIFFERENCES, [(f"∂E/∂θ^{index + 1}", reference.value)])
            gradient = hand.gradients[index]
            if directions is None:
                value, bound, names = gradient.value, gradient.error + reference.error, None
            else:  # compare the projections ⟨A^ℓ, w_q⟩ on the probe directions
                value = np.einsum("kqjp,kjp->kq", directions, gradient.value.astype(np.float64))
                bound = np.einsum("kqjp,kjp->kq", np.abs(directions), gradient.error)
                bound, names = bound + reference.error, ("probe",)
            self.add(
                self.chain[index],
                compare(
                    "finite-differences",
                    "parameters",
                    reference.method,
                    value,
                    reference.value,
                    bound,
                    time.perf_counter() - start,
                    names,
                ),
            )
        start = time.perf_counter()
        reference = self.input_differences(np.asarray(rounding.error))
        self.mark_overflow(_DIFFERENCES, [("∂E/∂z^0", reference.value)])
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

    def parameter_differences(
        self, index: int, rounding: np.ndarray, layout: str, probes: int
    ) -> tuple[oracles.Reference, np.ndarray | None]:
        """∂E/∂θ^ℓ of the whole E by central differences, each entry alone ("full"), or
        along random signed probes (then also returns the directions).

        rounding bounds |E_computed - E| at the evaluated points; it covers the rounding
        of z^(ℓ-1), computed once and shared by every perturbed copy.
        """
        stack = self.stack
        below = stack.forward_from(0, self.z64, self.thetas64, stop=index)  # z^(ℓ-1)

        def energy(variants: np.ndarray) -> np.ndarray:
            thetas = self.thetas64[:index] + [variants] + self.thetas64[index + 1 :]
            return np.sum(stack.energy_from(index, below, thetas, self.targets64), axis=-1)

        theta = self.thetas64[index]
        if layout == "probes":
            # The probe oracle differentiates ⟨δ, f⟩; with f = E (one output) and δ = 1
            # that is the directional derivative of E.
            return oracles.probe_differences(
                lambda _, variants: energy(variants)[..., None, None],
                below,
                theta,
                np.ones((self.count, 1, 1)),
                rounding[:, None, None],
                probes=probes,
            )
        size = theta[0].size
        reference = oracles.central_differences(
            theta,
            np.eye(size, dtype=bool).reshape((size,) + theta.shape[1:]),
            lambda variants: energy(variants)[..., None, None],
            rounding[:, None, None],
            outputs_per_variant=self.evaluation_size(index),
            method="full",
        )
        return reference, None

    def input_differences(self, rounding: np.ndarray) -> oracles.Reference:
        """∂E/∂z⁰ by central differences, input i of every example at once: examples stay
        independent through every layer, so example n's loss reads its own column."""
        stack = self.stack
        columns = np.eye(stack.widths[0], dtype=bool)[:, None, :].repeat(stack.batch, axis=1)
        return oracles.central_differences(
            self.z64,
            columns,
            lambda variants: stack.energy_from(0, variants, self.thetas64, self.targets64)[
                ..., None
            ],
            rounding[..., None],
            outputs_per_variant=self.evaluation_size(0),
            method="columns",
        )

    def evaluation_size(self, start: int) -> int:
        """About how many values one forward from layer start+1 up holds, for chunking."""
        sizes = [self.stack.batch * theta[0].size for theta in self.thetas64[start:]]
        return self.count * max(sizes)

    # -- verdicts --------------------------------------------------------------------------------

    def result(self, k: int, invalid: str | None = None) -> NetworkResult:
        stack = self.stack
        seconds = {stage: elapsed / self.count for stage, elapsed in self.seconds.items()}
        seconds["total"] = sum(seconds.values())
        common: dict[str, Any] = {
            "loss": stack.loss.name,
            "dtype": stack.z.dtype.name,
            "batch": stack.batch,
            "widths": stack.widths,
            "seconds": seconds,
        }
        invalid = invalid or self.invalid[k]
        if invalid is not None:
            return NetworkResult(Verdict.INVALID_INPUT, f"invalid input: {invalid}", **common)
        if self.non_differentiable[k] is not None:
            message = str(self.non_differentiable[k])
            return NetworkResult(Verdict.NON_DIFFERENTIABLE, message, **common)
        loss_comparisons = tuple(self.loss_comparisons[k])
        layers = [self.layer_result(index, k) for index in range(self.depth)]
        blamed_layer, blamed_part, culprit = _blame(loss_comparisons, layers)
        details: dict[str, Any] = {
            "loss_comparisons": loss_comparisons,
            "layers": tuple(layers),
            "blamed_layer": blamed_layer,
            "blamed_part": blamed_part,
        }
        if culprit is not None:
            message = self.mismatch_message(blamed_layer, str(blamed_part), culprit, layers)
            return NetworkResult(Verdict.MISMATCH, message, **common, **details)
        coupled = [index for index, (layer, _) in enumerate(stack.rows, 1) if layer.coupled]
        if coupled:
            message = (
                f"coupled: layer {coupled[0]} ({stack.rows[coupled[0] - 1][0].name}) breaks "
                "the block-diagonal precondition, so A = δ ⊙ B is not its parameter "
                "gradient; formula 1 holds at every layer"
            )
            return NetworkResult(Verdict.COUPLED, message, **common, **details)
        every = [c for layer in layers for c in layer.comparisons + layer.own]
        every += loss_comparisons
        detail = ""
        if every:
            closest = _worst(every)
            detail = f" (closest: {closest.oracle} at {closest.worst_ratio:.2g} of its bound)"
        message = f"pass: {len(every)} comparisons over {self.depth} layers agree{detail}"
        return NetworkResult(Verdict.PASS, message, **common, **details)

    def layer_result(self, index: int, k: int) -> LayerResult:
        layer, phi = self.stack.rows[index]
        chain, own = tuple(self.chain[index][k]), tuple(self.own[index][k])
        wrong = []
        for target in ("inputs", "parameters"):  # formula 1 first: it misleads the layers below
            if any(c.target == target and not c.passed for c in own):
                wrong.append(_PARTS[target])
        if any(c.oracle == "dense" and not c.passed for c in chain):
            # A is not δ ⊙ B of the layer's own B: the algebra is wrong, not (only) B.
            wrong = [part for part in wrong if part != _PARTS["parameters"]] + ["compaction"]
        if wrong:
            status = "wrong"
        elif not all(c.passed for c in chain + own):
            status = "inherits a wrong δ"
        else:
            status = "coupled" if layer.coupled else "pass"
        units, parameters = self.stack.thetas[index].shape[1:]
        return LayerResult(
            index + 1, layer.name, phi.label, self.stack.widths[index], units, parameters,
            chain, own, tuple(wrong), status,
        )  # fmt: skip

    def mismatch_message(
        self, blamed_layer: int | None, part: str, culprit: Comparison, layers: list[LayerResult]
    ) -> str:
        where = ", ".join(f"{name} {index}" for name, index in culprit.worst_entry.items())
        if blamed_layer is None:
            subject = f"the loss rule ∂E/∂z^{self.depth} of {self.stack.loss.name} is wrong"
        else:
            layer = layers[blamed_layer - 1]
            subject = (
                f"layer {blamed_layer} of {self.depth} ({layer.layer_type}, {layer.activation}) "
                f"is wrong: its {part}"
            )
        below = [layer.index for layer in layers if layer.status == "inherits a wrong δ"]
        inherited = f"; layers {below} only inherit the wrong δ" if below else ""
        return (
            f"mismatch: {subject}: {culprit.oracle} ({culprit.method}) disagrees on "
            f"{_SYMBOLS[culprit.target]} at {where}: hand-written {culprit.hand_written:.9g}, "
            f"reference {culprit.reference:.9g}, error {culprit.worst_error:.3g} exceeds the "
            f"bound {culprit.worst_bound:.3g} ({culprit.worst_ratio:.3g}x){inherited}"
        )


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


def _worst(comparisons: Sequence[Comparison]) -> Comparison:
    return max(comparisons, key=lambda c: c.worst_ratio)


def _blame(
    loss_comparisons: tuple[Comparison, ...], layers: list[LayerResult]
) -> tuple[int | None, str | None, Comparison | None]:
    """The first wrong thing from the output down: the loss rule, else the layer nearest
    the output whose own checks fail, else (only propagated values disagree, which a
    consistent error model does not produce) the highest layer with a failure."""
    failures = [c for c in loss_comparisons if not c.passed]
    if failures:
        return None, "loss rule", _worst(failures)
    for layer in reversed(layers):
        if layer.wrong:
            failing = [c for c in layer.own + layer.comparisons if not c.passed]
            return layer.index, layer.wrong[0], _worst(failing)
    for layer in reversed(layers):
        failing = [c for c in layer.comparisons + layer.own if not c.passed]
        if failing:
            return layer.index, "δ recursion", _worst(failing)
    return None, None, None
