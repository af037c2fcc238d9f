"""The error rules of numpy's ufuncs: (values, errors, result) -> the result's error bound.

One row per ufunc in `UFUNC_RULES`, as autograd keeps derivative rules beside the
functions they differentiate: a unary function's row gives |φ'(x)| as a function of
(x, y = φ(x)) and the implementation's accuracy in ulps. The rules are the formulas of
`gradcheck.core.tolerance`'s docstring; each works on plain arrays (no Tracked type here).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from gradcheck.core.events import record
from gradcheck.core.expansions import (
    Bounds,
    Expansion,
    aligned,
    distinct,
    is_zero,
    plus,
    times,
)
from gradcheck.core.rounding import (
    CORRECTLY_ROUNDED_ULPS,
    TRANSCENDENTAL_ULPS,
    FloatArray,
    abs64,
    gamma,
    ulps_error,
    unit_roundoff,
)


def _smooth(derivative: Callable[[FloatArray, FloatArray], Any], ulps: float) -> Callable[..., Any]:
    """Rule for a differentiable unary function: |φ'(x)| e_x + ulps · eps · |φ(x)|."""

    def rule(values: list[Any], errors: list[Any], result: np.ndarray) -> Any:
        x = np.asarray(values[0], dtype=np.float64)
        slope = np.abs(derivative(x, np.asarray(result, dtype=np.float64)))
        return plus(ulps_error(result, ulps), times(slope, errors[0]))

    return rule


def _singular_at(
    limit: float, derivative: Callable[[FloatArray, FloatArray], Any], ulps: float, name: str
) -> Callable[..., Any]:
    """Rule for a function whose derivative is unbounded as x approaches `limit` from above.

    Where x may reach the limit within its error the point is recorded as a singularity
    and the error is infinite; elsewhere the derivative is taken at x - e_x, its largest
    value over the uncertainty interval.
    """

    def rule(values: list[Any], errors: list[Any], result: np.ndarray) -> Any:
        x = np.asarray(values[0], dtype=np.float64)
        e = np.asarray(errors[0], dtype=np.float64)
        near = x - limit <= e
        record("singularity", name, near, x, e)
        slope = np.abs(derivative(np.maximum(x - e, limit), np.asarray(result, dtype=np.float64)))
        return plus(ulps_error(result, ulps), np.where(near, np.inf, slope * e))

    return rule


def _add(values: list[Any], errors: list[Any], result: np.ndarray) -> Any:
    # Added into the rounding term, a new array of the result's shape: no temporaries.
    return plus(plus(ulps_error(result, CORRECTLY_ROUNDED_ULPS), errors[0]), errors[1])


def _multiply(values: list[Any], errors: list[Any], result: np.ndarray) -> Any:
    """x · y:  |x| (e_y + u'|y|) + e_x (|y| + e_y) + η,  with u' = u (1 + 2u).

    Multiplied out, this is the docstring's |y| e_x + |x| e_y + e_x e_y + u|x y| + η with the
    rounding charged to the operands' magnitudes instead of the result's. It bounds the
    rounding as well: fl(x y) = x y (1 + δ) + η', |δ| <= u, |η'| <= η/2, so it is at most
    u|x y| + η/2; and u'|x y| is not below the docstring's u|fl(x y)|, which is at most
    u (1 + u)|x y| + u η/2 (the u η/2 far below the η added). 1 + 2u rather than 1 + u,
    which rounds to 1 in float64 for float64's u = 2^-53. x and y are the operands as the
    product sees them, cast to its dtype (NEP 50 rounds a Python float first, and the
    operand's error covers that).

    Grouped so, every factor has an operand's shape: where the operands broadcast to a
    larger result (an outer product, (N, J, 1) * (N, 1, P)), the error costs one or two
    result-sized products rather than a dozen result-sized passes, and an exact operand
    (error 0, as inputs are) drops the second. Such a result keeps its bounds as these
    factors (`Bounds`, with |fl(x y)| <= (1 + 2u)|x||y| + η for its magnitude) and forms
    the error only if it is read: a contraction of it never does.
    """
    dtype, ndim = result.dtype, np.ndim(result)
    u = unit_roundoff(dtype)
    info = np.finfo(dtype)
    (mx, ex), (my, ey) = (
        (
            aligned(abs64(np.asarray(distinct(value)).astype(dtype, copy=False)), ndim),
            aligned(distinct(np.asarray(error, dtype=np.float64)), ndim),
        )
        for value, error in zip(values, errors, strict=True)
    )
    exact_x, exact_y = is_zero(ex), is_zero(ey)
    # y is the inexact operand when only one is, else the one with fewer entries: the
    # y-sized sums below are then the cheaper ones, and e_x (|y| + e_y) is needed only
    # when both are inexact.
    if (exact_y and not exact_x) or (exact_x == exact_y and my.size > mx.size):
        mx, ex, exact_x, my, ey = my, ey, exact_y, mx, ex
    grow = 1.0 + 2.0 * u
    terms = [(mx, (u * grow) * my + ey)]
    if not exact_x:
        terms.append((ex, my + ey))
    eta = float(info.smallest_subnormal)
    error = Expansion(tuple(terms), eta)
    # The rounding model holds for finite results: operands whose largest magnitudes
    # multiply to at most half the dtype's largest number (a margin for the float64
    # rounding of this test) give no other. NaN or inf operands fail the test.
    largest = np.maximum.reduce(mx, axis=None, initial=0.0) * np.maximum.reduce(
        my, axis=None, initial=0.0
    )
    finite = bool(largest <= float(info.max) / 2)
    factors = mx.size + my.size + ex.size + ey.size
    if (
        finite
        and 2 * factors < result.size
        and np.isfinite(np.add.reduce(ex, axis=None) + np.add.reduce(ey, axis=None))
    ):
        return Bounds(Expansion(((mx, grow * my),), eta), error)
    total = error.evaluate()
    if not finite:  # an infinite or NaN result is unbounded
        total = np.where(np.isfinite(result), total, np.inf)
    return total


