"""Gathering the evidence about a user's failing layer, for `gradcheck.diagnosis.classes`.

A user's backward gives gradients, not Jacobians; but the Jacobian is what shows a wrong
activation derivative (each row off by its own factor) or ignored coupling. So, for one
small failing case, the hand-written Jacobian is read off the user's backward itself: a
one-hot dout e_o gives, for every argument, the row ∂f_o/∂(argument) as the user's code
computes it. The reference rows are the finite-difference Jacobian (or autograd's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gradcheck.core.tolerance import gamma
from gradcheck.diagnosis.classes import ArgumentEvidence, Evidence, JacobianEvidence

#: Above this many outputs, the hand-written Jacobian is not read off the backward.
JACOBIAN_BUDGET = 256


def user_evidence(
    layer: Any,
    case: Any,
    grads: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    bounds: Sequence[np.ndarray],
    jacobians: Sequence[np.ndarray | None],
    jacobian_errors: Sequence[np.ndarray | None],
) -> Evidence:
    """The evidence of one failing example of a user's layer.

    grads, references and bounds are per differentiated argument (layer.wrt); jacobians
    are the reference Jacobians ∂f/∂x as (output..., entries), or None.
    """
    arguments = []
    output = np.asarray(layer.forward(*case.arguments))
    units = output.shape[-1] if output.ndim else 1
    rows = output.size // max(units, 1)
    for i, k in enumerate(layer.wrt):
        g = np.asarray(grads[i], dtype=np.float64)
        reference = np.asarray(references[i], dtype=np.float64)
        value = np.asarray(case.arguments[k], dtype=np.float64)
        is_parameter = k in layer.parameters
        bias = np.ones(g.shape, dtype=bool) if is_parameter and g.ndim == 1 else None
        transposed: np.ndarray | None = None
        transposed_error: np.ndarray | None = None
        if is_parameter and g.ndim == 2 and g.shape[0] == g.shape[1]:
            transposed, transposed_error = reference.T, np.asarray(bounds[i]).T
        elif not is_parameter and g.ndim == 2 and output.ndim == 2 and g.shape[1] == units:
            transposed = _transposed_product(case.dout, jacobians[i], g.shape)
            transposed_error = _transposed_product(np.abs(case.dout), jacobian_errors[i], g.shape)
        arguments.append(
            ArgumentEvidence(
                layer.argument_names[k],
                "parameters" if is_parameter else "inputs",
                g,
                reference,
                np.asarray(bounds[i], dtype=np.float64),
                value.reshape(g.shape[0], -1) if g.ndim >= 2 else None,
                bias,
                transposed,
                0.0 if transposed_error is None else transposed_error,
            )
        )
    batch = rows if output.ndim >= 2 else 1
    evidence_jacobians = _jacobian_evidence(layer, case, jacobians, jacobian_errors, rows, units)
    diagonal, mass, diagonal_error = _coupling(layer, case, jacobians, jacobian_errors, output)
    return Evidence(tuple(arguments), batch, evidence_jacobians, diagonal, mass, diagonal_error)


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


def _jacobian_evidence(
    layer: Any,
    case: Any,
    jacobians: Sequence[np.ndarray | None],
    jacobian_errors: Sequence[np.ndarray | None],
    rows: int,
    units: int,
) -> tuple[JacobianEvidence, ...]:
    """Every output's hand-written gradient row (all differentiated arguments side by
    side) against the reference row, from one backward call per output."""
    if rows * units > JACOBIAN_BUDGET or any(j is None for j in jacobians):
        return ()
    hand_rows = []
    for o in range(rows * units):
        one_hot = np.zeros(rows * units, dtype=case.dout.dtype)
        one_hot[o] = 1.0
        try:
            grads = layer.backward(
                one_hot.reshape(case.dout.shape), *[np.array(a) for a in case.arguments]
            )
        except Exception:  # the mismatch is reported anyway; the explanation is a bonus
            return ()
        grads = list(grads) if isinstance(grads, tuple | list) else [grads]
        if len(grads) == len(case.arguments) != len(layer.wrt):  # one per argument: keep wrt's
            grads = [grads[k] for k in layer.wrt]
        hand_rows.append(np.concatenate([np.ravel(np.asarray(g, dtype=np.float64)) for g in grads]))
    hand = np.stack(hand_rows).reshape(rows, units, -1)
    reference = np.concatenate(
        [np.reshape(j, (rows * units, -1)) for j in jacobians if j is not None], axis=1
    )
    error = np.concatenate(
        [np.reshape(e, (rows * units, -1)) for e in jacobian_errors if e is not None], axis=1
    )
    reference = reference.reshape(rows, units, -1)
    # The one-hot backward rounds like any backward: a γ of its magnitude on top.
    bound = error.reshape(reference.shape) + gamma(rows * units + 2, case.dout.dtype) * np.abs(hand)
    return (
        JacobianEvidence(
            "the Jacobian rows (one backward call per output)", hand, reference, bound
        ),
    )


def _coupling(
    layer: Any,
    case: Any,
    jacobians: Sequence[np.ndarray | None],
    jacobian_errors: Sequence[np.ndarray | None],
    output: np.ndarray,
) -> tuple[np.ndarray | None, float, np.ndarray | float]:
    """For the first parameter with an axis of the units' length: δ ⊙ B from its
    diagonal blocks, the share of the Jacobian's mass outside them, and that compact
    form's own error bound."""
    units = output.shape[-1] if output.ndim else 0
    dout = np.asarray(case.dout, dtype=np.float64).reshape(-1, max(units, 1))
    for i, k in enumerate(layer.wrt):
        jacobian, error = jacobians[i], jacobian_errors[i]
        shape = np.shape(case.arguments[k])
        if k not in layer.parameters or jacobian is None or units == 0 or shape[-1:] != (units,):
            continue
        owner = np.indices(shape)[len(shape) - 1].reshape(-1)  # the unit of each entry
        full = np.asarray(jacobian, dtype=np.float64).reshape(-1, units, owner.size)
        entries = np.arange(owner.size)
        own = full[:, owner, entries]
        outside = np.abs(full).sum() - np.abs(own).sum()
        total = float(np.abs(full).sum())
        mass = 0.0 if total == 0 else max(float(outside), 0.0) / total
        blocks = np.sum(dout[:, owner] * own, axis=0).reshape(shape)
        blocks_error: np.ndarray | float = 0.0
        if error is not None:
            own_error = np.asarray(error, dtype=np.float64).reshape(full.shape)[:, owner, entries]
            blocks_error = np.sum(np.abs(dout[:, owner]) * own_error, axis=0).reshape(shape)
        return blocks, mass, blocks_error
    return None, 0.0, 0.0
