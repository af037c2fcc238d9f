"""References for the gradients of a user's layer, each with a bound on its own error.

A user's forward(*args) -> out is a black box that may not broadcast over extra leading
axes, so every evaluation here is one call on one set of arrays. The quantity whose
gradient is checked is the scalar E = ⟨δ, forward(*args)⟩ (δ = dout); everything is
evaluated in float64 on the case's values.

- finite differences live in `gradcheck.user.differences` (the stencil of one argument)
  and `gradcheck.user.finite` (the oracle of one example, with the forward's measured
  precision);
- `autograd_reference`: reverse mode through the forward when it is written with
  autograd.numpy, detected by running it on autograd's boxes; first on `Tracked` arrays,
  which gives autograd's own running error bound, else on plain arrays (error unknown:
  the caller applies the fallback model of `gradcheck.core.tolerance`).
- `structure`: whether each parameter is unit-partitioned along one of its axes, read
  off the finite-difference Jacobian; `structure_by_halves`, the same property for a
  parameter too large for that Jacobian, from two evaluations per axis.

This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.core import oracles
from gradcheck.core.tolerance import Tracked, recording, track

Forward = Callable[..., Any]


# ---- autograd ---------------------------------------------------------------------------------


class NotTraceableError(Exception):
    """Internal: the forward does not run through autograd; the message says why."""


@dataclass(frozen=True)
class AutogradReference:
    """∂E/∂x for the differentiated arguments by reverse mode; errors is None when
    autograd's own evaluation could not be bounded (reason says why)."""

    gradients: tuple[np.ndarray, ...]
    errors: tuple[np.ndarray, ...] | None
    reason: str


def _energy(
    forward: Forward,
    arguments: Sequence[Any],
    which: Sequence[int],
    weights: Sequence[Any],
    expected: Sequence[np.ndarray],
) -> Callable[[tuple[Any, ...]], Any]:
    """E = Σ_k ⟨weights_k, out_k⟩ over the forward's outputs (one, or a tuple)."""
    import autograd.numpy as anp
    from autograd.numpy.numpy_boxes import ArrayBox

    def energy(differentiated: tuple[Any, ...]) -> Any:
        full = list(arguments)
        for k, value in zip(which, differentiated, strict=True):
            full[k] = value
        result = forward(*full)
        outs = list(result) if len(expected) > 1 and isinstance(result, tuple | list) else [result]
        if len(outs) != len(expected):
            raise NotTraceableError(f"the traced forward returned {len(outs)} outputs")
        if not any(isinstance(out, ArrayBox) for out in outs):
            raise NotTraceableError(
                f"the forward returned a plain {type(outs[0]).__name__} from autograd's boxes "
                "(it is not written with autograd.numpy)"
            )
        terms = []
        for out, weight, wanted in zip(outs, weights, expected, strict=True):
            _require_the_same(out._value if isinstance(out, ArrayBox) else out, wanted)
            terms.append(anp.sum(weight * out))
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total

    return energy


def _require_the_same(value: Any, expected: np.ndarray) -> None:
    """A traced output must be the forward's (a Tracked one within twice its bound: the
    same sums in another order)."""
    if isinstance(value, np.generic | float):  # a scalar output, such as a loss
        value = np.asarray(value)
    if isinstance(value, Tracked):
        differs = value.shape != expected.shape or bool(
            np.any(np.abs(value.value - expected) > 2.0 * value.error)
        )
    elif not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        raise NotTraceableError(f"the traced forward computed a {type(value).__name__}")
    else:
        differs = value.shape != expected.shape or value.tobytes() != expected.tobytes()
    if differs:
        raise NotTraceableError("the traced forward computes other values than the forward")


def autograd_reference(
    forward: Forward,
    arguments: Sequence[np.ndarray],
    which: Sequence[int],
    douts: Sequence[np.ndarray],
    outputs: Sequence[np.ndarray],
) -> AutogradReference:
    """Reverse mode for E = Σ_k ⟨dout_k, out_k⟩ through the forward, in float64 (one
    dout and output per output of the forward); raises NotTraceable when the forward
    does not go through autograd (plain numpy on a box, a result independent of the
    inputs, values that differ from the forward's). Int and bool arguments are passed
    as they are."""
    import autograd

    plain = _energy(forward, arguments, which, douts, outputs)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.filterwarnings("error", message="Output seems independent of input")
            gradients = autograd.grad(plain)(tuple(arguments[k] for k in which))
    except NotTraceableError:
        raise
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else ""
        raise NotTraceableError(f"{type(error).__name__}: {first[:160]}") from None
    try:
        gradients = tuple(np.asarray(g, dtype=np.float64) for g in gradients)
    except (TypeError, ValueError):  # object arrays of boxes: plain numpy met a box
        raise NotTraceableError("autograd's gradient is not an array of numbers") from None
    for k, g in zip(which, gradients, strict=True):
        if g.shape != arguments[k].shape:
            raise NotTraceableError(f"autograd returned a gradient of shape {g.shape}")
    tracked_arguments = [track(a) if a.dtype.kind == "f" else a for a in arguments]
    energy = _energy(forward, tracked_arguments, which, [track(d) for d in douts], outputs)
    try:
        with recording() as events:
            result = oracles.reverse_mode(energy, tuple(tracked_arguments[k] for k in which))
        if any(e.kind == "untracked" for e in events):
            raise NotTraceableError("it met untracked events")
        if not all(isinstance(r, Tracked) for r in result):
            raise NotTraceableError("it left the Tracked arrays")
        # The Tracked pass is the reference (its bound is rigorous for its own values);
        # the plain pass must agree with it within twice the bound (the same sums in
        # another order), or the two computed different things.
        if any(
            np.any(np.abs(r.value - g) > 2.0 * r.error)
            for r, g in zip(result, gradients, strict=True)
        ):
            raise NotTraceableError("its Tracked and plain evaluations differ")
    except Exception as error:
        return AutogradReference(gradients, None, f"fallback model: autograd's error ({error})")
    return AutogradReference(
        tuple(np.asarray(r.value, dtype=np.float64) for r in result),
        tuple(np.asarray(r.error, dtype=np.float64) for r in result),
        "running bound (Tracked)",
    )


