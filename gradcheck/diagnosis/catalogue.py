"""Gathering the evidence about a failing catalogue case, for `gradcheck.diagnosis.classes`.

The checker keeps, for each batch of stacked cases, the hand-written side (B, ∂f/∂z, A,
δ_in with their running error bounds) and every reference it computed. For a case that
fails, this module picks the best reference per argument (autograd, else finite
differences, else the dense product), computes that one case's per-example reference
Jacobians (B row by row and ∂f/∂z), and hands everything to `diagnosis.diagnose`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradcheck.core import oracles
from gradcheck.diagnosis.classes import (
    ArgumentEvidence,
    Diagnosis,
    Evidence,
    JacobianEvidence,
    diagnose,
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


def diagnose_case(batch: Any, k: int) -> Diagnosis | None:
    """The diagnosis of stacked case k of a checker batch, or None without a reference."""
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
            )
        )
    if not arguments:
        return None
    diagonal_blocks = None
    mass = 0.0 if batch.mass is None else float(batch.mass[k])
    if batch.contributions is not None:
        contributions = batch.contributions[k]
        diagonal_blocks = contributions[np.arange(units), np.arange(units)]
    evidence = Evidence(tuple(arguments), n, jacobians, diagonal_blocks, mass)
    return diagnose(evidence)
