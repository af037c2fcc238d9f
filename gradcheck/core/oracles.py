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
from typing import Any

import numpy as np

from gradcheck.core.differences import (
    EVALUATION_BUDGET,
    STEP_SCALE,
    Reference,
    central_differences,
    extrapolate,
    richardson,
    stencil_differences,
    step_sizes,
)
from gradcheck.core.probes import probe_sums, shifted, signed_steps
from gradcheck.core.tolerance import Tracked, gamma, track

__all__ = [
    "EVALUATION_BUDGET",
    "STEP_SCALE",
    "Reference",
    "autograd_gradients",
    "central_differences",
    "elementwise_derivative",
    "energy_rounding",
    "example_jacobians",
    "input_differences",
    "off_diagonal_mass",
    "one_sided_differences",
    "parameter_differences",
    "probe_differences",
    "reverse_mode",
    "richardson",
    "step_sizes",
]

FloatArray = np.ndarray
ForwardFn = Callable[[Any, Any], Any]


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
# The stencil, the extrapolation and its error bound live in `gradcheck.core.differences`;
# here are the catalogue's layouts of it.


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
    tracked: bool,
) -> Reference:
    """Central differences of E with respect to θ or z, "full" or "columns": for θ a column
    moves parameter p of every unit (units are independent), for z input i of every
    example (examples are independent); each entry reads its own unit's (example's) sum,
    output by output (see `gradcheck.core.differences`)."""
    if layout not in ("full", "columns"):
        raise ValueError(f"unknown finite-difference layout {layout!r}")
    x = theta if wrt == "theta" else z
    batch, units = delta.shape[-2:]
    reduce: Callable[[np.ndarray], np.ndarray]
    if layout == "full":
        groups = _single_entries(x.shape[1:])
        terms = batch * units

        def reduce(values: np.ndarray) -> np.ndarray:
            return np.sum(values, axis=(-2, -1))[..., None, None]

    elif wrt == "theta":  # column p: unit j's entry reads Σ_n δ_nj f_nj
        groups, terms = _columns(x.shape[1:]), batch

        def reduce(values: np.ndarray) -> np.ndarray:
            return np.sum(values, axis=-2)[..., None]

    else:  # column i: example n's entry reads Σ_j δ_nj f_nj
        groups, terms = _columns(x.shape[1:]), units

        def reduce(values: np.ndarray) -> np.ndarray:
            return np.sum(values, axis=-1)[..., None]

    inputs, parameters = (track(z), track(theta)) if tracked else (z, theta)

    def evaluate(variants: Any) -> Any:
        return forward(inputs, variants) if wrt == "theta" else forward(variants, parameters)

    return stencil_differences(
        x,
        groups,
        evaluate,
        delta,
        reduce,
        forward_error,
        terms=terms,
        outputs_per_variant=delta.size,
        method=layout,
        tracked=tracked,
    )


def parameter_differences(
    forward: ForwardFn,
    z: np.ndarray,
    theta: np.ndarray,
    delta: np.ndarray,
    forward_error: np.ndarray,
    *,
    layout: str,
    tracked: bool = False,
) -> Reference:
    """∂E/∂θ (K × J × P) for K stacked cases by central differences, "full" or "columns".
    forward_error bounds the float64 rounding of each f_knj at (z, θ); tracked=True charges
    the forward's running bound at each stencil point instead (the second look)."""
    return _differences(
        forward, z, theta, delta, forward_error, layout=layout, wrt="theta", tracked=tracked
    )


def input_differences(
    forward: ForwardFn,
    z: np.ndarray,
    theta: np.ndarray,
    delta: np.ndarray,
    forward_error: np.ndarray,
    *,
    layout: str,
    tracked: bool = False,
) -> Reference:
    """∂E/∂z (K × N × I) by central differences: "full", or "columns" (input i of every
    example at once, valid because the examples of a batch are independent)."""
    return _differences(
        forward, z, theta, delta, forward_error, layout=layout, wrt="z", tracked=tracked
    )


def probe_differences(
    forward: ForwardFn,
    z: np.ndarray,
    theta: np.ndarray,
    delta: np.ndarray,
    forward_error: np.ndarray,
    *,
    probes: int,
    seed: int = 0,
    tracked: bool = False,
    directions: np.ndarray | None = None,
) -> tuple[Reference, FloatArray]:
    """Directional derivatives ⟨∂E/∂θ, w_k⟩ along `probes` random signed directions
    w_k = s_k ⊙ h, for K stacked cases (`gradcheck.core.probes`).

    Returns the references (K × probes) and the directions (probes × K × J × P): a
    hand-written gradient g is compared through `gradcheck.core.probes.projections`.
    Costs 4 forward passes per probe whatever the size of θ. The truncation is taken
    output by output, as for the other layouts.

    directions (probes × K × J × P), when given, are used instead of drawing them: a
    second look at some of the cases must difference along the first look's directions
    for those cases, which a fresh draw over fewer cases does not give (the signs are laid
    out over every case).
    """
    if directions is None:
        directions = signed_steps(np.random.default_rng(seed), probes, theta)
    inputs = track(z) if tracked else z
    at_x = 0.0 if tracked else 2.0 * np.sum(np.abs(delta) * forward_error, axis=(-2, -1))
    sums = np.empty((7, probes, theta.shape[0]))
    for k, w in enumerate(directions):
        variants = shifted(theta, w)
        sums[:, k] = probe_sums(
            forward(inputs, track(variants) if tracked else variants), delta, at_x, tracked
        )
    estimate, error = extrapolate(sums, 2.0, 4.0, delta.shape[-2] * delta.shape[-1])
    reference = Reference(estimate.T, error.T, f"finite differences ({probes} probes)")
    return reference, directions


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
