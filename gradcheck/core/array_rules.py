"""The error rules of numpy's array functions on Tracked arrays (einsum, sum, max, ...).

Each rule is registered with `@implements(np.function)` in `FUNCTION_RULES`; rearranging
functions (reshape, transpose, ...) move values and errors alike, reductions and
contractions charge their roundings by the formulas of `gradcheck.core.tolerance`.
Importing this module fills the table (`gradcheck.core.tolerance` does).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from gradcheck.core.events import record
from gradcheck.core.expansions import (
    Expansion,
    contract,
    distinct,
    explicit_subscripts,
    fold,
    is_zero,
    plus,
    spare_letters,
)
from gradcheck.core.rounding import CORRECTLY_ROUNDED_ULPS, abs64, gamma, ulps_error
from gradcheck.core.tracked import (
    FUNCTION_RULES,
    Tracked,
    as_tracked,
    implements,
    operand_error,
    operand_value,
)


def _structural(function: Callable[..., Any]) -> Callable[..., Any]:
    """Rearranging elements moves values and errors alike and rounds nothing."""

    def implementation(a: Any, *args: Any, **kwargs: Any) -> Tracked:
        a = as_tracked(a)
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
    implements(_function)(_structural(_function))


@implements(np.take_along_axis)
def _take_along_axis(a: Any, indices: Any, axis: Any = None) -> Tracked:
    a = as_tracked(a)
    return Tracked(
        np.take_along_axis(a.value, indices, axis=axis),
        np.take_along_axis(a.error, indices, axis=axis),
    )


@implements(np.shape)
def _shape(a: Any) -> tuple[int, ...]:
    return tuple(np.shape(operand_value(a)))


@implements(np.ndim)
def _ndim(a: Any) -> int:
    return int(np.ndim(operand_value(a)))


def _constant_like_of(function: Any) -> Callable[..., Any]:
    """zeros_like and friends of a Tracked array: a Tracked array of exact constants, so
    that layer code filling it (dx = np.zeros_like(x); dx[mask] = ...) stays tracked.
    full_like's fill value rounds to the dtype like any Python float."""

    def implementation(a: Any, *args: Any, **kwargs: Any) -> Any:
        result = function(operand_value(a), *args, **kwargs)
        if not np.issubdtype(result.dtype, np.inexact):
            return result
        error: Any = 0.0
        if function is np.full_like:
            fill = args[0] if args else kwargs.get("fill_value", 0.0)
            error = operand_error(operand_value(fill), result.dtype)
        return Tracked(result, error)

    return implementation


for _constructor in (np.ones_like, np.zeros_like, np.empty_like, np.full_like):
    FUNCTION_RULES[_constructor] = _constant_like_of(_constructor)


@implements(np.copy)
def _copy(a: Any, *args: Any, **kwargs: Any) -> Tracked:
    return as_tracked(a).copy()


@implements(np.dot)
def _dot(a: Any, b: Any, out: Any = None) -> Any:
    """np.dot as the contraction it is: the last axis of a with the second-to-last of b
    (the only axis of a 1-D b), through the einsum rule."""
    if out is not None:
        raise TypeError("Tracked np.dot does not write into out=")
    a, b = as_tracked(a), as_tracked(b)
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


@implements(np.tensordot)
def _tensordot(a: Any, b: Any, axes: Any = 2) -> Tracked:
    """np.tensordot through the einsum rule: the paired axes are summed."""
    a, b = as_tracked(a), as_tracked(b)
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


@implements(np.outer)
def _outer(a: Any, b: Any, out: Any = None) -> Tracked:
    if out is not None:
        raise TypeError("Tracked np.outer does not write into out=")
    return _einsum("i,j->ij", as_tracked(a).ravel(), as_tracked(b).ravel())


@implements(np.mean)
def _mean(
    a: Any, axis: Any = None, dtype: Any = None, keepdims: bool = False, **kwargs: Any
) -> Any:
    """The mean as numpy computes it, with the error of the sum divided by the count plus
    the rounding of that division."""
    a = as_tracked(a)
    value = np.asarray(np.mean(a.value, axis=axis, dtype=dtype, keepdims=keepdims))
    total = _sum(a, axis=axis, dtype=dtype, keepdims=keepdims)
    count = a.value.size // max(value.size, 1)
    error = total.error / max(count, 1) + ulps_error(value, CORRECTLY_ROUNDED_ULPS)
    return Tracked(value, error)


@implements(np.var)
def _var(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    ddof: int = 0,
    keepdims: bool = False,
    **kwargs: Any,
) -> Any:
    """Σ (a - mean)² / (n - ddof), composed of operations that have rules."""
    a = as_tracked(a) if dtype is None else as_tracked(a).astype(dtype)
    centred = a - _mean(a, axis=axis, keepdims=True)
    total = _sum(centred * centred, axis=axis, keepdims=keepdims)
    count = a.value.size // max(np.size(total.value), 1)
    return np.divide(total, max(count - ddof, 0))


