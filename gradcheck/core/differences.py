"""Central differences with Richardson extrapolation, and a bound on their own error that
holds at every magnitude. Both engines difference through these functions (the catalogue's
layouts in `gradcheck.core.oracles`, users' layers in `gradcheck.user.oracles`).

The quantity differenced is E = Σ_o δ_o f_o (or the part of it an entry reaches: its unit's
or its example's sum), evaluated in float64.

**Steps and points.** h = cbrt(u_p)·max(1, |x|), with u_p the unit roundoff of the
precision the forward computes in (float64, unless a measurement says otherwise: see
`gradcheck.user.noise`); it balances the O(h²) truncation of a central difference against
the O(u_p/h) rounding of the values. The forward is evaluated at the floating-point numbers
x₊ₖ = fl(x + k h) and x₋ₖ = fl(x - k h), k = 1, 2, and the steps are those taken,
s_k = fl(fl(x₊ₖ - x) + fl(x - x₋ₖ)), within γ₂ of the real x₊ₖ - x₋ₖ.

**Estimate.** With Δ_k,o = f_o(x₊ₖ) - f_o(x₋ₖ), the difference quotients are
D_k = Σ_o δ_o Δ_k,o / s_k, and the extrapolation is

    R = D₁ + (D₁ - D₂) / (2^p - 1)          (p = 2: (4 D₁ - D₂)/3, central)

written so that no intermediate exceeds the values (4 D₁ overflows at exp(709)).
One-sided differences (x₀ = x and x₊ₖ, or x₋ₖ and x) use the same formulas with p = 1:
2 D₁ - D₂.

**Error.** |R - ∂E/∂x| <= T + ρ + arithmetic, where

- T = Σ_o |δ_o| |D₁,o - D₂,o| is the truncation, taken output by output: a term c h^q
  (q >= 1) of D's expansion leaves |2^p - 2^q| / (2^p - 1) · |c| h^q in R and puts
  (2^q - 1) |c| h^q, at least as much, into D₁ - D₂ (q = 2: the O(h²) term R removes;
  q = 1: a stencil that crosses a jump of f''). On E itself the terms of different
  outputs cancel while their errors do not (softsign with θ × 1e-6: the stencil crosses
  a = 0 for some examples and not for others), so the sum is of absolute values. Computed
  as (Σ|δ||2Δ₁ - Δ₂| + |s₂/s₁ - 2| Σ|δ||Δ₁|) / s₂ for the central stencil.
- ρ = (1 + 1/(2^p - 1)) ρ₁/s₁ + ρ₂/((2^p - 1) s₂) with ρ_k the rounding of
  Σ_o δ_o Δ_k,o: Σ_o |δ_o| (e_o(x₊ₖ) + e_o(x₋ₖ)) + γ_(K+1) Σ_o |δ_o| |Δ_k,o| + K η (K
  outputs summed, e_o(y) the forward's error bound at y, η the smallest subnormal: each
  product δ_o Δ_k,o may lose it). The summation is charged from the stencil's own values.
  e_o at the stencil points costs a Tracked evaluation there (5-7 times a plain one), so
  a first look charges e_o(x), which is close while h is small against what it moves; where
  it is not (θ × 1e-10: |f(x)| ≈ 1e-19 but |f(x ± h)| ≈ 2e-11), an entry that fails the
  first look is differenced again with e_o evaluated at its stencil points ("second
  look", tracked=True) before it is called a mismatch. The second look also takes the
  points x ± 4h: where D's expansion is led by h⁴ rather than h² (an inflection, where
  |D₁ - D₂| is small while R's error is not), R(h) lies from R(2h) by fifteen times its
  own truncation, and that distance, net of rounding, is charged (`converged`).
- arithmetic: γ₇ (|D₁| + (|D₁| + |D₂|)/(2^p - 1)) + 4η: the steps (γ₂), the subtraction
  and division of each quotient, and the three operations of R.

An entry whose stencil values, estimate or bound are not finite (the forward overflows
within 2h, or its differences do) is not resolved: its estimate is NaN and its error inf,
which `gradcheck.core.comparison.compare` counts as unbounded instead of comparing it.

This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.core.tolerance import Tracked, gamma, track, unit_roundoff

FloatArray = np.ndarray

#: The unit roundoff of float64, the precision the references compute in.
U64 = unit_roundoff(np.float64)
#: The smallest subnormal of float64.
ETA64 = float(np.finfo(np.float64).smallest_subnormal)
#: The step is cbrt(u)·max(1, |x|): it balances the O(h²) truncation of a central
#: difference against the O(u/h) rounding of the function values (u of float64).
STEP_SCALE = float(np.cbrt(U64))
#: Each forward call evaluates at most this many output values; more perturbations are
#: split into several calls.
EVALUATION_BUDGET = 1 << 22
#: The sums a stencil contributes to each entry (see `difference_sums`).
SUMS = ("difference1", "difference2", "magnitude1", "magnitude2", "forward1", "forward2", "curve")


@dataclass(frozen=True)
class Reference:
    """A reference value with a bound on its own error, and how it was obtained."""

    value: FloatArray
    error: FloatArray
    method: str


def step_sizes(x: np.ndarray, unit: float = U64) -> FloatArray:
    """h = cbrt(u)·max(1, |x|), one step per entry (u of float64 unless given)."""
    return float(np.cbrt(unit)) * np.maximum(1.0, np.abs(x))


def stencil(
    x: np.ndarray, unit: float = U64, *, wide: bool = False
) -> tuple[FloatArray, FloatArray]:
    """The points fl(x + h), fl(x - h), fl(x + 2h), fl(x - 2h) (and fl(x ± 4h) with wide)
    as (4 or 6, ...), and the steps taken at h and 2h (and 4h),
    s_k = (x₊ₖ - x) + (x - x₋ₖ), as (2 or 3, ...)."""
    h = step_sizes(x, unit)
    scales = (1.0, -1.0, 2.0, -2.0) + ((4.0, -4.0) if wide else ())
    with np.errstate(over="ignore", invalid="ignore"):
        points = np.stack([x + scale * h for scale in scales])
        steps = np.stack([(points[k] - x) + (x - points[k + 1]) for k in range(0, len(scales), 2)])
    return points, steps


def convergence_sum(
    rise1: np.ndarray,
    rise2: np.ndarray,
    rise4: np.ndarray,
    weights: np.ndarray,
    reduce: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Σ_o |δ_o| |(4/3) Δ₁,o - (5/6) Δ₂,o + (1/12) Δ₄,o|: s₁ times Σ_o |δ_o| |R_o(h) - R_o(2h)|
    when the steps are exactly h, 2h, 4h (see `converged`)."""
    with np.errstate(all="ignore"):
        combined = (4.0 / 3.0) * rise1 - (5.0 / 6.0) * rise2 + rise4 / 12.0
        return reduce(np.abs(weights) * np.abs(combined))


