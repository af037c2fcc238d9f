"""References for the gradients of a user's layer, each with a bound on its own error.

A user's forward(*args) -> out is a black box that may not broadcast over extra leading
axes, so every evaluation here is one call on one set of arrays. The quantity whose
gradient is checked is the scalar E = ⟨δ, forward(*args)⟩ (δ = dout); everything is
evaluated in float64 on the case's values.

- `differences`: for each differentiated argument, every entry perturbed alone by ±h and
  ±2h (h = cbrt(u)·max(1, |x|), `gradcheck.core.oracles.step_sizes`), which gives

  * the central difference with Richardson extrapolation, (4 D(h) - D(2h)) / 3, of E and
    of every output f_o (the Jacobian, used by the structure analysis), with the error
    |D(h) - D(2h)| + (4 ρ(h) + ρ(2h)) / 3, ρ the rounding of the function values over
    the step (`gradcheck.core.oracles.richardson`, shared with the catalogue);
  * the one-sided extrapolations 2 D±(h) - D±(2h) of E from the right and from the left,
    each with the slack |D±(h) - D±(2h)| + its rounding. At a point where E is smooth
    within the stencil, the right, left and central estimates agree within the sums of
    their slacks; where two of them do not, E has a kink (or a jump) within 2h, the
    central difference there is not the derivative, and the draw is non-differentiable.
    (The central-against-one-sided test catches a kink on one side at a distance where
    the right and left estimates still overlap but the central one is pulled off.)

  Arguments with more than `FULL_DIFFERENCES_BUDGET` entries are probed instead along
  random signed directions w = s ⊙ h, which yields ⟨∇E, w⟩ with the same error model.
- `autograd_reference`: reverse mode through the forward when it is written with
  autograd.numpy, detected by running it on autograd's boxes; first on `Tracked` arrays,
  which gives autograd's own running error bound, else on plain arrays (error unknown:
  the caller applies the fallback model of `gradcheck.core.tolerance`).
- `structure`: whether each parameter is unit-partitioned along one of its axes, read
  off the finite-difference Jacobian.

This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.core import oracles
from gradcheck.core.oracles import energy_rounding, richardson, step_sizes
from gradcheck.core.tolerance import Tracked, gamma, recording, track

#: Arguments with at most this many entries are differenced entry by entry.
FULL_DIFFERENCES_BUDGET = 64
#: Random signed directions probed for larger arguments.
PROBES = 16

Forward = Callable[..., Any]


class StencilError(Exception):
    """Internal: the forward is not finite somewhere on the finite-difference stencil."""


@dataclass(frozen=True)
class ArgumentDifferences:
    """The finite-difference view of one argument.

    gradient/error: ∂E/∂x per entry (or ⟨∇E, w_q⟩ per probe when directions is given).
    right/left and their slacks: the one-sided extrapolations of the same quantity.
    central_slack: the error of the central estimate, for the kink test.
    jacobian/jacobian_error: ∂f_o/∂x_e as (output..., entries) for per-entry arguments,
    None for probed ones.
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

    @property
    def kinked(self) -> np.ndarray:
        """Entries (or probes) where the right, left and central estimates disagree
        beyond their slacks: E is not differentiable within the stencil there."""
        central = self.gradient
        return (
            (np.abs(self.right - self.left) > self.right_slack + self.left_slack)
            | (np.abs(central - self.right) > self.error + self.right_slack)
            | (np.abs(central - self.left) > self.error + self.left_slack)
        )

    @property
    def method(self) -> str:
        if self.directions is not None:
            return f"central differences, Richardson, {len(self.directions)} random probes"
        return "central differences, Richardson, entry by entry"


