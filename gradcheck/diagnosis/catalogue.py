"""Gathering the evidence about a failing catalogue case, for `gradcheck.diagnosis.classes`.

The checker keeps, for each batch of stacked cases, the hand-written side (B, ∂f/∂z, A,
δ_in with their running error bounds) and every reference it computed. For a case that
fails, this module picks the best reference per argument (autograd, else finite
differences, else the dense product), computes that one case's per-example reference
Jacobians (B row by row and ∂f/∂z), and hands everything to `diagnosis.classes.decide`.

Beside the case itself, the decision reads one more draw: the same case with its batch
stacked twice (z and δ repeated, N doubled), on which the layer's hand-written code runs
again. A catalogue layer maps each example on its own, so the true gradients there are
exactly twice θ's and z's repeated: a factor that follows N (a mean where a sum belongs)
changes with it, a constant factor does not. The reproduction, which checks the case
again, builds the same stacked case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from gradcheck.core import oracles
from gradcheck.diagnosis.classes import (
    ArgumentEvidence,
    Diagnosis,
    Evidence,
    JacobianEvidence,
    decide,
)

#: Above this many outputs (N·J) a case's per-example Jacobians are not computed.
JACOBIAN_BUDGET = 4096


def _reference(batch: Any, target: str, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Case k's best reference for a target, with its own error bound."""
    for oracle in ("autograd", "finite-differences", "dense"):
        found = batch.references.get((oracle, target))
        if found is not None:
            return np.asarray(found.value[k], dtype=np.float64), np.asarray(found.error[k])
    return None


def diagnose_case(
    batch: Any, k: int, hand_written: Callable[[Any, Any, Any], Any] | None = None
) -> Diagnosis | None:
    """The diagnosis of stacked case k of a checker batch, or None without a reference.
    hand_written(z, θ, δ) forms the hand-written side of one case (B, ∂f/∂z, A, δ_in
    with their bounds), for the case with its batch stacked twice."""
    hand = batch.hand
    layer, phi = batch.layer, batch.phi
    z, theta, delta = batch.z64[k], batch.theta64[k], batch.delta64[k]
    (n, inputs), (units, parameters) = z.shape, theta.shape
    jacobians: tuple[JacobianEvidence, ...] = ()
    transposed_inputs = None
    if n * units <= JACOBIAN_BUDGET:
        unit_jacobian, input_jacobian = oracles.example_jacobians(batch.forward, z, theta)
        preactivation = derivative = None
        if layer.preactivation is not None and layer.uses_activation:
            preactivation = np.asarray(layer.preactivation(z, theta))
            derivative = oracles.elementwise_derivative(phi, preactivation).value
        jacobians = tuple(
            JacobianEvidence(
                name,
                np.asarray(written.value[k], dtype=np.float64),
                reference.value,
                written.error[k] + reference.error,
                preactivation,
                derivative,
            )
            for name, written, reference in (
                ("B = ∂f/∂θ", hand.unit_jacobian, unit_jacobian),
                ("∂f/∂z", hand.input_jacobian, input_jacobian),
            )
        )
        if inputs == units:  # δ times the per-example Jacobian instead of its transpose
            transposed_inputs = np.einsum("nj,nij->ni", delta, input_jacobian.value)
    arguments = []
    found = _reference(batch, "parameters", k)
    if layer.coupled:
        # A declared coupled layer's B claims only the diagonal blocks: hold it to those;
        # when no oracle measured them, its parameters count as right (unjudged).
        found = (np.asarray(hand.gradient.value[k], dtype=np.float64), hand.gradient.error[k])
        if batch.contributions is not None:
            diagonal = (k, np.arange(units), np.arange(units))
            found = (batch.contributions[diagonal], batch.contributions_error[diagonal])
    diagonal_blocks = None
    mass = 0.0 if batch.mass is None else float(batch.mass[k])
    if batch.contributions is not None:
        diagonal_blocks = batch.contributions[k][np.arange(units), np.arange(units)]
    if found is not None:
        reference, error = found
        bias = np.zeros(theta.shape, dtype=bool)
        bias[:, list(layer.bias_columns(inputs, parameters))] = True
        arguments.append(
            ArgumentEvidence(
                "θ",
                "parameters",
                np.asarray(hand.gradient.value[k], dtype=np.float64),
                reference,
                hand.gradient.error[k] + error,
                theta,
                bias,
                reference.T if units == parameters else None,
                batch=n,
                # each column of θ is one kind of parameter (a weight, the bias, a centre)
                parts=np.broadcast_to(np.arange(parameters), theta.shape),
                uncoupled=diagonal_blocks,
                cross_mass=mass,
                rounding=hand.gradient.error[k],
            )
        )
    found = _reference(batch, "inputs", k)
    if found is not None:
        reference, error = found
        arguments.append(
            ArgumentEvidence(
                "z",
                "inputs",
                np.asarray(hand.inputs_gradient.value[k], dtype=np.float64),
                reference,
                hand.inputs_gradient.error[k] + error,
                z,
                None,
                transposed_inputs,
                batch=n,
                rounding=hand.inputs_gradient.error[k],
            )
        )
    if not arguments:
        return None
    evidence = Evidence(tuple(arguments), n, jacobians, dtype=batch.z.dtype.name)
    doubled = None if hand_written is None else _stacked_twice(batch, k, hand_written, evidence)
    return decide(evidence, () if doubled is None else (doubled,))


def _twice(array: Any) -> Any:
    return None if array is None else 2.0 * np.asarray(array)


def _repeated(array: Any) -> Any:
    return None if array is None else np.concatenate([array, array])


def _stacked_twice(
    batch: Any, k: int, hand_written: Callable[[Any, Any, Any], Any], shown: Evidence
) -> Evidence | None:
    """The evidence of case k with its batch stacked twice (see the module docstring)."""
    z, theta, delta = batch.z[k], batch.theta[k], batch.delta[k]
    try:
        with np.errstate(all="ignore"):
            hand = hand_written(np.concatenate([z, z]), theta, np.concatenate([delta, delta]))
    except Exception:  # the case failed already; this draw would only explain it
        return None
    arguments = []
    for argument in shown.arguments:
        with np.errstate(invalid="ignore"):
            reference_error = argument.bound - np.asarray(argument.rounding)
        twice = argument.name == "θ"
        found = hand.gradient if twice else hand.inputs_gradient
        value = np.asarray(found.value, dtype=np.float64)
        error = np.broadcast_to(np.asarray(found.error, dtype=np.float64), value.shape)

        doubled = _twice if twice else _repeated
        arguments.append(
            replace(
                argument,
                hand_written=value,
                reference=doubled(argument.reference),
                bound=error + doubled(reference_error),
                values=argument.values if twice else doubled(argument.values),
                transposed=doubled(argument.transposed),
                batch=2 * shown.batch,
                uncoupled=doubled(argument.uncoupled),
                rounding=error,
            )
        )
    n = 2 * shown.batch
    description = f"the case above with its batch stacked twice, N = {n}"
    return Evidence(tuple(arguments), n, (), description, shown.dtype)
