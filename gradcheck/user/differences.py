"""Finite differences of a user's layer, one argument at a time, with the error model of
`gradcheck.core.differences` (shared with the catalogue).

A user's forward is a black box that may not broadcast over extra leading axes, so every
stencil point is one call. For each differentiated argument x, every entry is moved alone
by ±h and ±2h (h = cbrt(u_p)·max(1, |x|), u_p the precision the forward computes in:
float64 unless `gradcheck.user.noise` measured less), or, above `FULL_DIFFERENCES_BUDGET`
entries, x is moved along `PROBES` random signed directions w = s ⊙ h
(`gradcheck.core.probes`, shared with the catalogue), which yields ⟨∇E, w⟩ at the nominal
steps, the steps taken being charged on the hand-written side
(`gradcheck.core.probes.projections`). From the outputs at x and at the four points:

- the central estimate R = D₁ + (D₁ - D₂)/3 of E, with the error of
  `gradcheck.core.differences` (truncation output by output, rounding of the differenced
  values at the points, arithmetic);
- the one-sided estimates 2 D±₁ - D±₂ of E from the right (x, x₊₁, x₊₂) and from the left,
  each with the same error model (p = 1). Where E is smooth within the stencil the three
  agree within their errors; where two do not, E has a kink or a jump within 2h and the
  draw is non-differentiable (`ArgumentDifferences.kinked`);
- the Jacobian ∂f_o/∂x_e of every output (per-entry arguments), each output with its own
  central estimate and error, for the structure analysis;
- where a central stencil is not finite (exp overflows within 2h near 709, a point leaves
  the forward's domain), the one-sided estimate from the side where it is finite stands in
  for the central one, with its own error; where neither is, the entry is not resolved
  (NaN, error inf: not compared).

The forward's rounding at the points is `errors_at(values)` (the fallback model charged at
each point's own outputs) or, for a forward with a running bound, its bound at x (the
first look); `second_look` charges the running bound at the stencil points of the entries
whose comparison failed the first look, and checks their convergence against ±4h.

This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from gradcheck.core.differences import (
    U64,
    converged,
    convergence_sum,
    difference_sums,
    extrapolate,
    step_sizes,
)
from gradcheck.core.probes import projections, signed_steps

#: Arguments with at most this many entries are differenced entry by entry.
FULL_DIFFERENCES_BUDGET = 64
#: Random signed directions probed for larger arguments: a pattern of errors escapes them
#: with probability <= 2^-16 (`gradcheck.core.probes`).
PROBES = 16
#: Above this many entries in all the arguments, where autograd compares every entry, the
#: large-layer count `gradcheck.core.probes.LARGE_PROBES` is probed instead: each probe
#: costs four calls of the whole forward, and the differences there confirm autograd
#: rather than stand alone.
LARGE_LAYER = 1 << 16

Evaluate = Callable[[np.ndarray], np.ndarray]
ErrorsAt = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ArgumentDifferences:
    """The finite-difference view of one argument.

    gradient/error: ∂E/∂x per entry (or ⟨∇E, w_q⟩ per probe when directions is given).
    right/left and their slacks: the one-sided extrapolations of the same quantity.
    jacobian/jacobian_error: ∂f_o/∂x_e as (output..., entries) for per-entry arguments,
    None for probed ones. one_sided: entries whose central stencil was not finite and
    whose estimate is one-sided. The stencil itself (x, the shifts, the outputs at the
    points and at x, the steps taken, δ and the forward's errors charged at the points)
    is kept for a second look.
    """

    gradient: np.ndarray
    error: np.ndarray
    right: np.ndarray
    left: np.ndarray
    right_slack: np.ndarray
    left_slack: np.ndarray
    jacobian: np.ndarray | None
    jacobian_error: np.ndarray | None
    directions: np.ndarray | None
    one_sided: np.ndarray
    x: np.ndarray
    shifts: np.ndarray  # (D, *x.shape): each entry's step h (or each probe's w)
    values: np.ndarray  # (4, D, *out): outputs at x + w, x - w, x + 2w, x - 2w
    outputs: np.ndarray  # (*out): outputs at x
    steps: np.ndarray  # (4, D): the steps taken, up1, down1, up2, down2
    dout: np.ndarray
    errors: np.ndarray  # (4, D, *out) or broadcastable: the forward's errors at the points
    base_error: np.ndarray  # (*out): at x
    looked_twice: bool = False
    # the second look's points x ± 4w ((2, D, *out), NaN where not taken), their steps
    # ((2, D)) and the forward's errors there
    wide: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def kinked(self) -> np.ndarray:
        """Entries (or probes) where the right, left and central estimates disagree
        beyond their slacks: E is not differentiable within the stencil there."""
        central = self.gradient
        with np.errstate(invalid="ignore"):
            return (
                (np.abs(self.right - self.left) > self.right_slack + self.left_slack)
                | (np.abs(central - self.right) > self.error + self.right_slack)
                | (np.abs(central - self.left) > self.error + self.left_slack)
            ) & ~self.one_sided

    @property
    def unresolved(self) -> int:
        return int(np.sum(~np.isfinite(self.error)))

    @property
    def method(self) -> str:
        if self.directions is not None:
            text = f"central differences, Richardson, {len(self.directions)} random probes"
        else:
            text = "central differences, Richardson, entry by entry"
        notes = []
        if self.one_sided.any():
            notes.append(
                f"{int(self.one_sided.sum())} one-sided where the forward is not finite "
                "on one side of the step"
            )
        if self.unresolved:
            notes.append(
                f"{self.unresolved} not resolved: the forward is not finite on either side "
                "of the step, or the entry is nearer 0 than 4 steps (gradcheck.user.finite)"
            )
        if self.looked_twice:
            notes.append(
                "second look: the forward's rounding at the stencil points, checked against ±4h"
            )
        return text + "".join(f"; {note}" for note in notes)


def differences(
    evaluate: Evaluate,
    x: np.ndarray,
    dout: np.ndarray,
    outputs: np.ndarray,
    forward_error: np.ndarray,
    *,
    errors_at: ErrorsAt | None = None,
    unit: float = U64,
    seed: int = 0,
    probes: int = PROBES,
) -> ArgumentDifferences:
    """Finite differences of E with respect to x (see the module docstring).

    evaluate(variant) returns the forward's joined float64 output with x replaced by
    variant (not finite where the forward is not). forward_error bounds the forward's
    rounding at x; errors_at(values), when given, bounds it at other points from their
    outputs (the fallback model); unit is the unit roundoff of the forward's precision;
    probes: how many directions an argument above `FULL_DIFFERENCES_BUDGET` entries takes.
    """
    h = step_sizes(x, unit)
    if x.size <= FULL_DIFFERENCES_BUDGET:
        shifts = np.zeros((x.size,) + x.shape)
        shifts.reshape(x.size, -1)[np.arange(x.size), np.arange(x.size)] = h.reshape(-1)
        directions = None
    else:
        shifts = directions = signed_steps(np.random.default_rng(seed), probes, x, unit)
    values = np.empty((4, len(shifts)) + outputs.shape)
    steps = np.empty((4, len(shifts)))
    with np.errstate(all="ignore"):
        for row, scale in enumerate((1.0, -1.0, 2.0, -2.0)):
            for column, shift in enumerate(shifts):
                variant = x + scale * shift
                values[row, column] = evaluate(variant)
                if directions is None:
                    steps[row, column] = np.abs(variant - x).sum()
    if directions is not None:  # nominal steps; `gradcheck.core.probes.projections` charges
        steps = np.array([1.0, 1.0, 2.0, 2.0])[:, None] * np.ones(len(shifts))  # the taken
    base_error = np.asarray(forward_error, dtype=np.float64)
    errors = np.broadcast_to(base_error, values.shape) if errors_at is None else errors_at(values)
    return _estimates(
        x, shifts, directions, values, outputs, steps, dout, np.asarray(errors), base_error, False
    )


def second_look(
    fd: ArgumentDifferences,
    missed: np.ndarray,
    evaluate: Evaluate,
    bound_at: Callable[[np.ndarray, np.ndarray], np.ndarray | None],
) -> ArgumentDifferences:
    """The differences again for the entries (or probes) in `missed`: the forward's bound
    at their stencil points (bound_at(variant, outputs), None where it has none, which
    keeps the first look's), and the points x ± 4w, whose pair (2h, 4h) tells how far
    the estimate may still be from converged (`gradcheck.core.differences.converged`)."""
    chosen = np.flatnonzero(np.asarray(missed).reshape(-1))
    if chosen.size == 0:
        return fd
    errors = np.array(np.broadcast_to(fd.errors, fd.values.shape))
    count = len(fd.shifts)
    if fd.wide is None:
        wide = np.full((2, count) + fd.outputs.shape, np.nan)
        wide_steps = np.full((2, count), np.nan)
        wide_errors = np.array(np.broadcast_to(fd.base_error, wide.shape))
    else:  # a look before this one: keep what it took
        wide, wide_steps, wide_errors = (np.array(a) for a in fd.wide)
    with np.errstate(all="ignore"):
        for column in chosen:
            for row, scale in enumerate((1.0, -1.0, 2.0, -2.0)):
                bound = bound_at(fd.x + scale * fd.shifts[column], fd.values[row, column])
                if bound is not None:
                    errors[row, column] = bound
            for row, scale in enumerate((4.0, -4.0)):
                variant = fd.x + scale * fd.shifts[column]
                wide[row, column] = evaluate(variant)
                wide_steps[row, column] = np.abs(variant - fd.x).sum()
                bound = bound_at(variant, wide[row, column])
                if bound is not None:
                    wide_errors[row, column] = bound
    if fd.directions is not None:  # nominal steps, as the first look's (see `differences`)
        wide_steps = np.where(np.isnan(wide_steps), np.nan, 4.0)
    taken = (wide, wide_steps, wide_errors)
    again = _estimates(
        fd.x, fd.shifts, fd.directions, fd.values, fd.outputs, fd.steps, fd.dout, errors,
        fd.base_error, True, taken,
    )  # fmt: skip
    return replace(again, errors=errors, wide=taken)


def _estimates(
    x: np.ndarray,
    shifts: np.ndarray,
    probes: np.ndarray | None,
    values: np.ndarray,
    outputs: np.ndarray,
    steps: np.ndarray,
    dout: np.ndarray,
    errors: np.ndarray,
    base_error: np.ndarray,
    twice: bool,
    wide: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> ArgumentDifferences:
    """Every estimate of `ArgumentDifferences` from the outputs at the stencil points (and,
    on a second look, at x ± 4w: `wide` holds their outputs, steps and errors)."""
    up1, down1, up2, down2 = steps
    axes = tuple(range(-outputs.ndim, 0)) if outputs.ndim else ()
    terms = max(int(dout.size), 1)

    def reduce(array: np.ndarray) -> np.ndarray:
        return np.sum(array, axis=axes) if axes else array

    plus1, minus1, plus2, minus2 = values
    e_plus1, e_minus1, e_plus2, e_minus2 = np.broadcast_to(errors, values.shape)
    with np.errstate(all="ignore"):
        central = difference_sums(
            plus1 - minus1, plus2 - minus2, dout, reduce, e_plus1 + e_minus1, e_plus2 + e_minus2
        )
        right_sums = difference_sums(
            plus1 - outputs, plus2 - outputs, dout, reduce,
            e_plus1 + base_error, e_plus2 + base_error,
        )  # fmt: skip
        left_sums = difference_sums(
            outputs - minus1, outputs - minus2, dout, reduce,
            e_minus1 + base_error, e_minus2 + base_error,
        )  # fmt: skip
    gradient, error = extrapolate(central, up1 + down1, up2 + down2, terms)
    if wide is not None:
        gradient, error = _converged(
            gradient, error, central, values, wide, steps, dout, reduce, terms, errors
        )
    right, right_slack = extrapolate(right_sums, up1, up2, terms, order=1)
    left, left_slack = extrapolate(left_sums, down1, down2, terms, order=1)
    # A central stencil that is not finite: the one-sided estimate of the finite side.
    one_sided = ~np.isfinite(error) & (np.isfinite(right_slack) | np.isfinite(left_slack))
    use_right = one_sided & np.isfinite(right_slack)
    use_left = one_sided & ~use_right
    gradient = np.where(use_right, right, np.where(use_left, left, gradient))
    error = np.where(use_right, right_slack, np.where(use_left, left_slack, error))
    jacobian = jacobian_error = None
    shape = x.shape
    if probes is None:
        lead = (len(shifts),) + (1,) * outputs.ndim
        with np.errstate(all="ignore"):
            per_output = difference_sums(
                plus1 - minus1, plus2 - minus2, np.ones(outputs.shape), lambda a: a,
                e_plus1 + e_minus1, e_plus2 + e_minus2,
            )  # fmt: skip
        step1, step2 = (up1 + down1).reshape(lead), (up2 + down2).reshape(lead)
        jacobian, jacobian_error = extrapolate(per_output, step1, step2, 0)
        if wide is not None:
            jacobian, jacobian_error = _converged(
                jacobian, jacobian_error, per_output, values, wide,
                steps.reshape((4,) + lead), np.ones(outputs.shape), lambda a: a, 0, errors,
            )  # fmt: skip
        jacobian = np.moveaxis(jacobian, 0, -1)  # (*out, entries)
        jacobian_error = np.moveaxis(jacobian_error, 0, -1)
        gradient, error = gradient.reshape(shape), error.reshape(shape)
        right, right_slack = right.reshape(shape), right_slack.reshape(shape)
        left, left_slack = left.reshape(shape), left_slack.reshape(shape)
        one_sided = one_sided.reshape(shape)
    return ArgumentDifferences(
        gradient, error, right, left, right_slack, left_slack, jacobian, jacobian_error,
        probes, one_sided, x, shifts, values, outputs, steps, dout, errors, base_error, twice,
    )  # fmt: skip


def _converged(
    estimate: np.ndarray,
    error: np.ndarray,
    coarse: np.ndarray,
    values: np.ndarray,
    wide: tuple[np.ndarray, np.ndarray, np.ndarray],
    steps: np.ndarray,
    weights: np.ndarray,
    reduce: Callable[[np.ndarray], np.ndarray],
    terms: int,
    errors: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """R(h) with the error of `converged`, where x ± 4w were evaluated; the first look's
    elsewhere."""
    points, wide_steps, wide_errors = wide
    up1, down1, up2, down2 = steps
    plus1, minus1, plus2, minus2 = values
    e_plus2, e_minus2 = np.broadcast_to(errors, values.shape)[2:]
    with np.errstate(all="ignore"):
        rise2, rise4 = plus2 - minus2, points[0] - points[1]
        far = difference_sums(
            rise2, rise4, weights, reduce, e_plus2 + e_minus2, wide_errors[0] + wide_errors[1]
        )
        convergence = convergence_sum(plus1 - minus1, rise2, rise4, weights, reduce)
    step4 = (wide_steps[0] + wide_steps[1]).reshape(np.shape(up1))
    found, found_error = converged(
        coarse, far, convergence, (up1 + down1, up2 + down2, step4), terms
    )
    taken = np.isfinite(step4) & np.isfinite(found_error)
    return np.where(taken, found, estimate), np.where(taken, found_error, error)


def missed_entries(fd: ArgumentDifferences, hand: np.ndarray, hand_error: np.ndarray) -> np.ndarray:
    """Entries (or probes) where a hand-written gradient misses the differences' bound."""
    return miss_ratios(fd, hand, hand_error) > 1.0


def miss_ratios(fd: ArgumentDifferences, hand: np.ndarray, hand_error: np.ndarray) -> np.ndarray:
    """|g - r| / (e_g + e_r) per entry (or probe): above 1 where g misses the bound."""
    g = np.asarray(hand, dtype=np.float64)
    bound = np.broadcast_to(np.asarray(hand_error, dtype=np.float64), g.shape)
    if fd.directions is not None:
        g, bound = projections(fd.directions, g, bound, fd.x)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.abs(g - fd.gradient) / (bound + fd.error)
    return np.where(np.isnan(ratio), 0.0, ratio)
