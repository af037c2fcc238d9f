"""Holding a hand-written gradient against a reference under a bound, entry by entry.

`compare` is the one comparison every checker makes (the catalogue's, large layers',
networks', users' layers'): error = |hand-written - reference| against the error model's
bound, reduced to the worst entry as a `Comparison`. `as_array` is the check of an
array's dtype and values before anything is computed on it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from gradcheck.core.results import Comparison

if TYPE_CHECKING:
    from gradcheck.diagnosis.classes import Diagnosis

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# ---- validation ---------------------------------------------------------------------------


class CaseError(Exception):
    """Internal: the case cannot be checked; the message says why."""


def as_array(name: str, value: ArrayLike, ndim: int = 2) -> np.ndarray:
    """value as a float32 or float64 array of `ndim` dimensions, none of them empty, every
    entry finite; else a CaseError that names `name` and says what it accepts."""
    try:
        array = np.asarray(value)
    except Exception as error:  # ragged lists, objects numpy cannot convert
        raise CaseError(f"{name} is not an array: {error}") from None
    if array.dtype.kind in "biu":
        kind = "boolean" if array.dtype.kind == "b" else "integer"
        raise CaseError(
            f"{name} has {kind} dtype {array.dtype}; gradients are checked in floating "
            "point: pass float32 or float64 arrays"
        )
    if array.dtype.kind == "c":
        raise CaseError(
            f"{name} is complex ({array.dtype}); only real float32 or float64 is supported"
        )
    if array.dtype not in SUPPORTED_DTYPES:
        raise CaseError(f"{name} has dtype {array.dtype}; only float32 and float64 are supported")
    if array.ndim != ndim:
        raise CaseError(f"{name} must be {ndim}-dimensional, got shape {array.shape}")
    if 0 in array.shape:
        raise CaseError(f"{name} has a zero-sized dimension (shape {array.shape})")
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise CaseError(f"{name} contains {array[index]} at index {index}; values must be finite")
    return array


# ---- comparisons ---------------------------------------------------------------------------

ENTRY_NAMES = {
    "parameters": ("unit", "parameter"),
    "inputs": ("row", "input"),
    "probes": ("probe",),
}


def _as_float64(
    hand_written: ArrayLike, reference: ArrayLike, bound: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hand = np.asarray(hand_written, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    return hand, ref, np.broadcast_to(np.asarray(bound, dtype=np.float64), hand.shape)


def errors_and_ratios(
    hand: np.ndarray, ref: np.ndarray, limit: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """|hand - ref| and its ratio to the bound, entry by entry: a zero bound allows only a
    zero error, and a NaN on either side never passes (its ratio is inf), except that an
    infinite bound says the reference could not resolve the entry (an overflow within the
    finite-difference step, say): a finite hand-written value is not compared there
    (ratio 0; `compare` counts such entries as unbounded), whatever the reference holds."""
    with np.errstate(all="ignore"):
        error = np.abs(hand - ref)
        ratio = np.where(limit > 0, error / limit, np.where(error == 0, 0.0, np.inf))
        ratio = np.where(np.isnan(ratio), np.inf, ratio)
        unresolved = np.isposinf(limit) & np.isfinite(hand)
    return error, np.where(unresolved, 0.0, ratio)


def worst_shown(
    hand_written: ArrayLike,
    reference: ArrayLike,
    bound: ArrayLike,
    entry_names: Sequence[str],
    count: int,
) -> list[tuple[dict[str, int], float, float, float]]:
    """Up to `count` entries over their bound, worst first, as (entry, hand-written,
    reference, error/bound): the rows a message shows. argpartition, not a full sort:
    a large gradient has millions of entries and only a few are shown."""
    hand, ref, limit = _as_float64(hand_written, reference, bound)
    ratio = errors_and_ratios(hand, ref, limit)[1].reshape(-1)
    if ratio.size > count:
        candidates = np.argpartition(-ratio, count - 1)[:count]
    else:
        candidates = np.arange(ratio.size)
    candidates = candidates[np.argsort(-ratio[candidates], kind="stable")]
    shown = []
    for flat_index in candidates:
        if not ratio[flat_index] > 1.0:
            break
        index = np.unravel_index(flat_index, hand.shape) if hand.ndim else ()
        entry = {name: int(i) for name, i in zip(entry_names, index, strict=True)}
        shown.append(
            (entry, float(hand.reshape(-1)[flat_index]), float(ref.reshape(-1)[flat_index]),
             float(ratio[flat_index]))
        )  # fmt: skip
    return shown


def compare(
    oracle: str,
    target: str,
    method: str,
    hand_written: ArrayLike,
    reference: ArrayLike,
    bound: ArrayLike,
    seconds: float,
    entry_names: tuple[str, ...] | None = None,
) -> list[Comparison]:
    """Hold stacked hand-written gradients (K, ...) against references: one Comparison per case."""
    hand, ref, limit = _as_float64(hand_written, reference, bound)
    count = hand.shape[0]
    error, ratio = errors_and_ratios(hand, ref, limit)
    flat = ratio.reshape(count, -1)
    worst = np.argmax(flat, axis=1)
    cases = np.arange(count)
    entries = np.unravel_index(worst, hand.shape[1:]) if hand.ndim > 1 else ()  # scalars: ()

    def at(values: np.ndarray) -> np.ndarray:
        return values.reshape(count, -1)[cases, worst]

    with np.errstate(all="ignore"):
        finite_error = np.where(np.isnan(error), -np.inf, error).reshape(count, -1)
        all_nan = np.isnan(error).reshape(count, -1).all(axis=1)
        max_error = np.where(all_nan, np.nan, finite_error.max(axis=1))
        scale = np.max(np.where(np.isfinite(ref), np.abs(ref), -np.inf).reshape(count, -1), axis=1)
        relative = np.where(scale > 0, max_error / scale, np.where(max_error == 0, 0.0, np.inf))
    unbounded = np.isinf(limit).reshape(count, -1).sum(axis=1)
    names = ENTRY_NAMES[target] if entry_names is None else entry_names
    worst_ratio, worst_error, worst_bound = at(ratio), at(error), at(limit)
    hand_at, ref_at = at(hand), at(ref)
    return [
        Comparison(
            oracle=oracle,
            target=target,
            method=method,
            max_abs_error=float(max_error[k]),
            max_rel_error=float(relative[k]),
            worst_ratio=float(worst_ratio[k]),
            worst_entry={name: int(index[k]) for name, index in zip(names, entries, strict=True)},
            worst_error=float(worst_error[k]),
            worst_bound=float(worst_bound[k]),
            hand_written=float(hand_at[k]),
            reference=float(ref_at[k]),
            seconds=seconds / count,
            unbounded_entries=int(unbounded[k]),
        )
        for k in range(count)
    ]


class Clock:
    """Wall time per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, stage: str, function: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return function()
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