def converged(
    coarse: np.ndarray,
    wide: np.ndarray,
    convergence: np.ndarray,
    steps: Any,
    terms: int,
) -> tuple[FloatArray, FloatArray]:
    """The second look's estimate R(h) = D₁ + (D₁ - D₂)/3 (sums `coarse` of the pair
    (h, 2h)) with its error (`extrapolate`), plus how far it lies from R(2h), the estimate
    of the pair (2h, 4h) (sums `wide`), output by output:

        M = Σ_o |δ_o| |R_o(h) - R_o(2h)|
          <= (C + (5/3)|s₁/s₂ - ½| Σ|δ||Δ₂| + (1/3)|s₁/s₄ - ¼| Σ|δ||Δ₄|) / s₁

    with C = `convergence_sum`, net of the rounding both estimates may carry (ρ of
    `rounding_of`): max(0, M - ρ(h) - ρ(2h)) is charged. Where D's expansion is led by
    c h^q with q >= 4 rather than by c h² (an inflection: |D₁ - D₂| small while the next
    term is not, as for a cosine layer whose rows are 20 steps long), the truncations of
    the two estimates differ by (2^q - 1) |T(h)| >= 15 |T(h)|, and
    |T(h) - T(2h)| <= M + ρ(h) + ρ(2h), so |T(h)| <= (M + ρ(h) + ρ(2h))/15, which the
    charged part plus ρ(h) (already in the error) covers while ρ(2h) <= 6.5 ρ(h) (its
    steps are twice as long). Where D is led by c h², the truncation term of
    `extrapolate` covers it. Where rounding, not truncation, sets the bound, the second
    look is as sharp as the first."""
    step1, step2, step4 = steps
    estimate, error = extrapolate(coarse, step1, step2, terms)
    with np.errstate(all="ignore"):
        moved = (
            convergence
            + (5.0 / 3.0) * np.abs(step1 / step2 - 0.5) * coarse[3]
            + np.abs(step1 / step4 - 0.25) * wide[3] / 3.0
        ) / step1
        noise = rounding_of(coarse, step1, step2, terms) + rounding_of(wide, step2, step4, terms)
        charged = np.where(np.isfinite(moved), np.maximum(moved - noise, 0.0), 0.0)
        error = error + charged
        stalled = diverging(coarse, wide, steps, noise)
        resolved = np.isfinite(estimate) & np.isfinite(error) & ~stalled
    return np.where(resolved, estimate, np.nan), np.where(resolved, error, np.inf)