def _divide(values: list[Any], errors: list[Any], result: np.ndarray) -> Any:
    """x / y; where y overflowed to ±inf, its true value is at least the largest finite
    number, so |x / y| <= (|x| + e_x) / max (autograd's tanh rule divides by cosh(x)²)."""
    a, b = abs64(values[0]), abs64(values[1])
    ea, eb = np.asarray(errors[0], np.float64), np.asarray(errors[1], np.float64)
    near = (b <= eb) & np.isfinite(b)  # an overflowed divisor is huge, not near zero
    record("singularity", "division", np.broadcast_to(near, result.shape), values[1], eb)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = (ea + times(abs64(result), eb)) / np.where(near, 1.0, b - eb)
    overflowed = (a + ea) / float(np.finfo(result.dtype).max)
    spread = np.where(np.isinf(b), overflowed, spread)
    return plus(ulps_error(result, CORRECTLY_ROUNDED_ULPS), np.where(near, np.inf, spread))


def _power(values: list[Any], errors: list[Any], result: np.ndarray) -> Any:
    if not np.all(errors[1] == 0):
        raise TypeError("Tracked supports x ** c only for a constant exponent c")
    x, c = np.asarray(values[0], dtype=np.float64), np.asarray(values[1], dtype=np.float64)
    slope = np.abs(c * x ** (c - 1.0))
    ulps = CORRECTLY_ROUNDED_ULPS if np.all(c == 2.0) else TRANSCENDENTAL_ULPS
    return plus(ulps_error(result, ulps), times(slope, errors[0]))


def _extremum(values: list[Any], errors: list[Any], result: np.ndarray) -> Any:
    # Which operand wins may be uncertain only at a kink, which the caller declares.
    return np.maximum(errors[0], errors[1]) + 0.0 * abs64(result)


def _logaddexp(values: list[Any], errors: list[Any], result: np.ndarray) -> Any:
    a, b = (np.asarray(v, dtype=np.float64) for v in values)
    y = np.asarray(result, dtype=np.float64)
    error = plus(ulps_error(result, TRANSCENDENTAL_ULPS), times(np.exp(a - y), errors[0]))
    return plus(error, times(np.exp(b - y), errors[1]))


def _matmul(values: list[Any], errors: list[Any], result: np.ndarray) -> Any:
    """x @ y: |x| @ e_y + e_x @ |y| + γ_K |x| @ |y| + K η, with K the inner dimension
    (the dot-product rule of the module docstring, evaluated by BLAS). γ_K goes into one
    side's magnitude beside its error, (γ_K |x| + e_x) @ |y| (or the mirror image): one
    product for magnitude and error where only one operand is inexact."""
    a, b = (np.asarray(v) for v in values)
    ea, eb = (
        np.broadcast_to(np.asarray(e, dtype=np.float64), v.shape)
        for e, v in zip(errors, (a, b), strict=True)
    )
    exact_a, exact_b = is_zero(ea), is_zero(eb)
    inner = a.shape[-1]
    magnitude_a, magnitude_b = abs64(a), abs64(b)
    scale = gamma(inner + 1, result.dtype)
    # The side that takes γ_K: the inexact one if only one is, else the smaller.
    left = exact_b if exact_a != exact_b else a.size <= b.size
    folded, folded_error = (magnitude_a, ea) if left else (magnitude_b, eb)
    if not (exact_a or exact_b):
        folded = folded * scale  # the plain magnitude is needed for the other side's error
    else:
        folded *= scale
    if not is_zero(folded_error):
        folded += folded_error
    if left:
        error = np.matmul(folded, magnitude_b)
        if not exact_b:
            error = plus(error, np.matmul(magnitude_a, eb))
    else:
        error = np.matmul(magnitude_a, folded)
        if not exact_a:
            error = plus(error, np.matmul(ea, magnitude_b))
    return plus(error, inner * 2 * float(np.finfo(result.dtype).smallest_subnormal))


