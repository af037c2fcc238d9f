"""`Tracked`: an array value with a first-order bound on its absolute error.

numpy calls on a Tracked array go through its two protocols: ufuncs to the rows of
`gradcheck.core.ufunc_rules` (`rule_of`), array functions to `FUNCTION_RULES`, which
`gradcheck.core.array_rules` fills when it is imported. Import Tracked and `track` from
`gradcheck.core.tolerance`, which loads both tables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin
from numpy.typing import ArrayLike, DTypeLike

from gradcheck.core.events import record
from gradcheck.core.expansions import Bounds, distinct
from gradcheck.core.rounding import CORRECTLY_ROUNDED_ULPS, abs64, ulps_error, unit_roundoff
from gradcheck.core.ufunc_rules import NAN_FREE_RULES, rule_of

Order = Literal["K", "A", "C", "F"]

#: numpy function -> its rule on Tracked arrays (filled by `gradcheck.core.array_rules`).
FUNCTION_RULES: dict[Any, Callable[..., Any]] = {}


def implements(*functions: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a rule for numpy functions in FUNCTION_RULES."""

    def register(implementation: Callable[..., Any]) -> Callable[..., Any]:
        for function in functions:
            FUNCTION_RULES[function] = implementation
        return implementation

    return register


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
        return FUNCTION_RULES[np.sum](self, axis=axis, dtype=dtype, keepdims=keepdims)

    # methods of ndarray that layer code calls (each the rule of its numpy function) --------
    def __setitem__(self, key: Any, value: Any) -> None:
        """Assign into the value and the error alike; storing a wider value (a float64
        array or a Python float into float32) rounds, and is charged u · |stored|."""
        if isinstance(key, Tracked):
            key = key.value
        plain = operand_value(value)
        if not self.value.flags.writeable:
            self.value = self.value.copy()
        self.value[key] = plain
        stored = self.value[key]
        error = np.broadcast_to(
            np.asarray(operand_error(value, self.dtype), np.float64), np.shape(stored)
        )
        if np.issubdtype(self.dtype, np.inexact) and np.result_type(plain) != self.dtype:
            error = error + ulps_error(np.asarray(stored), CORRECTLY_ROUNDED_ULPS)
        errors = np.array(np.broadcast_to(self.error, self.shape), dtype=np.float64)
        errors[key] = error
        self.error = errors

    def copy(self, order: Order = "K") -> Tracked:
        return Tracked(self.value.copy(order=order), np.array(self.error, dtype=np.float64))

    def dot(self, other: Any) -> Any:
        return FUNCTION_RULES[np.dot](self, other)

    def mean(self, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Tracked:
        return FUNCTION_RULES[np.mean](self, axis=axis, dtype=dtype, keepdims=keepdims)

    def var(
        self, axis: Any = None, dtype: Any = None, ddof: int = 0, keepdims: bool = False
    ) -> Any:
        return FUNCTION_RULES[np.var](self, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)

    def std(
        self, axis: Any = None, dtype: Any = None, ddof: int = 0, keepdims: bool = False
    ) -> Any:
        return FUNCTION_RULES[np.std](self, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tracked:
        return FUNCTION_RULES[np.max](self, axis=axis, keepdims=keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> Tracked:
        return FUNCTION_RULES[np.min](self, axis=axis, keepdims=keepdims)

    def argmax(self, axis: Any = None) -> Any:
        return FUNCTION_RULES[np.argmax](self, axis=axis)

    def argmin(self, axis: Any = None) -> Any:
        return FUNCTION_RULES[np.argmin](self, axis=axis)

    def clip(self, a_min: Any = None, a_max: Any = None) -> Any:
        return FUNCTION_RULES[np.clip](self, a_min, a_max)

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
        rounding = (
            0.0 if value.dtype == self.value.dtype else ulps_error(value, CORRECTLY_ROUNDED_ULPS)
        )
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
            return add_at(*inputs)
        operands = inputs + (out or ())
        if not all(isinstance(x, OPERANDS) for x in operands):
            return NotImplemented  # let other array types (autograd's boxes) handle it
        if method != "__call__":
            return NotImplemented
        values = [operand_value(x) for x in inputs]
        with np.errstate(all="ignore"):
            result = ufunc(*values, **kwargs)
            if result.dtype.kind not in "fc":  # bool, int: not inexact
                return result  # comparisons and predicates carry no rounding error
            rule = rule_of(ufunc)
            if rule is None:
                return NotImplemented
            errors = [operand_error(x, result.dtype) for x in inputs]
            error = rule(values, errors, result)
            if out is None:
                if rule in NAN_FREE_RULES:
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
        implementation = FUNCTION_RULES.get(func)
        if implementation is None:
            return NotImplemented
        return implementation(*args, **kwargs)


OPERANDS: tuple[type, ...] = (Tracked, np.ndarray, np.generic, int, float, bool, list)


def operand_value(x: Any) -> Any:
    return x.value if isinstance(x, Tracked) else np.asarray(x) if isinstance(x, list) else x


def operand_error(x: Any, dtype: DTypeLike = np.float64) -> Any:
    """The error of an operand. A Python float is exact as written, but NEP 50 rounds it
    to the array's dtype before the operation: 0.01 * float32 works with float32(0.01)."""
    if isinstance(x, Tracked):
        return x.error
    if isinstance(x, float) and np.dtype(dtype) != np.float64:
        return abs(x - float(np.asarray(x, dtype=dtype)))
    return 0.0


def _frozen(error: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """error broadcast to shape, read-only (errors are shared between Tracked arrays)."""
    if error.shape != shape:
        return np.broadcast_to(error, shape)
    error = error.view()
    error.flags.writeable = False
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


def add_at(target: Any, indices: Any, addend: Any = 0.0) -> None:
    """np.add.at(target, indices, addend) in place: each position's k additions of terms
    with magnitudes m_i cost at most γ_k Σ m_i beside the terms' own errors."""
    if not isinstance(target, Tracked):
        raise TypeError("np.add.at needs a Tracked target to accumulate into")
    addend = as_tracked(addend)
    hits = np.zeros(target.shape)
    np.add.at(hits, indices, np.ones(addend.shape))
    magnitude = abs64(target.value)
    np.add.at(magnitude, indices, abs64(addend.value))
    error = np.array(target.error, dtype=np.float64)
    np.add.at(error, indices, np.broadcast_to(addend.error, addend.shape))
    unit = unit_roundoff(target.dtype)
    target.error = error + hits * unit / (1.0 - hits * unit) * magnitude
    np.add.at(target.value, indices, addend.value)


def as_tracked(x: Any) -> Tracked:
    return x if isinstance(x, Tracked) else Tracked(np.asarray(x))


def track(x: ArrayLike, radius: ArrayLike = 0.0) -> Tracked:
    """Wrap an input: its value is exact unless a radius of uncertainty is given."""
    value = np.asarray(x)
    return Tracked(value, np.broadcast_to(np.asarray(radius, dtype=np.float64), value.shape))