def diverging(coarse: np.ndarray, wide: np.ndarray, steps: Any, noise: Any) -> FloatArray:
    """Entries whose differences do not shrink with the step, where no bound from these
    steps holds. Where D's expansion holds, led by c h^q (q >= 1), the truncations
    T(h) = Σ|δ||D₁ - D₂| and T(2h) = Σ|δ||D₂ - D₄| are (2^q - 1)|c| h^q and 2^q times that:
    T(2h) >= 2 T(h) (4 T(h) for a smooth f). Where h is beyond the scale on which E turns,
    D behaves as a jump's, ∝ 1/h, and T(2h) ≈ T(h)/2: four tied logits of 3.4e6, one of
    which a step of θ moves by 16, put the log-sum-exp's differences at 1.56e6 against a
    true 8.46e5 (mpmath), 5.8 times the bound T(h) gives. T(2h) < 1.5 T(h), with T(h)
    above the rounding both pairs may carry, leaves such an entry unresolved: the other
    oracles judge it. The user engine keeps its first look there
    (`gradcheck.user.differences`): a kink inside its step behaves alike, and its draws
    at kinks go to the one-sided differences of the subgradient test."""
    _, step2, step4 = steps
    with np.errstate(all="ignore"):
        near = coarse[6] / step2
        far = wide[6] / step4
        return np.asarray((near > noise) & (far < 1.5 * near))


def difference_sums(
    rise1: np.ndarray,
    rise2: np.ndarray,
    weights: np.ndarray,
    reduce: Callable[[np.ndarray], np.ndarray],
    errors1: Any = None,
    errors2: Any = None,
) -> np.ndarray:
    """The per-entry sums (`SUMS`) of per-output differences Δ₁ and Δ₂ (at h and 2h):
    Σ δ Δ₁, Σ δ Δ₂, Σ |δ||Δ₁|, Σ |δ||Δ₂|, Σ |δ| e₁, Σ |δ| e₂ and Σ |δ||2Δ₁ - Δ₂|, with e_k
    the forward's error on Δ_k (zero when not given). reduce maps a per-output array to
    the sums each entry reads (over the last axes, say)."""
    magnitude = np.abs(weights)
    with np.errstate(all="ignore"):
        sums = [
            reduce(weights * rise1),
            reduce(weights * rise2),
            reduce(magnitude * np.abs(rise1)),
            reduce(magnitude * np.abs(rise2)),
        ]
        zero = np.zeros_like(sums[0])
        sums.append(zero if errors1 is None else reduce(magnitude * errors1))
        sums.append(zero if errors2 is None else reduce(magnitude * errors2))
        sums.append(reduce(magnitude * np.abs(2.0 * rise1 - rise2)))
    # filled row by row: np.stack(np.broadcast_arrays(...)) costs more than the sums
    # themselves on the small arrays of a user's example
    stacked = np.empty((len(sums), *np.broadcast_shapes(*(np.shape(s) for s in sums))),
                       dtype=np.result_type(*sums))  # fmt: skip
    for row, total in enumerate(sums):
        stacked[row] = total
    return stacked


def extrapolate(
    sums: np.ndarray, step1: Any, step2: Any, terms: int, *, order: int = 2
) -> tuple[FloatArray, FloatArray]:
    """R = D₁ + (D₁ - D₂)/(2^p - 1) and its error bound (see the module docstring) from
    the per-entry `difference_sums` (forward errors included), the steps taken and the
    number K of outputs each entry sums. order p = 2: central; p = 1: one-sided.
    Unresolved entries (anything not finite) come back as NaN with an infinite error."""
    difference1, difference2, magnitude1, _, _, _, curve = sums
    share = 1.0 / (2.0**order - 1.0)
    with np.errstate(all="ignore"):
        d1 = difference1 / step1
        d2 = difference2 / step2
        estimate = d1 + (d1 - d2) * share
        ratio = step2 / step1 - 2.0
        truncation = (curve + np.abs(ratio) * magnitude1) / step2
        rounding = rounding_of(sums, step1, step2, terms, order=order)
        # γ first: near the largest float, |D₁| + |D₁| overflows while the bound does not
        size1, size2 = gamma(7, np.float64) * np.abs(d1), gamma(7, np.float64) * np.abs(d2)
        arithmetic = size1 + size1 * share + size2 * share + 4.0 * ETA64
        error = truncation + rounding + arithmetic
        resolved = np.isfinite(estimate) & np.isfinite(error)
    return np.where(resolved, estimate, np.nan), np.where(resolved, error, np.inf)