def _stencil(
    evaluate: Callable[[np.ndarray], np.ndarray], x: np.ndarray, directions: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Outputs at x + s for the four shifts s of each direction: (4, D, *out), and the
    steps actually taken (+h, -h, +2h, -2h magnitudes: up1, down1, up2, down2) per
    direction when directions are single entries (the norm of nominal ones otherwise)."""
    shifted = []
    steps = []
    for scale in (1.0, -1.0, 2.0, -2.0):
        row = []
        for direction in directions:
            variant = x + scale * direction
            row.append(evaluate(variant))
        shifted.append(np.stack(row))
        taken = np.abs(((x + scale * directions) - x).reshape(len(directions), -1)).sum(axis=1)
        steps.append(taken)
    return np.stack(shifted), steps


def differences(
    evaluate: Callable[[int, np.ndarray], np.ndarray],
    arguments: Sequence[np.ndarray],
    which: int,
    dout: np.ndarray,
    outputs: np.ndarray,
    forward_error: np.ndarray,
    *,
    seed: int = 0,
) -> ArgumentDifferences:
    """Finite differences of E with respect to arguments[which] (see the module docstring).

    evaluate(which, variant) returns the forward's float64 output with that argument
    replaced by variant; it raises StencilError where the output is not finite.
    """
    x = arguments[which]
    h = step_sizes(x)
    per_entry = x.size <= FULL_DIFFERENCES_BUDGET
    if per_entry:
        directions = np.zeros((x.size,) + x.shape)
        directions.reshape(x.size, -1)[np.arange(x.size), np.arange(x.size)] = h.reshape(-1)
        probes = None
    else:
        rng = np.random.default_rng(seed)
        probes = rng.choice([-1.0, 1.0], size=(PROBES,) + x.shape) * h
        directions = probes
    values, (up1, down1, up2, down2) = _stencil(lambda v: evaluate(which, v), x, directions)
    rho = float(energy_rounding(dout, outputs, forward_error, tuple(range(dout.ndim))))
    energies = np.sum(values * dout, axis=tuple(range(2, values.ndim)))  # E at each point
    base = float(np.sum(dout * outputs))
    plus1, minus1, plus2, minus2 = energies
    if probes is not None:  # nominal steps: ⟨∇E, w⟩ per probe, rounding of a step ignored
        up1 = down1 = np.ones(len(directions))
        up2 = down2 = 2.0 * up1
    gradient, error = _richardson(plus1, minus1, plus2, minus2, up1, down1, up2, down2, rho)
    right, right_slack = _one_sided(plus1 - base, plus2 - base, up1, up2, rho)
    left, left_slack = _one_sided(base - minus1, base - minus2, down1, down2, rho)
    jacobian = jacobian_error = None
    if probes is None:
        shape = (4, x.size) + (1,) * outputs.ndim
        up1, down1, up2, down2 = (s.reshape(shape[1:]) for s in (up1, down1, up2, down2))
        rounding = np.asarray(forward_error, dtype=np.float64)
        jacobian, jacobian_error = _richardson(
            values[0], values[1], values[2], values[3], up1, down1, up2, down2, rounding
        )
        jacobian = np.moveaxis(jacobian, 0, -1)  # (*out, entries)
        jacobian_error = np.moveaxis(jacobian_error, 0, -1)
        shape_of_x = x.shape
        gradient, error = gradient.reshape(shape_of_x), error.reshape(shape_of_x)
        right, right_slack = right.reshape(shape_of_x), right_slack.reshape(shape_of_x)
        left, left_slack = left.reshape(shape_of_x), left_slack.reshape(shape_of_x)
    return ArgumentDifferences(
        gradient, error, right, left, right_slack, left_slack, jacobian, jacobian_error, probes
    )


def _richardson(
    plus1: Any,
    minus1: Any,
    plus2: Any,
    minus2: Any,
    up1: Any,
    down1: Any,
    up2: Any,
    down2: Any,
    rho: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """The catalogue's extrapolation (`gradcheck.core.oracles.richardson`) from the four
    values of a stencil and the steps taken; ρ bounds the rounding of each value."""
    step1, step2 = up1 + down1, up2 + down2
    d1 = (plus1 - minus1) / step1
    d2 = (plus2 - minus2) / step2
    return richardson(d1, d2, 2.0 * rho / step1, 2.0 * rho / step2)


def _one_sided(
    rise1: np.ndarray, rise2: np.ndarray, step1: np.ndarray, step2: np.ndarray, rho: float
) -> tuple[np.ndarray, np.ndarray]:
    """2 D(h) - D(2h) from one side, and its slack |D(h) - D(2h)| plus its rounding
    (each value differs from the base by at most 2ρ of rounding).

    Not `gradcheck.core.oracles.one_sided_differences`, on purpose: the catalogue knows
    where its kinks are and needs, at one, the interval of every output's one-sided
    slopes (any subgradient lies in it); a user's forward is a black box, so here the
    one-sided extrapolations of E are what tell a kink within the stencil from a smooth
    point (they agree with the central one within their slacks only where E is smooth).
    """
    d1, d2 = rise1 / step1, rise2 / step2
    estimate = 2.0 * d1 - d2
    rounding = 2.0 * 2.0 * rho / step1 + 2.0 * rho / step2
    slack = np.abs(d1 - d2) + rounding + gamma(3, np.float64) * (2.0 * np.abs(d1) + np.abs(d2))
    return estimate, slack


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
