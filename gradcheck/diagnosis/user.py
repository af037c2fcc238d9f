"""Gathering the evidence about a user's failing layer, for `gradcheck.diagnosis.classes`.

A user's backward gives gradients, not Jacobians; but the Jacobian is what shows a wrong
activation derivative (each row off by its own factor) or ignored coupling. So, for a
small failing case, the hand-written Jacobian is read off the user's backward itself: a
one-hot dout e_o gives, for every argument, the row ∂f_o/∂(argument) as the user's code
computes it, and the drawn dout checks that the backward is linear in dout (its gradient
is the sum of those rows). The reference rows are the finite-difference Jacobian.

What each argument adds (see `gradcheck.diagnosis.evidence.ArgumentEvidence`):

- batch: N of the argument, its leading axis (a 1-D argument: the output's leading
  axis, or its own length under a scalar output such as a loss);
- bias: a 1-D parameter named as a bias (b, bias, beta, shift, offset, b1, *_b, ...),
  or the layer's only 1-D parameter when its name is not a scale's (g, gamma, scale,
  alpha, w, weight): a scale such as layer norm's γ is a 1-D parameter, not a bias;
- uncoupled: the reference with the cross terms of the Jacobian dropped, for an
  argument of the output's shape (only ∂f_o/∂x_o kept) and for a parameter whose last
  axis runs over the output's units (only unit j's entries kept for output j), when
  the cross terms exceed their own error bound.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from gradcheck.core.tolerance import gamma
from gradcheck.diagnosis.evidence import ArgumentEvidence, Evidence, JacobianEvidence

#: Above this many outputs, the hand-written Jacobian is not read off the backward.
JACOBIAN_BUDGET = 256

_BIAS = re.compile(r"b|bias|beta|shift|offset|b\d+|b_\w+|\w+_b|\w*bias\w*")
_SCALE = re.compile(r"g|gamma|scale|alpha|w|weight|\w*scale\w*|\w*weight\w*")


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1].strip("_").lower()


def _biases(layer: Any, shapes: Sequence[tuple[int, ...]]) -> set[int]:
    """The differentiated 1-D parameters that are biases (see the module docstring)."""
    flat = [k for k in layer.wrt if k in layer.parameters and len(shapes[k]) == 1]
    named = {k for k in flat if _BIAS.fullmatch(_short(layer.argument_names[k]))}
    if named or len(flat) != 1:
        return named
    (only,) = flat
    return set() if _SCALE.fullmatch(_short(layer.argument_names[only])) else {only}


def _batch(shape: tuple[int, ...], output: np.ndarray) -> int | None:
    if len(shape) >= 2:
        return shape[0]
    if output.ndim >= 2:
        return int(output.shape[0])
    if len(shape) == 1 and output.ndim == 0:
        return shape[0]
    return None


def user_evidence(
    layer: Any,
    case: Any,
    grads: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    bounds: Sequence[np.ndarray],
    jacobians: Sequence[np.ndarray | None],
    jacobian_errors: Sequence[np.ndarray | None],
    roundings: Sequence[np.ndarray] | None = None,
) -> Evidence:
    """The evidence of one failing example of a user's layer.

    grads, references and bounds are per differentiated argument (layer.wrt); jacobians
    are the reference Jacobians ∂f/∂x as (output..., entries), or None; roundings the
    hand-written side's own part of each bound.
    """
    output = np.asarray(layer.forward(*case.arguments))
    units = output.shape[-1] if output.ndim else 1
    shapes = [tuple(np.shape(a)) for a in case.arguments]
    biases = _biases(layer, shapes)
    arguments = []
    for i, k in enumerate(layer.wrt):
        g = np.asarray(grads[i], dtype=np.float64)
        reference = np.asarray(references[i], dtype=np.float64)
        value = np.asarray(case.arguments[k], dtype=np.float64)
        is_parameter = k in layer.parameters
        transposed: np.ndarray | None = None
        transposed_error: np.ndarray | None = None
        if is_parameter and g.ndim == 2 and g.shape[0] == g.shape[1]:
            transposed, transposed_error = reference.T, np.asarray(bounds[i]).T
        elif not is_parameter and g.ndim == 2 and output.ndim == 2 and g.shape[1] == units:
            transposed = _transposed_product(case.dout, jacobians[i], g.shape)
            transposed_error = _transposed_product(np.abs(case.dout), jacobian_errors[i], g.shape)
        uncoupled, uncoupled_error, mass = _uncoupled(
            layer, case, k, jacobians[i], jacobian_errors[i], output
        )
        arguments.append(
            ArgumentEvidence(
                layer.argument_names[k],
                "parameters" if is_parameter else "inputs",
                g,
                reference,
                np.asarray(bounds[i], dtype=np.float64),
                value.reshape(g.shape[0], -1) if g.ndim >= 2 else None,
                np.ones(g.shape, dtype=bool) if k in biases else None,
                transposed,
                0.0 if transposed_error is None else transposed_error,
                batch=_batch(shapes[k], output),
                uncoupled=uncoupled,
                uncoupled_error=uncoupled_error,
                cross_mass=mass,
                rounding=None if roundings is None else np.asarray(roundings[i], np.float64),
            )
        )
    batch = int(output.shape[0]) if output.ndim >= 2 else 1
    found = _jacobian_evidence(layer, case, grads, bounds, jacobians, jacobian_errors, output)
    return Evidence(tuple(arguments), batch, found, case.describe(), case.dtype.name)


def _transposed_product(
    dout: np.ndarray, jacobian: np.ndarray | None, shape: tuple[int, ...]
) -> np.ndarray | None:
    """For an input x (n × i) of a layer f (n × j): Σ_j δ_nj ∂f_ni/∂x_nj, the product with
    the per-example Jacobian instead of its transpose (i = j)."""
    if jacobian is None or dout.ndim != 2 or jacobian.shape[:2] != dout.shape:
        return None
    n, i = shape
    per_example = jacobian.reshape(n, dout.shape[1], n, i)[np.arange(n), :, np.arange(n), :]
    return np.einsum("nj,nij->ni", dout.astype(np.float64), per_example)


def _uncoupled(
    layer: Any,
    case: Any,
    k: int,
    jacobian: np.ndarray | None,
    error: np.ndarray | None,
    output: np.ndarray,
) -> tuple[np.ndarray | None, np.ndarray | float, float]:
    """The reference gradient of argument k with the cross terms of its Jacobian dropped,
    that candidate's error bound, and the share of the Jacobian's mass in the dropped
    terms; (None, 0, 0) where the argument has no coupled Jacobian."""
    if jacobian is None or output.ndim == 0:
        return None, 0.0, 0.0
    shape = tuple(np.shape(case.arguments[k]))
    size, units = int(np.prod(shape)), output.shape[-1]
    full = np.asarray(jacobian, dtype=np.float64).reshape(output.size, size)
    if shape == output.shape:  # an elementwise-shaped argument: ∂f_o/∂x_o kept
        keep = np.eye(output.size, size, dtype=bool)
    elif k in layer.parameters and shape[-1:] == (units,):  # unit j's entries for output j
        owner = np.indices(shape)[len(shape) - 1].reshape(-1)
        keep = (np.arange(output.size) % units)[:, None] == owner[None, :]
    else:
        return None, 0.0, 0.0
    jacobian_error = (
        np.zeros_like(full) if error is None else np.asarray(error, np.float64).reshape(full.shape)
    )
    cross = float(np.abs(np.where(keep, 0.0, full)).sum())
    if cross <= float(np.where(keep, 0.0, jacobian_error).sum()):
        return None, 0.0, 0.0  # no cross terms beyond the Jacobian's own error
    dout = np.asarray(case.dout, dtype=np.float64).reshape(-1)
    kept = dout @ np.where(keep, full, 0.0)
    kept_error = np.abs(dout) @ np.where(keep, jacobian_error, 0.0)
    total = float(np.abs(full).sum())
    return kept.reshape(shape), kept_error.reshape(shape), cross / total


def _jacobian_evidence(
    layer: Any,
    case: Any,
    grads: Sequence[np.ndarray],
    bounds: Sequence[np.ndarray],
    jacobians: Sequence[np.ndarray | None],
    jacobian_errors: Sequence[np.ndarray | None],
    output: np.ndarray,
) -> tuple[JacobianEvidence, ...]:
    """Every output's hand-written gradient row (all differentiated arguments side by
    side) against the reference row, from one backward call per output; and whether the
    backward's gradient for the drawn dout is the sum of those rows."""
    units = output.shape[-1] if output.ndim else 1
    rows = output.size // max(units, 1)
    if rows * units > JACOBIAN_BUDGET or any(j is None for j in jacobians):
        return ()
    hand_rows = []
    for o in range(rows * units):
        one_hot = np.zeros(rows * units, dtype=case.dout.dtype)
        one_hot[o] = 1.0
        try:
            found = layer.backward(
                one_hot.reshape(case.dout.shape), *[np.array(a) for a in case.arguments]
            )
        except Exception:  # the mismatch is reported anyway; the explanation is a bonus
            return ()
        found = list(found) if isinstance(found, tuple | list) else [found]
        if len(found) == len(case.arguments) != len(layer.wrt):  # one per argument: keep wrt's
            found = [found[k] for k in layer.wrt]
        try:
            hand_rows.append(
                np.concatenate([np.ravel(np.asarray(g, dtype=np.float64)) for g in found])
            )
        except (TypeError, ValueError):
            return ()
    hand = np.stack(hand_rows)
    reference = np.concatenate(
        [np.reshape(j, (rows * units, -1)) for j in jacobians if j is not None], axis=1
    )
    error = np.concatenate(
        [np.reshape(e, (rows * units, -1)) for e in jacobian_errors if e is not None], axis=1
    )
    if hand.shape != reference.shape:
        return ()
    # The one-hot backward rounds like any backward: a γ of its magnitude on top.
    rounding = gamma(rows * units + 2, case.dout.dtype)
    bound = error + rounding * np.abs(hand)
    dout = np.asarray(case.dout, dtype=np.float64).reshape(-1)
    drawn = np.concatenate([np.ravel(np.asarray(g, dtype=np.float64)) for g in grads])
    slack = np.concatenate([np.ravel(np.asarray(b, dtype=np.float64)) for b in bounds])
    summed = dout @ hand
    with np.errstate(invalid="ignore"):
        linear = bool(
            np.all(np.abs(drawn - summed) <= slack + 2 * rounding * (np.abs(dout) @ np.abs(hand)))
        )
    reading, values = _reading(layer, case, output)
    shape = (rows, units, -1)
    return (
        JacobianEvidence(
            "the Jacobian read off the backward (one call per output)",
            hand.reshape(shape),
            reference.reshape(shape),
            bound.reshape(shape),
            reading=reading.reshape(rows, units),
            reading_values=values.reshape(rows, units),
            linear=linear,
        ),
    )


def _reading(layer: Any, case: Any, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per output, the entry of the Jacobian row whose derivative is φ' itself: the same
    entry of a differentiated argument of the output's shape (whose value is then the
    pre-activation), else unit j's entry of a bias; -1 (and NaN) where there is none."""
    units = output.shape[-1] if output.ndim else 1
    reading = np.full(output.size, -1, dtype=np.int64)
    values = np.full(output.size, np.nan)
    shapes = [tuple(np.shape(a)) for a in case.arguments]
    offsets = np.cumsum([0, *(int(np.prod(shapes[k])) for k in layer.wrt)])
    for i, k in enumerate(layer.wrt):
        if shapes[k] == output.shape and output.ndim:
            reading = offsets[i] + np.arange(output.size)
            values = np.asarray(case.arguments[k], dtype=np.float64).reshape(-1)
            return reading, values
    for i, k in enumerate(layer.wrt):
        if k in _biases(layer, shapes) and shapes[k] == (units,):
            return offsets[i] + np.arange(output.size) % units, values
    return reading, values