@implements(np.std)
def _std(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    ddof: int = 0,
    keepdims: bool = False,
    **kwargs: Any,
) -> Any:
    return np.sqrt(_var(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims))


@implements(np.vstack)
def _vstack(arrays: Any, **kwargs: Any) -> Tracked:
    return _concatenate([_atleast(a, 2) for a in arrays], axis=0, **kwargs)


@implements(np.hstack)
def _hstack(arrays: Any, **kwargs: Any) -> Tracked:
    tracked = [_atleast(a, 1) for a in arrays]
    return _concatenate(tracked, axis=0 if tracked[0].ndim == 1 else 1, **kwargs)


def _atleast(a: Any, ndim: int) -> Tracked:
    a = as_tracked(a)
    function = np.atleast_2d if ndim == 2 else np.atleast_1d
    return Tracked(function(a.value), function(a.error))


@implements(np.concatenate)
def _concatenate(arrays: Any, axis: int = 0, **kwargs: Any) -> Tracked:
    tracked = [as_tracked(a) for a in arrays]
    value = np.concatenate([t.value for t in tracked], axis=axis, **kwargs)
    error = np.concatenate([t.error for t in tracked], axis=axis)
    return Tracked(value, error)


@implements(np.stack)
def _stack(arrays: Any, axis: int = 0, **kwargs: Any) -> Tracked:
    tracked = [as_tracked(a) for a in arrays]
    value = np.stack([t.value for t in tracked], axis=axis, **kwargs)
    error = np.stack([t.error for t in tracked], axis=axis)
    return Tracked(value, error)


@implements(np.where)
def _where(condition: Any, x: Any, y: Any) -> Tracked:
    condition = np.asarray(operand_value(condition)).astype(bool)  # autograd's where(x, x, 1)
    x, y = as_tracked(x), as_tracked(y)
    value = np.where(condition, x.value, y.value)
    error = np.where(
        condition, np.broadcast_to(x.error, x.shape), np.broadcast_to(y.error, y.shape)
    )
    return Tracked(value, np.broadcast_to(error, value.shape))


@implements(np.clip)
def _clip(a: Any, a_min: Any, a_max: Any, **kwargs: Any) -> Any:
    return np.minimum(np.maximum(a, a_min), a_max)


@implements(np.sum)
def _sum(a: Any, axis: Any = None, dtype: Any = None, keepdims: bool = False, **kwargs: Any) -> Any:
    a = as_tracked(a)
    value = np.sum(a.value, axis=axis, dtype=dtype, keepdims=keepdims)
    terms = a.value.size // max(np.size(value), 1)
    magnitude = np.sum(abs64(a.value), axis=axis, keepdims=keepdims)
    error = (
        np.sum(a.error, axis=axis, keepdims=keepdims)
        + gamma(max(terms - 1, 0), np.result_type(value)) * magnitude
    )
    return Tracked(value, error)


def _last_axis(a: Tracked, axis: Any) -> Tracked:
    if axis is None:
        return a.reshape(-1)
    return Tracked(np.moveaxis(a.value, axis, -1), np.moveaxis(a.error, axis, -1))


@implements(np.argmax)
def _argmax(a: Any, axis: Any = None, **kwargs: Any) -> Any:
    a = as_tracked(a)
    _check_ties(_last_axis(a, axis), "max")
    return np.argmax(a.value, axis=axis, **kwargs)


@implements(np.argmin)
def _argmin(a: Any, axis: Any = None, **kwargs: Any) -> Any:
    return _argmax(-as_tracked(a), axis=axis, **kwargs)


@implements(np.min, np.amin)
def _min(a: Any, axis: Any = None, keepdims: bool = False, **kwargs: Any) -> Tracked:
    """min(a) = -max(-a): negation is exact, so the rule of max carries over."""
    return -_max(-as_tracked(a), axis=axis, keepdims=keepdims)


@implements(np.max, np.amax)
def _max(a: Any, axis: Any = None, keepdims: bool = False, **kwargs: Any) -> Tracked:
    a = as_tracked(a)
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


@implements(np.einsum)
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
    tracked = [as_tracked(x) for x in operands]
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
            magnitudes.append(Expansion(((abs64(distinct(t.value)),),)))
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


@implements(np.result_type)
def _result_type(*arrays_and_dtypes: Any) -> np.dtype[Any]:
    return np.result_type(*(operand_value(a) for a in arrays_and_dtypes))


@implements(np.iscomplexobj)
def _iscomplexobj(x: Any) -> bool:
    return bool(np.iscomplexobj(operand_value(x)))
