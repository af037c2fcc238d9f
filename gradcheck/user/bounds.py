"""Bounds on the rounding of a user's code: of the backward's gradients and of the float64
forward.

`hand_written_bounds` and `forward_bound` run the code again on `Tracked` arrays, whose
running bound is rigorous while every operation goes through a rule of
`gradcheck.core.tolerance`, else use the fallback model documented there;
`measured_rounding` runs the code in a higher precision. Only float arguments are
tracked or raised in precision: int and bool arguments (labels, indices, masks) are
passed as they are.

This module is free of hypothesis and pytest.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gradcheck.core.tolerance import Tracked, gamma, recording, track
from gradcheck.user.outputs import OutputLayout, outputs_of
from gradcheck.user.types import UserCase, UserLayer

#: Events after which a running bound is incomplete. (A tie in a max is not one: the rule
#: of max bounds the value at a tie too; whether the function is differentiable there is
#: for the one-sided differences to say.)
_LOSSY = ("untracked",)


def _higher(dtype: np.dtype[Any]) -> type[np.floating[Any]] | None:
    """A dtype with a smaller unit roundoff: float64 for float32; long double for
    float64 where it is wider (x86's 80-bit extended), else None."""
    if dtype == np.float32:
        return np.float64
    if float(np.finfo(np.longdouble).eps) < float(np.finfo(np.float64).eps):
        return np.longdouble
    return None


def measured_rounding(
    function: Callable[..., Any], arguments: Sequence[np.ndarray], values: Sequence[np.ndarray]
) -> list[np.ndarray] | None:
    """|v - v_hi| / (1 - u_hi / u), the rounding of values v = function(*arguments)
    measured by running the function in a higher precision: under the fallback's
    assumption (the same operations, so errors scale with u) the error e of v satisfies
    e <= |v - v_hi| + (u_hi / u) e. None when there is no higher precision or the
    function does not compute in it."""
    floats = [np.asarray(a) for a in arguments if _is_float(a)]
    dtype = np.result_type(*floats)
    higher = _higher(np.dtype(dtype))
    if higher is None:
        return None
    copies = [np.asarray(a).astype(higher) if _is_float(a) else a for a in arguments]
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = function(*copies)
    except Exception:
        return None
    items = result if isinstance(result, tuple | list) else (result,)
    if len(items) != len(values) or not all(
        isinstance(r, np.ndarray) and r.dtype == higher and r.shape == v.shape
        for r, v in zip(items, values, strict=True)
    ):
        return None
    ratio = float(np.finfo(higher).eps) / float(np.finfo(dtype).eps)
    measured = []
    for v, r in zip(values, items, strict=True):
        apart = v.astype(higher)  # in place from here: these are the largest arrays made
        np.subtract(apart, r, out=apart)
        np.abs(apart, out=apart)
        apart /= 1.0 - ratio
        measured.append(apart.astype(np.float64))
    return measured


def _tracked_run(
    function: Callable[..., Any], arguments: Sequence[np.ndarray]
) -> tuple[Any, set[str], str | None]:
    """function on Tracked copies of the arguments, quietly: (result, lossy event kinds,
    the failure's description or None)."""
    tracked = [track(np.array(a, copy=True)) if _is_float(a) else np.array(a) for a in arguments]
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings(), recording() as events:
            warnings.simplefilter("ignore")
            result = function(*tracked)
    except Exception as error:
        return None, set(), _brief(error)
    return result, {event.kind for event in events if event.kind in _LOSSY}, None


def _brief(error: BaseException, limit: int = 160) -> str:
    """The first line of an exception, cut to `limit` characters."""
    text = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _running_bounds(
    results: Sequence[Any], plain: Sequence[np.ndarray], lossy: set[str]
) -> tuple[list[np.ndarray] | None, str]:
    """Bounds for the plain values from a Tracked run: e_T + |v_T - plain|, provided
    the run stayed tracked and agrees with the plain one within 2 e_T."""
    if lossy:
        return None, f"it met {' and '.join(sorted(lossy))} events"
    if len(results) != len(plain) or not all(
        isinstance(r, Tracked) and r.shape == p.shape for r, p in zip(results, plain, strict=True)
    ):
        return None, "it returned plain arrays for Tracked inputs"
    bounds = []
    for r, p in zip(results, plain, strict=True):
        difference = np.abs(np.asarray(r.value, np.float64) - np.asarray(p, np.float64))
        if np.any(difference > 2.0 * r.error):
            return None, "its Tracked run computed other values than the plain one"
        bounds.append(np.asarray(r.error, dtype=np.float64) + difference)
    return bounds, "running bound (Tracked)"


def hand_written_bounds(
    layer: UserLayer, case: UserCase, plain: Sequence[np.ndarray]
) -> tuple[list[np.ndarray] | None, str]:
    """The running bound of the user's backward, or None and why it is not available."""
    result, lossy, failure = _tracked_run(layer.backward, (*case.output_douts, *case.arguments))
    if failure is not None:
        return None, f"fallback model: the backward does not run on Tracked arrays ({failure})"
    items = result if isinstance(result, tuple | list) else (result,)
    bounds, model = _running_bounds(items, plain, lossy)
    return bounds, model if bounds is not None else f"fallback model: the backward {model}"


def forward_bound(
    layer: UserLayer,
    arguments: Sequence[np.ndarray],
    outputs: np.ndarray,
    count: int,
    layout: OutputLayout,
) -> tuple[np.ndarray, str]:
    """The float64 forward's rounding bound per entry of its joined outputs: its running
    bound, or the fallback γ_m(float64) |f| with m = count (the number of inputs and
    outputs)."""
    result, lossy, failure = _tracked_run(layer.forward, arguments)
    if failure is None:
        items = outputs_of(result) if not layout.single else [result]
        joined = layout.join(items) if len(items) == len(layout.shapes) else None
        if joined is None or not all(isinstance(item, Tracked) for item in items):
            bounds, model = None, "it returned plain arrays for Tracked inputs"
        else:
            bounds, model = _running_bounds([joined], [outputs], lossy)
        if bounds is not None:
            return bounds[0], model
        failure = model
    error = gamma(count, np.float64) * np.abs(outputs)
    measured = measured_rounding(layer.forward, arguments, layout.split(outputs))
    if measured is not None:
        error = error + layout.join(measured)
    return error, f"fallback model: the forward ({failure})"


def _is_float(array: Any) -> bool:
    return np.asarray(array).dtype.kind == "f"