_TWO_OVER_ROOT_PI = 2.0 / math.sqrt(math.pi)

#: ufunc -> error rule. Unary rules give |φ'(x)| as a function of (x, y = φ(x)) and the
#: implementation's accuracy in ulps, as autograd keeps derivative rules beside functions.
UFUNC_RULES: dict[np.ufunc, Callable[..., Any]] = {
    np.negative: _smooth(lambda x, y: 1.0, 0.0),
    np.positive: _smooth(lambda x, y: 1.0, 0.0),
    np.absolute: _smooth(lambda x, y: 1.0, 0.0),
    np.conjugate: _smooth(lambda x, y: 1.0, 0.0),
    np.sign: _smooth(lambda x, y: 0.0, 0.0),
    np.square: _smooth(lambda x, y: 2.0 * x, CORRECTLY_ROUNDED_ULPS),
    np.exp: _smooth(lambda x, y: y, TRANSCENDENTAL_ULPS),
    np.expm1: _smooth(lambda x, y: y + 1.0, TRANSCENDENTAL_ULPS),
    np.tanh: _smooth(lambda x, y: 1.0 - y * y, TRANSCENDENTAL_ULPS),
    np.sinh: _smooth(lambda x, y: np.cosh(x), TRANSCENDENTAL_ULPS),
    np.cosh: _smooth(lambda x, y: np.sinh(x), TRANSCENDENTAL_ULPS),
    np.sin: _smooth(lambda x, y: np.cos(x), TRANSCENDENTAL_ULPS),
    np.cos: _smooth(lambda x, y: np.sin(x), TRANSCENDENTAL_ULPS),
    np.arctan: _smooth(lambda x, y: 1.0 / (1.0 + x * x), TRANSCENDENTAL_ULPS),
    np.sqrt: _singular_at(0.0, lambda x, y: 0.5 / np.sqrt(x), CORRECTLY_ROUNDED_ULPS, "sqrt"),
    np.log: _singular_at(0.0, lambda x, y: 1.0 / x, TRANSCENDENTAL_ULPS, "log"),
    np.log1p: _singular_at(-1.0, lambda x, y: 1.0 / (1.0 + x), TRANSCENDENTAL_ULPS, "log1p"),
    np.reciprocal: _singular_at(0.0, lambda x, y: 1.0 / (x * x), CORRECTLY_ROUNDED_ULPS, "1/x"),
    np.add: _add,
    np.subtract: _add,
    np.multiply: _multiply,
    np.divide: _divide,
    np.power: _power,
    np.float_power: _power,
    np.maximum: _extremum,
    np.minimum: _extremum,
    np.logaddexp: _logaddexp,
    np.matmul: _matmul,
}

#: (module, name) -> error rule, for ufuncs of other libraries. Looked up by the module's
#: name so that loading the error model does not import them (scipy.special costs 0.3 s):
#: code that calls scipy.special.erf has imported scipy.special already.
FOREIGN_UFUNC_RULES: dict[tuple[str, str], Callable[..., Any]] = {
    ("scipy.special", "erf"): _smooth(
        lambda x, y: _TWO_OVER_ROOT_PI * np.exp(-x * x), TRANSCENDENTAL_ULPS
    ),
}


def rule_of(ufunc: np.ufunc) -> Callable[..., Any] | None:
    """The error rule of a ufunc: numpy's from UFUNC_RULES, another library's from
    FOREIGN_UFUNC_RULES if that library is loaded and this is its ufunc; else None."""
    rule = UFUNC_RULES.get(ufunc)
    if rule is not None:
        return rule
    for (module, name), foreign in FOREIGN_UFUNC_RULES.items():
        loaded = sys.modules.get(module)
        if loaded is not None and getattr(loaded, name, None) is ufunc:
            return foreign
    return None


#: Rules whose errors hold no NaN by construction (they make an unbounded error inf).
NAN_FREE_RULES: frozenset[Callable[..., Any]] = frozenset({_multiply})
