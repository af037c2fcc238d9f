"""Unit roundoff, chained roundings, underflow, and the bound between two evaluations of A.

The constants and small formulas every rule of the error model is written in (see
`gradcheck.core.tolerance` for the model itself): u = eps/2, γ_m = m·u / (1 - m·u)
(Higham 3.4), the smallest subnormal η that an underflowing rounding may lose, and the
accuracy charged to numpy's functions in ulps.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from gradcheck.core import compact
from gradcheck.core.expansions import Expansion, contract, explicit_subscripts

FloatArray = NDArray[np.floating[Any]]

#: ulps charged to a transcendental function (see the module docstring).
TRANSCENDENTAL_ULPS = 4.0
#: ulps charged to an IEEE-754 basic operation, which is correctly rounded.
CORRECTLY_ROUNDED_ULPS = 0.5


def unit_roundoff(dtype: DTypeLike) -> float:
    """u = eps / 2, the largest relative error of one correctly rounded operation."""
    return float(np.finfo(dtype).eps) / 2.0


def gamma(m: float, dtype: DTypeLike) -> float:
    """γ_m = m·u / (1 - m·u): the relative error bound of m chained roundings (Higham 3.4)."""
    mu = m * unit_roundoff(dtype)
    if mu >= 1.0:
        return math.inf
    return mu / (1.0 - mu)


def summation_bound(delta: ArrayLike, unit_jacobian: Any) -> FloatArray:
    """The largest difference between two evaluations of A = Σ_n diag(δ_n) B_n.

    Compact and dense products multiply the same numbers and differ only in the order
    of their sums (N over the batch, J - 1 exact zeros in each dense row), so each is
    within γ_(N+J) Σ_n |δ_nj| |B_njp| (plus what underflow may lose) of the exact sum,
    and the two within twice that. B may be Tracked: where it keeps the magnitude bound of
    an outer product as factors (`Bounds`), they stand in for |B|, and the sum is formed
    from them without an array of B's size.
    """
    delta = np.asarray(delta)
    n, j = delta.shape[-2:]
    magnitude_delta = np.absolute(delta, dtype=np.float64)
    bounds = getattr(unit_jacobian, "_bounds", None)  # a Tracked B kept as factors
    if bounds is not None:
        inputs, output = explicit_subscripts(
            "...nj,...njp->...jp", [delta.ndim, unit_jacobian.ndim]
        )
        sizes: dict[str, int] = {}
        for letters, shape in zip(inputs, (delta.shape, unit_jacobian.shape), strict=True):
            for letter, size in zip(letters, shape, strict=True):
                sizes[letter] = max(sizes.get(letter, 1), size)
        magnitudes = [Expansion(((magnitude_delta,),)), bounds.magnitude]
        magnitude = contract(inputs, output, sizes, magnitudes)
    else:
        magnitude = compact.diagonal_block_products(
            magnitude_delta,
            np.absolute(getattr(unit_jacobian, "value", unit_jacobian), dtype=np.float64),
        )
    rounding = gamma(n + j, unit_jacobian.dtype) * magnitude
    return 2.0 * (rounding + underflow(n + j, unit_jacobian.dtype))


def underflow(operations: int, dtype: DTypeLike) -> float:
    """What `operations` products and sums may lose to underflow: a smallest subnormal
    each (Higham's model: fl(x op y) = (x op y)(1 + δ) + η)."""
    return operations * float(np.finfo(dtype).smallest_subnormal)


def abs64(x: Any) -> FloatArray:
    """|x| in float64, a new array the caller may overwrite; one pass, without first
    copying a float32 x to float64."""
    return np.absolute(x, dtype=np.float64)


def ulps_error(result: np.ndarray, ulps: float) -> FloatArray:
    """ulps · eps · |result| + max(ulps, 1) · η: the error of an operation accurate to
    `ulps` ulps.

    η, the smallest subnormal number, covers results that underflow (Higham's model
    fl(x op y) = (x op y)(1 + δ) + η): exp(-200) is 0 in float32 but 1e-87 in float64.
    An ulp is at most eps·|r| for a normal result r and exactly η for a subnormal one, so
    `ulps` ulps are at most ulps·(eps·|r| + η): a function accurate to 4 ulps may be 4η
    off where its result is subnormal (sigmoid(-93) in float32), not η.
    """
    if ulps == 0.0 or result.dtype.kind not in "fc":  # not inexact: exact
        return np.zeros(np.shape(result))
    eps, smallest = _constants(result.dtype)
    error = abs64(result)  # a new array: scaled and shifted in place, not through copies
    error *= ulps * eps
    error += max(ulps, 1.0) * smallest
    return error


#: dtype -> (eps, smallest subnormal) as Python floats: np.finfo on every rounding costs
#: more than the rule's arithmetic on the small arrays of a user's example
_FLOAT_CONSTANTS: dict[np.dtype[Any], tuple[float, float]] = {}


def _constants(dtype: np.dtype[Any]) -> tuple[float, float]:
    found = _FLOAT_CONSTANTS.get(dtype)
    if found is None:
        info = np.finfo(dtype)
        found = _FLOAT_CONSTANTS[dtype] = (float(info.eps), float(info.smallest_subnormal))
    return found