def rounding_of(
    sums: np.ndarray, step1: Any, step2: Any, terms: int, *, order: int = 2
) -> FloatArray:
    """The rounding part ρ of `extrapolate`'s error: (1 + 1/(2^p - 1)) ρ₁/s₁ + ρ₂/((2^p - 1) s₂)
    with ρ_k = Σ|δ| e_k + γ_(K+1) Σ|δ||Δ_k| + K η."""
    _, _, magnitude1, magnitude2, forward1, forward2, _ = sums
    share = 1.0 / (2.0**order - 1.0)
    summation = gamma(terms + 1, np.float64)
    with np.errstate(all="ignore"):
        rounding1 = (forward1 + summation * magnitude1 + terms * ETA64) / step1
        rounding2 = (forward2 + summation * magnitude2 + terms * ETA64) / step2
        return rounding1 + rounding1 * share + rounding2 * share


def richardson(
    d1: FloatArray, d2: FloatArray, rounding1: FloatArray, rounding2: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Extrapolate difference quotients of one quantity at steps h and 2h whose rounding
    is bounded by rounding1 and rounding2: D₁ + (D₁ - D₂)/3 with the error
    |D₁ - D₂| + (4 ρ₁ + ρ₂)/3 + γ₇(|D₁| + (|D₁| + |D₂|)/3), the central formulas of the
    module docstring for a single output. Unresolved entries: NaN, error inf."""
    with np.errstate(all="ignore"):
        estimate = d1 + (d1 - d2) / 3.0
        size1, size2 = gamma(7, np.float64) * np.abs(d1), gamma(7, np.float64) * np.abs(d2)
        error = np.abs(d1 - d2) + rounding1 + rounding1 / 3.0 + rounding2 / 3.0
        error = error + size1 + size1 / 3.0 + size2 / 3.0 + 4.0 * ETA64
        resolved = np.isfinite(estimate) & np.isfinite(error)
    return np.where(resolved, estimate, np.nan), np.where(resolved, error, np.inf)


def stencil_differences(
    x: np.ndarray,
    groups: np.ndarray,
    evaluate: Callable[[Any], Any],
    weights: np.ndarray,
    reduce: Callable[[np.ndarray], np.ndarray],
    forward_error: Any,
    *,
    terms: int,
    outputs_per_variant: int,
    method: str,
    tracked: bool = False,
) -> Reference:
    """Derivatives of E with respect to every entry of x by central differences.

    x is (K, ...): K stacked cases, perturbed alike. groups (G, ...) are boolean masks over
    one case's entries saying which move together (one entry per group, or a column of
    independent units). evaluate(variants) maps S perturbed copies (S, K, ...) to the
    per-output values (S, K, *out); weights δ is (K, *out); reduce maps (S, K, *out) to the
    sums each entry reads, broadcastable to (S,) + x.shape (entry e reading its own
    group's sum, of `terms` outputs). forward_error bounds the forward's float64 rounding
    at x (first look). tracked=True is the second look: the forward runs on Tracked
    arrays and its running bound at each stencil point is charged, and the estimate is
    checked against the steps ±4h (`converged`).
    """
    points, steps = stencil(x, wide=tracked)
    width = len(points)
    totals = np.zeros((2 * len(SUMS) + 1,) + x.shape)
    per_call = max(1, EVALUATION_BUDGET // max(width * max(outputs_per_variant, x.size), 1))
    at_x = None
    if not tracked:
        with np.errstate(all="ignore"):
            at_x = 2.0 * np.broadcast_to(reduce(np.abs(weights) * forward_error), x.shape)
    for start in range(0, len(groups), per_call):
        chunk = groups[start : start + per_call][:, None]  # (G, 1, ...): every case alike
        variants = np.where(chunk[None], points[:, None], x[None, None])  # (S, G, K, ...)
        flat = variants.reshape((-1,) + x.shape)
        errors: Any = [None] * width
        with np.errstate(all="ignore"):
            if tracked:
                result = evaluate(track(flat))
                values = np.asarray(getattr(result, "value", result), dtype=np.float64)
                error = np.asarray(
                    result.error if isinstance(result, Tracked) else np.zeros(values.shape)
                )
                errors = error.reshape(variants.shape[:2] + error.shape[1:])
            else:
                values = np.asarray(evaluate(flat), dtype=np.float64)
        values = values.reshape(variants.shape[:2] + values.shape[1:])  # (S, G, K, *out)
        with np.errstate(all="ignore"):
            rises = [values[k] - values[k + 1] for k in range(0, width, 2)]
            pairs = [_sum(errors[k], errors[k + 1]) for k in range(0, width, 2)]
            sums = [difference_sums(rises[0], rises[1], weights, reduce, pairs[0], pairs[1])]
            if tracked:  # the pair (2h, 4h), and how far its estimate lies from (h, 2h)'s
                sums.append(
                    difference_sums(rises[1], rises[2], weights, reduce, pairs[1], pairs[2])
                )
                sums.append(convergence_sum(rises[0], rises[1], rises[2], weights, reduce)[None])
        found = np.concatenate([np.broadcast_to(a, a.shape[:2] + x.shape) for a in sums])
        totals[: len(found)] += np.sum(np.where(chunk[None], found, 0.0), axis=1)
    coarse = totals[: len(SUMS)]
    if at_x is not None:
        coarse[4] += at_x
        coarse[5] += at_x
        estimate, error = extrapolate(coarse, steps[0], steps[1], terms)
        return Reference(estimate, error, f"finite differences ({method})")
    wide, convergence = totals[len(SUMS) : 2 * len(SUMS)], totals[2 * len(SUMS)]
    estimate, error = converged(coarse, wide, convergence, steps, terms)
    return Reference(estimate, error, f"finite differences ({method}, second look)")


def _sum(first: Any, second: Any) -> Any:
    """first + second, or None where either is unknown."""
    return None if first is None or second is None else first + second


def central_differences(
    x: np.ndarray,
    groups: np.ndarray,
    quantity: Callable[[Any], Any],
    rounding: FloatArray,
    *,
    outputs_per_variant: int,
    method: str,
    tracked: bool = False,
) -> Reference:
    """Derivatives of one quantity per entry (quantity(variants) maps S perturbed copies
    (S, K, ...) to values that broadcast against them, entry e reading its own group's
    value), whose float64 rounding at x is bounded by `rounding`: the stencil of
    `stencil_differences` with the quantity as its single output (δ = 1).

    tracked=True is the second look: quantity receives the variants as a Tracked array
    and returns a Tracked value, whose running bound at each stencil point is charged
    in place of `rounding` (then unused), and the estimate is checked against ±4h
    (`converged`)."""

    def evaluate(variants: Any) -> Any:
        return np.broadcast_to(quantity(variants), variants.shape)

    return stencil_differences(
        x,
        groups,
        evaluate,
        np.ones(x.shape),
        lambda values: values,
        np.broadcast_to(rounding, x.shape),
        terms=0,
        outputs_per_variant=outputs_per_variant,
        method=method,
        tracked=tracked,
    )


def second_look(
    first: Reference,
    hand: np.ndarray,
    hand_error: np.ndarray,
    redo: Callable[[np.ndarray], Reference],
    among: np.ndarray | None = None,
) -> tuple[Reference, np.ndarray]:
    """The first look's reference for K stacked cases, with the cases where some
    hand-written entry misses its bound (|g - r| > e_g + e_r) differenced again by
    redo(cases), which charges the forward's rounding at the stencil points (tracked=True).
    among (K booleans) limits the second look to cases whose miss would count (not those
    of a coupled layer's A, which is not its gradient). Returns the reference and which
    cases were looked at again."""
    with np.errstate(invalid="ignore"):
        missed = np.abs(np.asarray(hand, dtype=np.float64) - first.value) > hand_error + first.error
    cases = missed.reshape(len(missed), -1).any(axis=1)
    if among is not None:
        cases &= among
    if not cases.any():
        return first, cases
    again = redo(np.flatnonzero(cases))
    value, error = first.value.copy(), first.error.copy()
    value[cases], error[cases] = again.value, again.error
    return Reference(value, error, first.method), cases