def closest_detail(comparisons: Sequence[Comparison]) -> str:
    """The tail of a pass message naming the comparison nearest its bound, as in
    ' (closest: autograd on ∂E/∂θ at 0.31 of its bound)'; empty without comparisons."""
    closest = max(comparisons, key=lambda c: c.worst_ratio, default=None)
    if closest is None:
        return ""
    symbol = "z" if closest.target == "inputs" else "θ"
    return f" (closest: {closest.oracle} on ∂E/∂{symbol} at {closest.worst_ratio:.2g} of its bound)"


def disagreement(comparison: Comparison) -> str:
    """The worst entry of a failed comparison in the words every mismatch message uses
    (the catalogue's, the networks' and the user engine's, each after its own subject):
    "at <entry>: hand-written g, reference r, error |g - r| exceeds the bound b (ratio)",
    or, where g is NaN or infinite and r finite (no bound measures that), "... is not finite
    where the reference is"."""
    where = ", ".join(f"{name} {index}" for name, index in comparison.worst_entry.items())
    values = (
        f"at {where or 'the scalar'}: hand-written {comparison.hand_written:.9g}, "
        f"reference {comparison.reference:.9g}"
    )
    if not math.isfinite(comparison.hand_written) and math.isfinite(comparison.reference):
        return f"{values}: the hand-written value is not finite where the reference is"
    return (
        f"{values}, error {comparison.worst_error:.3g} exceeds "
        f"the bound {comparison.worst_bound:.3g} ({comparison.worst_ratio:.3g}x)"
    )


def mismatch_message(comparison: Comparison, diagnosis: Diagnosis | None = None) -> str:
    """One line naming the worst disagreement; the diagnosis, when given, follows on a
    line of its own ("diagnosis: <class>: <summary>"), the one place a result's message
    names it (`GradientMismatch` shows it there with its evidence instead)."""
    target = "∂E/∂z (formula 1)" if comparison.target == "inputs" else "∂E/∂θ (formula 2)"
    if "row" in comparison.worst_entry and "unit" in comparison.worst_entry:  # a Jacobian entry
        target = "∂f/∂z" if comparison.target == "inputs" else "B = ∂f/∂θ"
    return (
        f"mismatch: {comparison.oracle} ({comparison.method}) disagrees on {target} "
        + disagreement(comparison)
        + ("" if diagnosis is None else f"\ndiagnosis: {diagnosis}")
    )
