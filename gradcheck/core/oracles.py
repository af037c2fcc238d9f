"""Independent references for ∂E/∂θ and ∂E/∂z, each with a bound on its own error.

E(θ, z) = ⟨δ, f(z; θ)⟩ = Σ_nj δ_nj f_nj is the quantity whose gradient backprop computes:
∂E/∂θ is formula 2 (A for a unit-partitioned layer), ∂E/∂z is formula 1. Every reference
is evaluated in float64 whatever the case's dtype:

- autograd: reverse mode through the forward, written in autograd.numpy;
- `unit_contributions`: autograd's view of the whole Jacobian, M[i, j] = Σ_n δ_ni ∂f_ni/∂θʲ,
  the part of ∂E/∂θʲ that flows through output unit i. Off-diagonal blocks (i ≠ j) are
  what the compact form A = δ ⊙ B ignores;
- central finite differences with Richardson extrapolation, in three layouts: "full"
  (each entry of θ or z perturbed alone, valid for any layer), "columns" (parameter p of
  every unit perturbed at once, which recovers every entry of B in 4P evaluations because
  the units are independent; for z, input i of every example at once), and "probes"
  (random signed directions, for layers too big for either).

The dense block-diagonal product lives in `gradcheck.core.compact`.
This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.core.tolerance import Tracked, gamma, track

FloatArray = np.ndarray
ForwardFn = Callable[[Any, Any], Any]

#: The step is cbrt(u)·max(1, |x|): it balances the O(h²) truncation of a central
#: difference against the O(u/h) rounding of the function values (u of float64).
STEP_SCALE = float(np.cbrt(np.finfo(np.float64).eps / 2.0))
#: Each forward call evaluates at most this many output values; more perturbations are
#: split into several calls.
EVALUATION_BUDGET = 1 << 22


def step_sizes(x: np.ndarray) -> FloatArray:
    """h = cbrt(u_float64) · max(1, |x|), one step per entry."""
    return STEP_SCALE * np.maximum(1.0, np.abs(x))


@dataclass(frozen=True)
class Reference:
    """A reference value with a bound on its own error, and how it was obtained."""

    value: FloatArray
    error: FloatArray
    method: str


# ---- autograd ------------------------------------------------------------------------------


@functools.cache
def _autograd_traces_tracked() -> None:
    """Let autograd trace through Tracked arrays, so that its own backward pass carries a
    running error bound: its vector-Jacobian rules are numpy code like any other (and
    some of them cancel: expm1's rule computes e^x as 1 + expm1(x))."""
    from autograd.extend import VSpace
    from autograd.numpy.numpy_boxes import ArrayBox
    from autograd.numpy.numpy_vspaces import ArrayVSpace

    class TrackedVSpace(ArrayVSpace):
        def __init__(self, value: Tracked) -> None:
            super().__init__(value.value)

        def zeros(self) -> Tracked:
            return Tracked(np.zeros(self.shape, self.dtype))

        def ones(self) -> Tracked:
            return Tracked(np.ones(self.shape, self.dtype))

    ArrayBox.register(Tracked)
    VSpace.register(Tracked, TrackedVSpace)


def reverse_mode(energy: Callable[[Any], Any], arguments: Any) -> Any:
    """autograd.grad(energy)(arguments) where the arguments may be Tracked arrays: the
    gradient then carries the running error bound of autograd's own evaluation."""
    import autograd

    _autograd_traces_tracked()
    with np.errstate(all="ignore"):
        return autograd.grad(energy)(arguments)


def autograd_gradients(
    forward: ForwardFn,
    z: np.ndarray,
    theta: np.ndarray,
    delta: np.ndarray,
    *,
    units: np.ndarray | None = None,
) -> tuple[Reference, Reference, Reference]:
    """∂E/∂θ, ∂E/∂z and the unit contributions, by reverse mode in float64, each with the
    running error bound of autograd's own evaluation.

    The unit contributions are M[..., s, j, p] = Σ_n δ_n,i ∂f_n,i/∂θ_jp for the output
    units i = units[s] (default: all): the part of ∂E/∂θʲ that flows through output i.
    One reverse pass computes them all: the forward runs on one copy of θ per chosen
    unit, and copy s passes on only the gradient of unit units[s]. M[..., s, units[s]]
    is a diagonal block; with every unit chosen, Σ_s M[..., s] is ∂E/∂θ and the pass
    needs nothing else. Leading axes of z, θ and δ are stacked cases.
    """
    import autograd.numpy as anp

    count = theta.shape[-2]
    chosen = np.arange(count) if units is None else np.asarray(units)
    weights = np.zeros((len(chosen),) + delta.shape)
    weights[np.arange(len(chosen)), ..., chosen] = np.moveaxis(delta[..., chosen], -1, 0)
    tracked_weights = track(weights)
    tracked_delta = track(delta)
    tracked_z = track(z)
    every_unit = len(chosen) == count

    def energy(arguments: tuple[Any, Any, Any]) -> Any:
        copies, parameters, inputs = arguments
        if every_unit:
            return anp.sum(tracked_weights * forward(inputs, copies))
        # With a sample of units, ∂E/∂z comes from the full term alone: the copies read a
        # constant z, or the sampled units' share of ∂E/∂z would be counted twice.
        through_units = anp.sum(tracked_weights * forward(tracked_z, copies))
        return through_units + anp.sum(tracked_delta * forward(inputs, parameters))

    copies = track(np.broadcast_to(theta, (len(chosen),) + theta.shape).copy())
    d_copies, d_theta, d_z = reverse_mode(energy, (copies, track(theta), track(z)))
    contributions = Reference(
        np.moveaxis(np.asarray(d_copies.value), 0, -3),
        np.moveaxis(np.asarray(d_copies.error), 0, -3),
        "reverse mode",
    )
    if every_unit:
        d_theta = np.sum(d_copies, axis=0)  # Σ_s M[s], with the rounding of the sum
    return (
        Reference(np.asarray(d_theta.value), np.asarray(d_theta.error), "reverse mode"),
        Reference(np.asarray(d_z.value), np.asarray(d_z.error), "reverse mode"),
        contributions,
    )


def elementwise_derivative(function: Callable[[Any], Any], x: np.ndarray) -> Reference:
    """φ'(x) of an elementwise function by reverse mode in float64, with its error bound."""
    import autograd.numpy as anp

    def total(inputs: Any) -> Any:
        return anp.sum(function(inputs))

    derivative = reverse_mode(total, track(np.asarray(x, dtype=np.float64)))
    return Reference(np.asarray(derivative.value), np.asarray(derivative.error), "reverse mode")


def off_diagonal_mass(contributions: FloatArray, units: np.ndarray | None = None) -> FloatArray:
    """Σ_(i≠j) |M_ij| / Σ |M| per case: the share of the gradient that crosses units.

    contributions is (..., S, J, P) from `autograd_gradients`; units says which output
    unit each of the S rows belongs to (default: all, in order).
    """
    count = contributions.shape[-3]
    chosen = np.arange(count) if units is None else np.asarray(units)
    magnitude = np.abs(contributions)
    total = magnitude.sum(axis=(-3, -2, -1))
    off_diagonal = magnitude.copy()
    off_diagonal[..., np.arange(count), chosen, :] = 0.0
    crossing = off_diagonal.sum(axis=(-3, -2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, crossing / np.where(total > 0, total, 1.0), 0.0)


# ---- finite differences ------------------------------------------------------------------


def _actual_steps(x: np.ndarray, h: np.ndarray) -> tuple[FloatArray, FloatArray]:
    """The steps really taken: fl(x + h) - x and x - fl(x - h), exact to a rounding."""
    return (x + h) - x, x - (x - h)


def richardson(
    d1: FloatArray, d2: FloatArray, rounding1: FloatArray, rounding2: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Extrapolate central differences at steps h and 2h: (4 D(h) - D(2h)) / 3.

    D(h) = f' + c h² + O(h⁴), so the extrapolated value is within O(h⁴) of f', and
    |D(h) - D(2h)| = 3 c h² + O(h⁴) bounds that with room to spare. Rounding adds
    (4 ρ(h) + ρ(2h)) / 3 with ρ the rounding of each difference quotient.
    """
    estimate = (4.0 * d1 - d2) / 3.0
    error = np.abs(d1 - d2) + (4.0 * rounding1 + rounding2) / 3.0
    error = error + gamma(3, np.float64) * (4.0 * np.abs(d1) + np.abs(d2)) / 3.0
    return estimate, error


def central_differences(
    x: np.ndarray,
    groups: np.ndarray,
    quantity: Callable[[np.ndarray], FloatArray],
    rounding: FloatArray,
    *,
    outputs_per_variant: int,
    method: str,
) -> Reference:
    """Derivatives of quantity() with respect to every entry of x, by central differences.

    x is (K, ...): K stacked cases, perturbed alike. groups (G, ...) are boolean masks over
    one case's entries saying which move together: one entry per group for "full", one
    column for "columns". quantity(variants) maps S perturbed copies (S, K, ...) to values
    that broadcast against them, entry e reading its own group's value (a scalar E, or a
    per-unit or per-example sum). rounding bounds the float64 rounding of those values.
    """
    shifts, steps = _four_shifts(x)
    values = np.zeros((4,) + x.shape)
    per_call = max(1, EVALUATION_BUDGET // max(4 * max(outputs_per_variant, x.size), 1))
    for start in range(0, len(groups), per_call):
        chunk = groups[start : start + per_call][:, None]  # (G, 1, ...): every case alike
        variants = x[None, None] + np.stack(shifts)[:, None] * chunk[None]  # (4, G, K, ...)
        result = quantity(variants.reshape((-1,) + x.shape))
        result = np.broadcast_to(result, (variants.shape[0] * variants.shape[1],) + x.shape)
        values += np.sum(result.reshape(variants.shape) * chunk[None], axis=1)
    plus1, minus1, plus2, minus2 = values
    rho = np.broadcast_to(rounding, x.shape)
    d1 = (plus1 - minus1) / steps[0]
    d2 = (plus2 - minus2) / steps[1]
    estimate, error = richardson(d1, d2, 2.0 * rho / steps[0], 2.0 * rho / steps[1])
    return Reference(estimate, error, f"finite differences ({method})")


def _four_shifts(x: np.ndarray) -> tuple[list[np.ndarray], list[FloatArray]]:
    """Shifts +h, -h, +2h, -2h and the total steps (h+ + h-) at h and 2h actually taken."""
    h = step_sizes(x)
    up1, down1 = _actual_steps(x, h)
    up2, down2 = _actual_steps(x, 2.0 * h)
    return [up1, -down1, up2, -down2], [up1 + down1, up2 + down2]


def _single_entries(shape: tuple[int, ...]) -> np.ndarray:
    size = int(np.prod(shape))
    return np.eye(size, dtype=bool).reshape((size,) + shape)


def _columns(shape: tuple[int, ...]) -> np.ndarray:
    rows, columns = shape
    return np.broadcast_to(np.eye(columns, dtype=bool)[:, None, :], (columns, rows, columns))


def energy_rounding(
    delta: np.ndarray, outputs: np.ndarray, forward_error: np.ndarray, axis: tuple[int, ...]
) -> FloatArray:
    """Rounding of Σ δ_nj f_nj over `axis`: Σ |δ| e_f + γ_K Σ |δ f| (K terms summed)."""
    terms = int(np.prod([delta.shape[a] for a in axis]))
    return np.sum(np.abs(delta) * forward_error, axis=axis) + gamma(terms, np.float64) * np.sum(
        np.abs(delta * outputs), axis=axis
    )


def _differences(
    forward: ForwardFn,
    z: np.ndarray,
    theta: np.ndarray,
    delta: np.ndarray,
    forward_error: np.ndarray,
    *,
    layout: str,
    wrt: str,
) -> Reference:
    """Central differences of E with respect to θ or z, "full" or "columns": for θ a column
    moves parameter p of every unit (units are independent), for z input i of every
    example (examples are independent); each entry reads its own unit's (example's) sum."""
    if layout not in ("full", "columns"):
        raise ValueError(f"unknown finite-difference layout {layout!r}")
    x = theta if wrt == "theta" else z

    def evaluate(variants: np.ndarray) -> FloatArray:
        return forward(z, variants) if wrt == "theta" else forward(variants, theta)

    outputs = forward(z, theta)
    kept: tuple[Any, ...]
    axes: tuple[int, ...]
    if layout == "full":
        groups = _single_entries(x.shape[1:])
        summed, kept, axes = "sk", (..., None, None), (1, 2)
        rounding = energy_rounding(delta, outputs, forward_error, axes)[:, None, None]
    else:
        groups = _columns(x.shape[1:])
        summed, kept, axes = (
            ("skj", (..., None), (1,)) if wrt == "theta" else ("skn", (..., None), (2,))
        )
        rounding = energy_rounding(delta, outputs, forward_error, axes)[:, :, None]
    return central_differences(
        x,
        groups,
        lambda variants: np.einsum(f"sknj,knj->{summed}", evaluate(variants), delta)[kept],
        rounding,
        outputs_per_variant=delta.size,
        method=layout,
    )


def parameter_differences(
    forward: ForwardFn,
    z: np.ndarray,
    theta: np.ndarray,
    delta: np.ndarray,
    forward_error: np.ndarray,
    *,
    layout: str,
) -> Reference:
    """∂E/∂θ (K × J × P) for K stacked cases by central differences, "full" or "columns".
    forward_error bounds the float64 rounding of each f_knj."""
    return _differences(forward, z, theta, delta, forward_error, layout=layout, wrt="theta")


def input_differences(
    forward: ForwardFn,
    z: np.ndarray,
    theta: np.ndarray,
    delta: np.ndarray,
    forward_error: np.ndarray,
    *,
    layout: str,
) -> Reference:
    """∂E/∂z (K × N × I) by central differences: "full", or "columns" (input i of every
    example at once, valid because the examples of a batch are independent)."""
    return _differences(forward, z, theta, delta, forward_error, layout=layout, wrt="z")


def probe_differences(
    forward: ForwardFn,
    z: np.ndarray,
    theta: np.ndarray,
    delta: np.ndarray,
    forward_error: np.ndarray,
    *,
    probes: int,
    seed: int = 0,
) -> tuple[Reference, FloatArray]:
    """Directional derivatives ⟨∂E/∂θ, w_k⟩ along `probes` random signed directions
    w_k = s_k ⊙ h, for K stacked cases.

    Returns the references (K × probes) and the directions (K × probes × J × P): a
    hand-written gradient g is compared through ⟨g, w_k⟩. Costs 4 forward passes per
    probe whatever the size of θ. The steps are the nominal ±w, ±2w: rounding them
    changes a directional derivative by a relative u, far below the truncation error.
    """
    rng = np.random.default_rng(seed)
    directions = rng.choice([-1.0, 1.0], size=(probes,) + theta.shape) * step_sizes(theta)
    rounding = energy_rounding(delta, forward(z, theta), forward_error, (1, 2))  # (K,)
    values = np.empty((4, probes, theta.shape[0]))
    for k, w in enumerate(directions):
        variants = np.stack([theta + w, theta - w, theta + 2.0 * w, theta - 2.0 * w])
        values[:, k] = np.einsum("sknj,knj->sk", forward(z, variants), delta)
    plus1, minus1, plus2, minus2 = values
    d1 = (plus1 - minus1) / 2.0
    d2 = (plus2 - minus2) / 4.0
    rho = np.broadcast_to(rounding, d1.shape)
    estimate, error = richardson(d1, d2, rho, rho / 2.0)
    reference = Reference(estimate.T, error.T, f"finite differences ({probes} probes)")
    return reference, np.moveaxis(directions, 0, 1)


def one_sided_differences(
    forward: ForwardFn,
    z: np.ndarray,
    theta: np.ndarray,
    forward_error: np.ndarray,
    *,
    wrt: str,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Where f has a kink: the one-sided difference quotients of each output f_nj.

    For every entry of θ (wrt="theta", result (K, N, J, P)) or of z (wrt="z", result
    (K, N, J, I)) returns the interval [low, high] spanned by the forward and backward
    differences at h and 2h, and a slack: twice how much the differences move between h
    and 2h, plus the rounding of the function values.
    A derivative at a kink (any subgradient) lies in [low - slack, high + slack].
    Columns are perturbed together, which is exact when units (for θ) and examples
    (for z) are independent.
    """
    x = theta if wrt == "theta" else z
    h = step_sizes(x)
    base = forward(z, theta)  # (K, N, J)
    columns = np.eye(x.shape[-1], dtype=bool)  # (C, C): which column each variant moves
    quotients = []
    for scale in (1.0, -1.0, 2.0, -2.0):
        shifted = (x + scale * h) - x  # the steps actually taken
        variants = x[None] + shifted[None] * columns[:, None, None, :]  # (C, K, ..., C)
        if wrt == "theta":
            outputs = forward(z, variants)  # (C, K, N, J)
            steps = np.moveaxis(shifted, -1, 0)[:, :, None, :]  # unit j's step in column c
        else:
            outputs = forward(variants, theta)
            steps = np.moveaxis(shifted, -1, 0)[:, :, :, None]  # example n's step in column c
        quotients.append(np.moveaxis((outputs - base) / steps, 0, -1))  # (K, N, J, C)
    forward1, backward1, forward2, backward2 = quotients
    # The kink need not sit exactly at the point: at a distance d < h (rounding put the
    # working-precision evaluation on its other side) a one-sided quotient mixes both
    # slopes, D(h) = s_near + (s_far - s_near) d / h, and D(h) - D(2h) is half of that
    # mixing. On smooth stretches D(h) - D(2h) is the O(h) truncation of D(h) and half
    # that of D(2h). Twice the larger change therefore reaches both slopes, whichever of
    # the four quotients is nearest; the rounding adds 2 e_f / h per quotient.
    stacked = np.stack(quotients)
    low, high = stacked.min(axis=0), stacked.max(axis=0)
    steps = h[..., None, :, :] if wrt == "theta" else h[..., :, None, :]
    rounding = 6.0 * forward_error[..., None] / steps
    change = np.maximum(np.abs(forward1 - forward2), np.abs(backward1 - backward2))
    return low, high, 2.0 * change + rounding


def example_jacobians(
    forward: ForwardFn, z: np.ndarray, theta: np.ndarray
) -> tuple[Reference, Reference]:
    """One case's per-example Jacobians by reverse mode: B (N × J × P), row (n, j) the
    diagonal block ∂f_nj/∂θʲ, and ∂f/∂z (N × J × I), row (n, j) = ∂f_nj/∂z_n.

    One pass over N·J copies of θ and z: copy (n, j) passes on only output f_nj, so its
    gradients are that output's Jacobian rows. Meant for explaining a failure, where one
    small case is looked at closely, not for the bulk of a campaign.
    """
    import autograd.numpy as anp

    batch, units = z.shape[0], theta.shape[0]
    copies = batch * units
    weights = np.zeros((copies, batch, units))
    rows, columns = np.divmod(np.arange(copies), units)
    weights[np.arange(copies), rows, columns] = 1.0
    tracked_weights = track(weights)

    def energy(arguments: tuple[Any, Any]) -> Any:
        parameters, inputs = arguments
        return anp.sum(tracked_weights * forward(inputs, parameters))

    theta_copies = track(np.broadcast_to(theta, (copies,) + theta.shape).copy())
    z_copies = track(np.broadcast_to(z, (copies,) + z.shape).copy())
    d_theta, d_z = reverse_mode(energy, (theta_copies, z_copies))
    pick = np.arange(copies)
    unit_jacobian = Reference(
        np.asarray(d_theta.value)[pick, columns].reshape(batch, units, -1),
        np.asarray(d_theta.error)[pick, columns].reshape(batch, units, -1),
        "reverse mode",
    )
    input_jacobian = Reference(
        np.asarray(d_z.value)[pick, rows].reshape(batch, units, -1),
        np.asarray(d_z.error)[pick, rows].reshape(batch, units, -1),
        "reverse mode",
    )
    return unit_jacobian, input_jacobian

