"""The error model: every bound gradcheck compares against is derived here, none is tuned.

A hand-written gradient g, computed in the case's dtype, is held against a reference r
computed in float64. A correct g can still differ from r by rounding, so each comparison
allows, entry by entry,

    |g - r|  <=  rounding(g) + error(r)

**rounding(g)** is a running error bound (Wilkinson's running error analysis). The
hand-written rules are evaluated on `Tracked` arrays, which carry beside every value a
first-order bound on its absolute error and propagate it operation by operation, with
u = eps/2 the unit roundoff of the result's dtype and γ_m = m·u / (1 - m·u):

    x ± y        e_x + e_y + u|x ± y|
    x · y        |y| e_x + |x| e_y + e_x e_y + u'|x||y|         u' = u (1 + 2u) >= u
    x / y        (e_x + |x/y| e_y) / (|y| - e_y) + u|x/y|
    φ(x)         |φ'(x)| e_x + c_φ · eps · |φ(x)|     c_φ: the library's accuracy in ulps
    Σ_k x_k      Σ_k e_k + γ_(K-1) Σ_k |x_k|          (any summation order; Higham 4.2)
    x·y (dot)    Σ_k (|x_k| e_y + e_x |y_k|) + γ_K Σ_k |x_k y_k|   (Higham 3.1)

A rounding that may underflow adds η, the smallest subnormal, beside these (Higham's model
fl(x op y) = (x op y)(1 + δ) + η). The product's rounding is charged to the operands'
magnitudes rather than to the result's (u'|x||y| bounds u|x y| and, but for u η/2, also
u|fl(x y)|; see `_multiply`), so that each factor of its bound has the shape of an
operand: a product that broadcasts its operands to a larger result, such as the outer
products B_n = u_n v_nᵀ of the dense layers, keeps its error bound and the magnitude bound
(1 + 2u)|x||y| + η as those factors, and a contraction of it (einsum, np.dot, tensordot)
contracts the factors instead of |B| and e_B. Neither is formed at the result's size
unless something reads the error.

Inputs are exact (their error is 0): the float64 references see the very same numbers.
Transcendental functions are charged 4 ulps: numpy documents its SIMD float32 and float64
loops for exp, log, sin, cos and tanh at under 4 ulp, glibc's libm tables list at most
3 ulp for the functions used here on x86-64, and Cephes' erf (used by SciPy) has a peak
relative error of 3.7e-16 in float64 (under 2 ulp).

**error(r)** depends on the oracle and is computed in `gradcheck.core.oracles`:

- autograd evaluates the chain rule for the same forward in float64, on Tracked arrays:
  it is charged the running error bound of its own evaluation, by the same rules.
- finite differences: the Richardson step-halving estimate |D(h) - D(2h)| (at least three
  times the leading truncation error of D(h), which itself exceeds that of the
  extrapolated value) plus the rounding of the function values divided by the step.
- the dense product shares B with the compact form; only the order of the sums differs,
  so the two can differ by at most 2 γ_(N+J) Σ_n |δ_nj| |B_njp| (see `summation_bound`).

The same `Tracked` arithmetic also finds non-differentiable points: evaluated with an
error equal to the finite-difference step instead of rounding, an activation's declared
kink, a tie between maxout pieces or a norm at zero that falls inside the uncertainty is
recorded as an `Event`, and the checker reports the case as non-differentiable.

**Code the rules do not cover.** A running bound is rigorous only while every operation
goes through a rule. Operations without one raise TypeError; a conversion to a plain
array (``np.asarray`` on a Tracked value whose error is not zero, or assigning one into a
plain array) drops the error, and is recorded as an event of kind "untracked" so that a
caller knows the bound is incomplete. `gradcheck.user.api` runs hand-written code of users
on Tracked arrays first and, where that fails or is lossy, falls back to a documented
model instead (see "The fallback model for user code" below).

**The fallback model for user code** (an assumption, not a theorem; `gradcheck.user.api`
says in every result which model each side used). When a user's backward, or autograd's
evaluation of a user's forward, cannot be bounded by running it on Tracked arrays, the
side without a running bound is charged the sum of

- the running bound of the other side, re-scaled to its own dtype (u_dtype / u_other):
  both evaluate the same chain rule for the same forward, so they meet the same
  magnitudes and cancellations;
- γ_m(dtype) · M, with M_k = Σ_o |δ_o| |∂f_o/∂x_k| the magnitude of the terms summed into
  gradient entry k (the Jacobian from central differences) and m the number of forward
  inputs and outputs, a generous count of the roundings one entry's chain rule adds up;
- for the hand-written side, its rounding as measured by running the same code in a
  higher precision (float64 for float32, x86's 80-bit long double for float64, where
  numpy has it): |g - g_hi| / (1 - u_hi/u), which bounds the error of g if the error of
  g_hi is u_hi/u times as large (the same operations in both precisions).

A forward without a running bound (finite differences need its rounding) is charged
γ_m(float64) · |f| per output plus its measured rounding, the same way. Where the
hand-written side does have a running bound, it is charged the larger of that bound and
the measured rounding: a constant rounded to float32 in a plain array
(``np.where(x > 0, 1.0, 0.1).astype(np.float32)``) is invisible to the running bound,
while the references use the float64 constant of the same code.

This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.special
from numpy.lib.mixins import NDArrayOperatorsMixin
from numpy.typing import ArrayLike, DTypeLike, NDArray

from gradcheck.core import compact
from gradcheck.core.expansions import (
    Bounds,
    Expansion,
    aligned,
    contract,
    distinct,
    explicit_subscripts,
    fold,
    is_zero,
    plus,
    spare_letters,
    times,
)

FloatArray = NDArray[np.floating[Any]]
Order = Literal["K", "A", "C", "F"]

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
    bounds = unit_jacobian._bounds if isinstance(unit_jacobian, Tracked) else None
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
            magnitude_delta, np.absolute(value_of(unit_jacobian), dtype=np.float64)
        )
    rounding = gamma(n + j, unit_jacobian.dtype) * magnitude
    return 2.0 * (rounding + underflow(n + j, unit_jacobian.dtype))


def underflow(operations: int, dtype: DTypeLike) -> float:
    """What `operations` products and sums may lose to underflow: a smallest subnormal
    each (Higham's model: fl(x op y) = (x op y)(1 + δ) + η)."""
    return operations * float(np.finfo(dtype).smallest_subnormal)


# ----------------------------------------------------------------------------------------
# Events: kinks, ties and singularities met while evaluating on Tracked arrays
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Event:
    """Points where an evaluated function is not differentiable within its uncertainty.

    kind is "kink" (a declared kink of an activation), "tie" (two candidates of a max
    within each other's uncertainty), "singularity" (a square root, division or logarithm
    of a value that may be zero), "domain" (a value outside an activation's safe domain)
    or "untracked" (a Tracked value with a nonzero error converted to a plain array: the
    running bound of whatever is computed from it is incomplete).
    mask marks the flagged elements of the operation's result; value and radius give, for
    each element, the distance to the point (or the value) and its uncertainty.
    """

    kind: str
    where: str
    mask: np.ndarray
    value: np.ndarray
    radius: np.ndarray

    @property
    def index(self) -> tuple[int, ...]:
        """The first flagged element."""
        return tuple(int(i) for i in np.argwhere(self.mask)[0])

    def cases(self, count: int) -> np.ndarray:
        """Which of `count` stacked cases (the leading axis) the event touches; all of
        them when the operation's result does not carry the case axis."""
        if self.mask.ndim >= 1 and self.mask.shape[0] == count:
            return np.asarray(self.mask.reshape(count, -1).any(axis=1))
        return np.full(count, bool(self.mask.any()))

    def describe(self, case: int | None = None, count: int | None = None) -> str:
        """One line on the first flagged element; with case and count, on the first of
        that one of `count` stacked cases (when the result carries the case axis)."""
        mask, value, radius = self.mask, self.value, self.radius
        carries_cases = count is not None and mask.ndim >= 1 and mask.shape[0] == count
        if case is not None and carries_cases and mask[case].any():
            mask, value, radius = mask[case], value[case], radius[case]
        index = tuple(int(i) for i in np.argwhere(mask)[0])
        at = ", ".join(str(i) for i in index)
        if self.kind == "domain":
            return f"{self.where} at index ({at}): value {value[index]:.6g}"
        return (
            f"{self.where} at index ({at}): value {value[index]:.6g} is within "
            f"{radius[index]:.3g} of the point"
        )


_events: contextvars.ContextVar[list[Event] | None] = contextvars.ContextVar(
    "gradcheck_events", default=None
)


@contextmanager
def recording() -> Iterator[list[Event]]:
    """Collect the events met by Tracked arithmetic inside the block."""
    events: list[Event] = []
    token = _events.set(events)
    try:
        yield events
    finally:
        _events.reset(token)


def record(kind: str, where: str, mask: np.ndarray, value: ArrayLike, radius: ArrayLike) -> None:
    """Record the elements flagged by mask (if any) as an Event."""
    events = _events.get()
    if events is None or not np.any(mask):
        return
    mask = np.asarray(mask)
    value = np.broadcast_to(np.asarray(value, dtype=np.float64), mask.shape)
    radius = np.broadcast_to(np.asarray(radius, dtype=np.float64), mask.shape)
    events.append(Event(kind, where, mask, value, radius))


# ----------------------------------------------------------------------------------------
# Tracked arrays
# ----------------------------------------------------------------------------------------


class Tracked(NDArrayOperatorsMixin):
    """An array value with a first-order bound on its absolute error.

    numpy functions and operators applied to a Tracked array return Tracked arrays whose
    error follows the rules in the module docstring. Functions without a rule raise
    TypeError rather than silently dropping the error. Comparisons return plain boolean
    arrays. The error is kept in float64 whatever the value's dtype; that of a product
    larger than its operands is kept as operand-sized factors until read
    (`gradcheck.core.expansions.Bounds`).
    """

    __slots__ = ("_bounds", "_error", "value")

    value: np.ndarray
    _error: np.ndarray | None
    _bounds: Bounds | None

    def __init__(self, value: ArrayLike, error: ArrayLike | None = None) -> None:
        self.value = np.asarray(value)
        if error is None:
            self.error = np.zeros(self.value.shape)
        else:
            error = np.asarray(error, dtype=np.float64)
            # Errors are >= 0, so their sum is NaN exactly when one of them is: one pass
            # without a temporary, over each stored entry once (a radius given as a
            # scalar is one number however large the value).
            if np.isnan(np.add.reduce(distinct(error), axis=None)):
                error = np.where(np.isnan(error), np.inf, error)  # unbounded: inf
            self.error = _frozen(error, self.value.shape)

    @classmethod
    def _proven(cls, value: ArrayLike, error: Any) -> Tracked:
        """A Tracked array whose rule has shown its error to hold no NaN, which skips the
        result-sized scan of __init__; given `Bounds`, the error is formed only when read
        (a contraction uses the factors instead)."""
        tracked = cls.__new__(cls)
        tracked.value = np.asarray(value)
        if isinstance(error, Bounds):
            tracked._error, tracked._bounds = None, error
        else:
            tracked.error = _frozen(np.asarray(error, dtype=np.float64), tracked.value.shape)
        return tracked

    @property
    def error(self) -> np.ndarray:
        """The bound on the absolute error, entry by entry (float64, read-only)."""
        if self._error is None:
            assert self._bounds is not None
            error = np.asarray(self._bounds.error.evaluate(), dtype=np.float64)
            self._error = _frozen(error, self.value.shape)
        return self._error

    @error.setter
    def error(self, error: np.ndarray) -> None:
        self._error, self._bounds = error, None

    # array-like attributes ---------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def ndim(self) -> int:
        return self.value.ndim

    @property
    def size(self) -> int:
        return self.value.size

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.value.dtype

    @property
    def T(self) -> Tracked:  # noqa: N802 - numpy's name
        return Tracked(self.value.T, self.error.T)

    def __len__(self) -> int:
        return len(self.value)

    def __getitem__(self, key: Any) -> Tracked:
        return Tracked(self.value[key], self.error[key])

    def reshape(self, *shape: Any, **kwargs: Any) -> Tracked:
        return Tracked(self.value.reshape(*shape, **kwargs), self.error.reshape(*shape, **kwargs))

    def sum(self, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Tracked:
        return _sum(self, axis=axis, dtype=dtype, keepdims=keepdims)

    # methods of ndarray that common layer code calls ---------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        """Assign into the value and the error alike; storing a wider value (a float64
        array or a Python float into float32) rounds, and is charged u · |stored|."""
        if isinstance(key, Tracked):
            key = key.value
        plain = _value(value)
        if not self.value.flags.writeable:
            self.value = self.value.copy()
        self.value[key] = plain
        stored = self.value[key]
        error = np.broadcast_to(np.asarray(_error(value, self.dtype), np.float64), np.shape(stored))
        if np.issubdtype(self.dtype, np.inexact) and np.result_type(plain) != self.dtype:
            error = error + _ulps(np.asarray(stored), CORRECTLY_ROUNDED_ULPS)
        errors = np.array(np.broadcast_to(self.error, self.shape), dtype=np.float64)
        errors[key] = error
        self.error = errors

    def copy(self, order: Order = "K") -> Tracked:
        return Tracked(self.value.copy(order=order), np.array(self.error, dtype=np.float64))

    def dot(self, other: Any) -> Any:
        return _dot(self, other)

    def mean(self, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Tracked:
        return _mean(self, axis=axis, dtype=dtype, keepdims=keepdims)

    def var(
        self, axis: Any = None, dtype: Any = None, ddof: int = 0, keepdims: bool = False
    ) -> Any:
        return _var(self, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)

    def std(
        self, axis: Any = None, dtype: Any = None, ddof: int = 0, keepdims: bool = False
    ) -> Any:
        return _std(self, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tracked:
        return _max(self, axis=axis, keepdims=keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> Tracked:
        return _min(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis: Any = None) -> Any:
        return _argmax(self, axis=axis)

    def argmin(self, axis: Any = None) -> Any:
        return _argmin(self, axis=axis)

    def clip(self, a_min: Any = None, a_max: Any = None) -> Any:
        return _clip(self, a_min, a_max)

    def ravel(self, order: Order = "C") -> Tracked:
        return Tracked(self.value.ravel(order), np.asarray(self.error).ravel(order))

    def flatten(self, order: Order = "C") -> Tracked:
        return Tracked(self.value.flatten(order), np.array(self.error).flatten(order))

    def squeeze(self, axis: Any = None) -> Tracked:
        return Tracked(self.value.squeeze(axis), self.error.squeeze(axis))

    def transpose(self, *axes: Any) -> Tracked:
        order = axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes
        order = order or None
        return Tracked(np.transpose(self.value, order), np.transpose(self.error, order))

    def swapaxes(self, axis1: int, axis2: int) -> Tracked:
        return Tracked(self.value.swapaxes(axis1, axis2), self.error.swapaxes(axis1, axis2))

    def astype(self, dtype: DTypeLike) -> Tracked:
        value = self.value.astype(dtype)
        rounding = 0.0 if value.dtype == self.value.dtype else _ulps(value, CORRECTLY_ROUNDED_ULPS)
        return Tracked(value, self.error + rounding)

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        # Only explicit conversions reach here (autograd's einsum rule converts its operands
        # to read their shapes); numpy functions still dispatch through __array_function__
        # and refuse, rather than silently dropping the error. A conversion that drops a
        # nonzero error is recorded, so that a caller knows the bound became incomplete.
        error = np.asarray(self.error)
        if error.size and np.any(error):
            record("untracked", "conversion to a plain array", error != 0, self.value, error)
        return np.asarray(self.value, dtype=dtype)

    def view(self, cls: type) -> Tracked:
        # autograd's concatenate calls .view(ndarray) on numpy's result.
        return self

    def __repr__(self) -> str:
        return f"Tracked({self.value!r}, error={self.error!r})"

    # numpy protocols -----------------------------------------------------------------------
    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        out = kwargs.pop("out", None)
        if method == "at" and ufunc is np.add and isinstance(inputs[0], Tracked):
            return _add_at(*inputs)
        operands = inputs + (out or ())
        if not all(isinstance(x, _OPERANDS) for x in operands):
            return NotImplemented  # let other array types (autograd's boxes) handle it
        if method != "__call__":
            return NotImplemented
        values = [_value(x) for x in inputs]
        with np.errstate(all="ignore"):
            result = ufunc(*values, **kwargs)
            if result.dtype == np.bool_ or not np.issubdtype(result.dtype, np.inexact):
                return result  # comparisons and predicates carry no rounding error
            rule = _UFUNC_RULES.get(ufunc)
            if rule is None:
                return NotImplemented
            errors = [_error(x, result.dtype) for x in inputs]
            error = rule(values, errors, result)
            if out is None:
                if rule in _NAN_FREE:
                    return Tracked._proven(result, error)
                return Tracked(result, error)
            if isinstance(error, Bounds):
                error = error.error.evaluate()
        # In place (autograd accumulates gradients with x += y): write into out.
        (target,) = out
        if not isinstance(target, Tracked):
            return NotImplemented
        target.value[...] = result
        target.error = np.array(np.broadcast_to(error, target.shape), dtype=np.float64)
        return target

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        implementation = _FUNCTION_RULES.get(func)
        if implementation is None:
            return NotImplemented
        return implementation(*args, **kwargs)


_OPERANDS: tuple[type, ...] = (Tracked, np.ndarray, np.generic, int, float, bool, list)


def _value(x: Any) -> Any:
    return x.value if isinstance(x, Tracked) else np.asarray(x) if isinstance(x, list) else x


def _error(x: Any, dtype: DTypeLike = np.float64) -> Any:
    """The error of an operand. A Python float is exact as written, but NEP 50 rounds it
    to the array's dtype before the operation: 0.01 * float32 works with float32(0.01)."""
    if isinstance(x, Tracked):
        return x.error
    if isinstance(x, float) and np.dtype(dtype) != np.float64:
        return abs(x - float(np.asarray(x, dtype=dtype)))
    return 0.0


def _abs64(x: Any) -> FloatArray:
    """|x| in float64, a new array the caller may overwrite; one pass, without first
    copying a float32 x to float64."""
    return np.absolute(x, dtype=np.float64)


def _frozen(error: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """error broadcast to shape, read-only (errors are shared between Tracked arrays)."""
    if error.shape != shape:
        return np.broadcast_to(error, shape)
    error = error.view()
    error.flags.writeable = False
    return error


def _ulps(result: np.ndarray, ulps: float) -> FloatArray:
    """ulps · eps · |result| + η: the error of an operation accurate to `ulps` ulps.

    η, the smallest subnormal number, covers results that underflow (Higham's model
    fl(x op y) = (x op y)(1 + δ) + η): exp(-200) is 0 in float32 but 1e-87 in float64.
    """
    if ulps == 0.0 or not np.issubdtype(result.dtype, np.inexact):
        return np.zeros(np.shape(result))
    info = np.finfo(result.dtype)
    error = _abs64(result)  # a new array: scaled and shifted in place, not through copies
    error *= ulps * float(info.eps)
    error += float(info.smallest_subnormal)
    return error


def value_of(x: Any) -> Any:
    """The plain value of x: unwraps Tracked arrays and autograd boxes, leaves others alone.

    Layers use it for quantities that cancel out of the result (the shift that keeps a
    softmax from overflowing), so that neither autograd nor the error model sees them.
    """
    if isinstance(x, Tracked):
        return x.value
    from autograd.tracer import getval

    return getval(x)


# ---- ufunc rules: (values, errors, result) -> propagated error ----------------------------


def _smooth(derivative: Callable[[FloatArray, FloatArray], Any], ulps: float) -> Callable[..., Any]:
    """Rule for a differentiable unary function: |φ'(x)| e_x + ulps · eps · |φ(x)|."""

    def rule(values: list[Any], errors: list[Any], result: np.ndarray) -> Any:
        x = np.asarray(values[0], dtype=np.float64)
        slope = np.abs(derivative(x, np.asarray(result, dtype=np.float64)))
        return plus(_ulps(result, ulps), times(slope, errors[0]))

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
        return plus(_ulps(result, ulps), np.where(near, np.inf, slope * e))

    return rule


def _add_at(target: Any, indices: Any, addend: Any = 0.0) -> None:
    """np.add.at(target, indices, addend) in place: each position's k additions of terms
    with magnitudes m_i cost at most γ_k Σ m_i beside the terms' own errors."""
    if not isinstance(target, Tracked):
        raise TypeError("np.add.at needs a Tracked target to accumulate into")
    addend = _tracked(addend)
    hits = np.zeros(target.shape)
    np.add.at(hits, indices, np.ones(addend.shape))
    magnitude = _abs64(target.value)
    np.add.at(magnitude, indices, _abs64(addend.value))
    error = np.array(target.error, dtype=np.float64)
    np.add.at(error, indices, np.broadcast_to(addend.error, addend.shape))
    unit = unit_roundoff(target.dtype)
    target.error = error + hits * unit / (1.0 - hits * unit) * magnitude
    np.add.at(target.value, indices, addend.value)


def _add(values: list[Any], errors: list[Any], result: np.ndarray) -> Any:
    # Added into the rounding term, a new array of the result's shape: no temporaries.
    return plus(plus(_ulps(result, CORRECTLY_ROUNDED_ULPS), errors[0]), errors[1])


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
            aligned(_abs64(np.asarray(distinct(value)).astype(dtype, copy=False)), ndim),
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
    a, b = _abs64(values[0]), _abs64(values[1])
    ea, eb = np.asarray(errors[0], np.float64), np.asarray(errors[1], np.float64)
    near = (b <= eb) & np.isfinite(b)  # an overflowed divisor is huge, not near zero
    record("singularity", "division", np.broadcast_to(near, result.shape), values[1], eb)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = (ea + times(_abs64(result), eb)) / np.where(near, 1.0, b - eb)
    overflowed = (a + ea) / float(np.finfo(result.dtype).max)
    spread = np.where(np.isinf(b), overflowed, spread)
    return plus(_ulps(result, CORRECTLY_ROUNDED_ULPS), np.where(near, np.inf, spread))


def _power(values: list[Any], errors: list[Any], result: np.ndarray) -> Any:
    if not np.all(errors[1] == 0):
        raise TypeError("Tracked supports x ** c only for a constant exponent c")
    x, c = np.asarray(values[0], dtype=np.float64), np.asarray(values[1], dtype=np.float64)
    slope = np.abs(c * x ** (c - 1.0))
    ulps = CORRECTLY_ROUNDED_ULPS if np.all(c == 2.0) else TRANSCENDENTAL_ULPS
    return plus(_ulps(result, ulps), times(slope, errors[0]))


def _extremum(values: list[Any], errors: list[Any], result: np.ndarray) -> Any:
    # Which operand wins may be uncertain only at a kink, which the caller declares.
    return np.maximum(errors[0], errors[1]) + 0.0 * _abs64(result)


def _logaddexp(values: list[Any], errors: list[Any], result: np.ndarray) -> Any:
    a, b = (np.asarray(v, dtype=np.float64) for v in values)
    y = np.asarray(result, dtype=np.float64)
    error = plus(_ulps(result, TRANSCENDENTAL_ULPS), times(np.exp(a - y), errors[0]))
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
    magnitude_a, magnitude_b = _abs64(a), _abs64(b)
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
_UFUNC_RULES: dict[np.ufunc, Callable[..., Any]] = {
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
    scipy.special.erf: _smooth(
        lambda x, y: _TWO_OVER_ROOT_PI * np.exp(-x * x), TRANSCENDENTAL_ULPS
    ),
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

#: Rules whose errors hold no NaN by construction (they make an unbounded error inf).
_NAN_FREE: frozenset[Callable[..., Any]] = frozenset({_multiply})


# ---- array functions ----------------------------------------------------------------------

_FUNCTION_RULES: dict[Any, Callable[..., Any]] = {}


def _implements(*functions: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(implementation: Callable[..., Any]) -> Callable[..., Any]:
        for function in functions:
            _FUNCTION_RULES[function] = implementation
        return implementation

    return register


def _tracked(x: Any) -> Tracked:
    return x if isinstance(x, Tracked) else Tracked(np.asarray(x))


def _structural(function: Callable[..., Any]) -> Callable[..., Any]:
    """Rearranging elements moves values and errors alike and rounds nothing."""

    def implementation(a: Any, *args: Any, **kwargs: Any) -> Tracked:
        a = _tracked(a)
        return Tracked(function(a.value, *args, **kwargs), function(a.error, *args, **kwargs))

    return implementation


for _function in (
    np.reshape,
    np.moveaxis,
    np.swapaxes,
    np.transpose,
    np.expand_dims,
    np.squeeze,
    np.broadcast_to,
    np.atleast_1d,
    np.atleast_2d,
    np.repeat,
    np.tile,
    np.diagonal,
    np.real,
    np.roll,
    np.flip,
    np.ravel,
):
    _implements(_function)(_structural(_function))


@_implements(np.take_along_axis)
def _take_along_axis(a: Any, indices: Any, axis: Any = None) -> Tracked:
    a = _tracked(a)
    return Tracked(
        np.take_along_axis(a.value, indices, axis=axis),
        np.take_along_axis(a.error, indices, axis=axis),
    )


@_implements(np.shape)
def _shape(a: Any) -> tuple[int, ...]:
    return tuple(np.shape(_value(a)))


@_implements(np.ndim)
def _ndim(a: Any) -> int:
    return int(np.ndim(_value(a)))


def _constant_like_of(function: Any) -> Callable[..., Any]:
    """zeros_like and friends of a Tracked array: a Tracked array of exact constants, so
    that layer code filling it (dx = np.zeros_like(x); dx[mask] = ...) stays tracked.
    full_like's fill value rounds to the dtype like any Python float."""

    def implementation(a: Any, *args: Any, **kwargs: Any) -> Any:
        result = function(_value(a), *args, **kwargs)
        if not np.issubdtype(result.dtype, np.inexact):
            return result
        error: Any = 0.0
        if function is np.full_like:
            fill = args[0] if args else kwargs.get("fill_value", 0.0)
            error = _error(_value(fill), result.dtype)
        return Tracked(result, error)

    return implementation


for _constructor in (np.ones_like, np.zeros_like, np.empty_like, np.full_like):
    _FUNCTION_RULES[_constructor] = _constant_like_of(_constructor)


@_implements(np.copy)
def _copy(a: Any, *args: Any, **kwargs: Any) -> Tracked:
    return _tracked(a).copy()


@_implements(np.dot)
def _dot(a: Any, b: Any, out: Any = None) -> Any:
    """np.dot as the contraction it is: the last axis of a with the second-to-last of b
    (the only axis of a 1-D b), through the einsum rule."""
    if out is not None:
        raise TypeError("Tracked np.dot does not write into out=")
    a, b = _tracked(a), _tracked(b)
    if a.ndim == 0 or b.ndim == 0:
        return np.multiply(a, b)
    lead = spare_letters(a.ndim - 1 + max(b.ndim - 2, 0), exclude="yz")
    a_letters = "".join(lead[: a.ndim - 1]) + "z"
    if b.ndim == 1:
        b_letters, result = "z", a_letters[:-1]
    else:
        rest = "".join(lead[a.ndim - 1 :])
        b_letters, result = rest + "zy", a_letters[:-1] + rest + "y"
    return _einsum(f"{a_letters},{b_letters}->{result}", a, b)


@_implements(np.tensordot)
def _tensordot(a: Any, b: Any, axes: Any = 2) -> Tracked:
    """np.tensordot through the einsum rule: the paired axes are summed."""
    a, b = _tracked(a), _tracked(b)
    if isinstance(axes, int):
        pairs_a = list(range(a.ndim - axes, a.ndim))
        pairs_b = list(range(axes))
    else:
        first, second = axes
        pairs_a = [first] if isinstance(first, int) else list(first)
        pairs_b = [second] if isinstance(second, int) else list(second)
    pairs_a = [axis % a.ndim for axis in pairs_a]
    pairs_b = [axis % b.ndim for axis in pairs_b]
    letters = iter(spare_letters(a.ndim + b.ndim))
    a_letters = [next(letters) for _ in range(a.ndim)]
    b_letters = [next(letters) for _ in range(b.ndim)]
    for i, j in zip(pairs_a, pairs_b, strict=True):
        b_letters[j] = a_letters[i]
    result = [c for k, c in enumerate(a_letters) if k not in pairs_a]
    result += [c for k, c in enumerate(b_letters) if k not in pairs_b]
    subscripts = f"{''.join(a_letters)},{''.join(b_letters)}->{''.join(result)}"
    return _einsum(subscripts, a, b)


@_implements(np.outer)
def _outer(a: Any, b: Any, out: Any = None) -> Tracked:
    if out is not None:
        raise TypeError("Tracked np.outer does not write into out=")
    return _einsum("i,j->ij", _tracked(a).ravel(), _tracked(b).ravel())


@_implements(np.mean)
def _mean(
    a: Any, axis: Any = None, dtype: Any = None, keepdims: bool = False, **kwargs: Any
) -> Any:
    """The mean as numpy computes it, with the error of the sum divided by the count plus
    the rounding of that division."""
    a = _tracked(a)
    value = np.asarray(np.mean(a.value, axis=axis, dtype=dtype, keepdims=keepdims))
    total = _sum(a, axis=axis, dtype=dtype, keepdims=keepdims)
    count = a.value.size // max(value.size, 1)
    error = total.error / max(count, 1) + _ulps(value, CORRECTLY_ROUNDED_ULPS)
    return Tracked(value, error)


@_implements(np.var)
def _var(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    ddof: int = 0,
    keepdims: bool = False,
    **kwargs: Any,
) -> Any:
    """Σ (a - mean)² / (n - ddof), composed of operations that have rules."""
    a = _tracked(a) if dtype is None else _tracked(a).astype(dtype)
    centred = a - _mean(a, axis=axis, keepdims=True)
    total = _sum(centred * centred, axis=axis, keepdims=keepdims)
    count = a.value.size // max(np.size(total.value), 1)
    return np.divide(total, max(count - ddof, 0))


@_implements(np.std)
def _std(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    ddof: int = 0,
    keepdims: bool = False,
    **kwargs: Any,
) -> Any:
    return np.sqrt(_var(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims))


@_implements(np.vstack)
def _vstack(arrays: Any, **kwargs: Any) -> Tracked:
    return _concatenate([_atleast(a, 2) for a in arrays], axis=0, **kwargs)


@_implements(np.hstack)
def _hstack(arrays: Any, **kwargs: Any) -> Tracked:
    tracked = [_atleast(a, 1) for a in arrays]
    return _concatenate(tracked, axis=0 if tracked[0].ndim == 1 else 1, **kwargs)


def _atleast(a: Any, ndim: int) -> Tracked:
    a = _tracked(a)
    function = np.atleast_2d if ndim == 2 else np.atleast_1d
    return Tracked(function(a.value), function(a.error))


@_implements(np.concatenate)
def _concatenate(arrays: Any, axis: int = 0, **kwargs: Any) -> Tracked:
    tracked = [_tracked(a) for a in arrays]
    value = np.concatenate([t.value for t in tracked], axis=axis, **kwargs)
    error = np.concatenate([t.error for t in tracked], axis=axis)
    return Tracked(value, error)


@_implements(np.stack)
def _stack(arrays: Any, axis: int = 0, **kwargs: Any) -> Tracked:
    tracked = [_tracked(a) for a in arrays]
    value = np.stack([t.value for t in tracked], axis=axis, **kwargs)
    error = np.stack([t.error for t in tracked], axis=axis)
    return Tracked(value, error)


@_implements(np.where)
def _where(condition: Any, x: Any, y: Any) -> Tracked:
    condition = np.asarray(_value(condition)).astype(bool)  # autograd's where(x, x, 1)
    x, y = _tracked(x), _tracked(y)
    value = np.where(condition, x.value, y.value)
    error = np.where(
        condition, np.broadcast_to(x.error, x.shape), np.broadcast_to(y.error, y.shape)
    )
    return Tracked(value, np.broadcast_to(error, value.shape))


@_implements(np.clip)
def _clip(a: Any, a_min: Any, a_max: Any, **kwargs: Any) -> Any:
    return np.minimum(np.maximum(a, a_min), a_max)


@_implements(np.sum)
def _sum(a: Any, axis: Any = None, dtype: Any = None, keepdims: bool = False, **kwargs: Any) -> Any:
    a = _tracked(a)
    value = np.sum(a.value, axis=axis, dtype=dtype, keepdims=keepdims)
    terms = a.value.size // max(np.size(value), 1)
    magnitude = np.sum(_abs64(a.value), axis=axis, keepdims=keepdims)
    error = (
        np.sum(a.error, axis=axis, keepdims=keepdims)
        + gamma(max(terms - 1, 0), np.result_type(value)) * magnitude
    )
    return Tracked(value, error)


def _last_axis(a: Tracked, axis: Any) -> Tracked:
    if axis is None:
        return a.reshape(-1)
    return Tracked(np.moveaxis(a.value, axis, -1), np.moveaxis(a.error, axis, -1))


@_implements(np.argmax)
def _argmax(a: Any, axis: Any = None, **kwargs: Any) -> Any:
    a = _tracked(a)
    _check_ties(_last_axis(a, axis), "max")
    return np.argmax(a.value, axis=axis, **kwargs)


@_implements(np.argmin)
def _argmin(a: Any, axis: Any = None, **kwargs: Any) -> Any:
    return _argmax(-_tracked(a), axis=axis, **kwargs)


@_implements(np.min, np.amin)
def _min(a: Any, axis: Any = None, keepdims: bool = False, **kwargs: Any) -> Tracked:
    """min(a) = -max(-a): negation is exact, so the rule of max carries over."""
    return -_max(-_tracked(a), axis=axis, keepdims=keepdims)


@_implements(np.max, np.amax)
def _max(a: Any, axis: Any = None, keepdims: bool = False, **kwargs: Any) -> Tracked:
    a = _tracked(a)
    moved = _last_axis(a, axis)
    best = _check_ties(moved, "max")
    value = np.take_along_axis(moved.value, best[..., None], axis=-1)[..., 0]
    chosen = np.take_along_axis(moved.error, best[..., None], axis=-1)
    # At a tie the true maximum may be a runner-up's: every candidate within reach of the
    # largest (gap <= both errors) bounds it, so |max a* - a_best| <= their largest error.
    gap = value.astype(np.float64)[..., None] - moved.value.astype(np.float64)
    reach = gap <= chosen + moved.error
    error = np.max(np.where(reach, moved.error, 0.0), axis=-1)
    if keepdims and axis is not None:
        value, error = np.expand_dims(value, axis), np.expand_dims(error, axis)
    return Tracked(value, error)


def _check_ties(a: Tracked, where: str) -> np.ndarray:
    """Record a tie when a runner-up lies within the uncertainty of the largest element."""
    best = np.argmax(a.value, axis=-1)
    top = np.take_along_axis(a.value, best[..., None], axis=-1).astype(np.float64)
    top_error = np.take_along_axis(a.error, best[..., None], axis=-1)
    gap = top - a.value.astype(np.float64)
    radius = top_error + a.error
    runner_up = np.ones(a.shape, dtype=bool)
    np.put_along_axis(runner_up, best[..., None], False, axis=-1)
    record(
        "tie", f"{where} over {a.shape[-1]} candidates", runner_up & (gap <= radius), gap, radius
    )
    return best


@_implements(np.einsum)
def _einsum(subscripts: str, *operands: Any, **kwargs: Any) -> Tracked:
    """Contraction: the first-order error of each operand plus γ_m of the magnitude,
    m = (number of summed terms) + (number of operands - 1) multiplications.

    With C the contraction (linear in each operand), M_k >= |x_k| and E_k >= e_k (E_k = 0
    for an exact operand) the bound is γ_m C(M_1, ..., M_K) + Σ_k C(M_1, ..., E_k, ..., M_K).
    It is evaluated with γ_m moved onto one operand h: C(..., γ_m M_h + E_h, ...) is the
    magnitude and h's error in one contraction, each other inexact operand adds one. h is
    the inexact operand with the fewest entries (any operand when all are exact). M_k and
    E_k are |x_k| and e_k, or the factors of `Bounds` (an outer product's), whose
    contraction never forms an array of x_k's size.
    """
    kwargs.pop("optimize", None)
    if "->" not in subscripts:
        raise TypeError("Tracked einsum needs explicit output subscripts ('...->...')")
    tracked = [_tracked(x) for x in operands]
    value = np.einsum(subscripts, *(t.value for t in tracked), **kwargs)
    inputs, output = explicit_subscripts(subscripts, [t.ndim for t in tracked])
    sizes: dict[str, int] = {}
    for letters, t in zip(inputs, tracked, strict=True):
        for letter, size in zip(letters, t.shape, strict=True):
            sizes[letter] = max(sizes.get(letter, 1), size)
    terms = math.prod(size for letter, size in sizes.items() if letter not in output)
    scale = gamma(terms + len(tracked) - 1, value.dtype)

    magnitudes: list[Expansion] = []
    errors: list[Expansion | None] = []
    for t in tracked:
        if t._bounds is not None:
            magnitudes.append(t._bounds.magnitude)
            errors.append(t._bounds.error)
        else:
            magnitudes.append(Expansion(((_abs64(distinct(t.value)),),)))
            error = distinct(t.error)
            errors.append(None if is_zero(error) else Expansion(((error,),)))
    inexact = {k: e for k, e in enumerate(errors) if e is not None}
    host = min(inexact or range(len(tracked)), key=lambda k: tracked[k].size)
    # A plain host's |x_h| is this call's own array, free to scale in place unless another
    # operand's error contraction still needs it.
    reuse = tracked[host]._bounds is None and len(inexact) <= 1
    folded = fold(magnitudes[host], errors[host], scale, reuse=reuse)

    def contraction(k: int, expansion: Expansion, offset: float = 0.0) -> Any:
        expansions = [*magnitudes[:k], expansion, *magnitudes[k + 1 :]]
        return contract(inputs, output, sizes, expansions, offset)

    underflow = terms * len(tracked) * float(np.finfo(value.dtype).smallest_subnormal)
    error = contraction(host, folded, underflow)
    for k, expansion in inexact.items():
        if k != host:
            error = plus(error, contraction(k, expansion))
    return Tracked(value, error)


def track(x: ArrayLike, radius: ArrayLike = 0.0) -> Tracked:
    """Wrap an input: its value is exact unless a radius of uncertainty is given."""
    value = np.asarray(x)
    return Tracked(value, np.broadcast_to(np.asarray(radius, dtype=np.float64), value.shape))


@_implements(np.result_type)
def _result_type(*arrays_and_dtypes: Any) -> np.dtype[Any]:
    return np.result_type(*(_value(a) for a in arrays_and_dtypes))


@_implements(np.iscomplexobj)
def _iscomplexobj(x: Any) -> bool:
    return bool(np.iscomplexobj(_value(x)))