# ---- structure -------------------------------------------------------------------------------


def structure(
    jacobian: np.ndarray,
    jacobian_error: np.ndarray,
    parameter_shape: tuple[int, ...],
    candidate_axes: Sequence[int],
) -> tuple[str, int | None]:
    """How a parameter's entries reach the output units, from the Jacobian (*out, entries).

    The catalogue measures the same property two other ways, each fit to what it knows:
    autograd's off-diagonal blocks (its rows are written in autograd.numpy) and, for large
    layers, a half of the units moved bit for bit (its rows are known to be the same code
    per unit). A user's forward is a black box that may not run under autograd, so here
    the structure is read off the finite-difference Jacobian the check computes anyway.

    Output unit j is out[..., j]. The parameter is unit-partitioned along axis a when
    every entry with index k along a moves only outputs of unit k: ∂f_(..., j)/∂θ = 0 off
    slice j, which makes ∂f/∂θ block-diagonal and A = δ ⊙ B its gradient. "Moves" means
    |∂f/∂θ| beyond its finite-difference error. Returns (verdict, axis): "partitioned"
    with the axis, "shared" (units depend on common entries), "unused" (the output does
    not depend on the parameter) or "undetermined" (one output unit: nothing to tell).
    """
    units = jacobian.shape[-2] if jacobian.ndim >= 2 else 1
    moves = np.abs(jacobian) > jacobian_error  # (*out, entries)
    if not moves.any():
        return "unused", None
    if units < 2:
        return "undetermined", None
    per_unit = moves.reshape(-1, units, moves.shape[-1]).any(axis=0)  # (units, entries)
    for axis in candidate_axes:
        if parameter_shape[axis] != units:
            continue
        owner = np.indices(parameter_shape)[axis].reshape(-1)  # each entry's slice index
        off_block = per_unit & (owner[None, :] != np.arange(units)[:, None])
        if not off_block.any():
            return "partitioned", axis
    return "shared", None


def structure_by_halves(
    moved: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    outputs: np.ndarray,
    candidate_axes: Sequence[int],
    *,
    seed: int = 0,
) -> tuple[str, int | None]:
    """`structure` for a parameter too large for its finite-difference Jacobian, from two
    evaluations per candidate axis (moved(variant) is the float64 forward with the
    parameter replaced; outputs, its outputs at x, unit j = outputs[..., j]).

    Along axis a, a random half S of the unit indices is moved by 2h (every entry whose
    index along a is in S), then the other half. Output unit j computes from its own
    slice alone when the parameter is partitioned along a: moving slices outside j
    leaves unit j's outputs the same floating-point numbers (the same operations on the
    same operands), so a unit outside the moved half that changes at all shows that
    units depend on common entries. A unit that depends on others' entries escapes both
    moves only if none of those entries are in the other half, probability 2^-(units/2)
    for a unit that reads every slice. Returns what `structure` returns.
    """
    units = outputs.shape[-1] if outputs.ndim else 1
    base = outputs.reshape(-1, units)
    if units < 2:
        return "undetermined", None
    step = 2.0 * oracles.step_sizes(x)
    rng = np.random.default_rng(seed)
    used = False
    for axis in candidate_axes:
        if x.shape[axis] != units:
            continue
        half = rng.permutation(units) < units // 2
        index: list[Any] = [np.newaxis] * x.ndim
        index[axis] = slice(None)
        changed = [
            _changed_units(moved(np.where(chosen[tuple(index)], x + step, x)), base)
            for chosen in (half, ~half)
        ]
        crossing = np.any(changed[0] & ~half) or np.any(changed[1] & half)
        if changed[0].any() or changed[1].any():
            used = True
            if not crossing:
                return "partitioned", axis
    if not used:  # no candidate axis moved anything: does the output read x at all?
        used = bool(_changed_units(moved(x + step), base).any())
    return ("shared", None) if used else ("unused", None)


def _changed_units(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Per output unit (before is (rows, units)): does any of its outputs differ (NaN
    where there was none counts)."""
    after = after.reshape(before.shape)
    same = (after == before) | (np.isnan(after) & np.isnan(before))
    return ~same.all(axis=0)
