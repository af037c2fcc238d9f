"""The hand-written side of a catalogue check, formed the same way by both paths.

The stacked path (`gradcheck.catalogue.stacked`) calls `hand_written_side` once on K
stacked cases, the large-layer path (`gradcheck.catalogue.large`) once per block of
units: B, ∂f/∂z, A = δ ⊙ B (or the layer's own parameter_gradient) and δ_in, each on
`Tracked` arrays in the case's dtype, so that it carries the running bound of the
layer's own rounding. What the hand-written code raises, or returns in the wrong shape,
makes the case invalid. `rank_one_reference` is the seed's outer product (δ ⊙ u) vᵀ for
rank-one layers, with its bound, which the dense oracle holds A against.

This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.catalogue.activations import Activation
from gradcheck.catalogue.layers import LayerType
from gradcheck.core import compact, tolerance
from gradcheck.core.comparison import CaseError


def call_hand_written(
    layer: LayerType,
    what: str,
    function: Callable[[], Any],
    shape: tuple[int, ...],
    *,
    stacked: bool = False,
) -> tolerance.Tracked:
    """Run a layer's hand-written code; what it raises or returns misshapen makes the case
    invalid (CaseError), and plain results are tracked as exact. stacked: the leading axis
    counts stacked cases, and messages leave it out."""
    try:
        with np.errstate(all="ignore"):
            result = function()
    except Exception as error:
        raise CaseError(f"{layer.name}.{what} raised {type(error).__name__}: {error}") from None
    result = result if isinstance(result, tolerance.Tracked) else tolerance.track(result)
    if result.shape != shape:
        shown = 1 if stacked else 0
        raise CaseError(
            f"{layer.name}.{what} returned shape {result.shape[shown:]}, expected {shape[shown:]}"
        )
    return result


@dataclass(frozen=True)
class HandWritten:
    """The hand-written side of a check, each with its running error bound; a leading
    axis, when there is one, stacks cases."""

    unit_jacobian: tolerance.Tracked  # B, (..., N, J, P)
    input_jacobian: tolerance.Tracked  # ∂f/∂z, (..., N, J, I)
    gradient: tolerance.Tracked  # A = Σ_n diag(δ_n) B_n, (..., J, P)
    inputs_gradient: tolerance.Tracked  # δ_in = δ · ∂f/∂z, (..., N, I)


def hand_written_side(
    layer: LayerType, phi: Activation, z: np.ndarray, theta: np.ndarray, delta: np.ndarray
) -> tuple[HandWritten, list[tolerance.Event]]:
    """B, ∂f/∂z, A = δ ⊙ B (or the layer's own parameter_gradient) and δ_in on Tracked
    arrays in the arrays' dtype, and what the rules recorded on the way (kinks, domain
    exits). z (K?, N, I), θ (K?, J, P), δ (K?, N, J): with K, cases are stacked."""
    *stack, n, i = z.shape
    j, p = theta.shape[-2:]
    lead, stacked = tuple(stack), bool(stack)
    z_t, theta_t, delta_t = (tolerance.track(a) for a in (z, theta, delta))
    compaction = layer.parameter_gradient or compact.compact_gradient
    with tolerance.recording() as events:
        unit_jacobian = call_hand_written(
            layer, "unit_jacobian", lambda: layer.unit_jacobian(z_t, theta_t, phi),
            lead + (n, j, p), stacked=stacked,
        )  # fmt: skip
        input_jacobian = call_hand_written(
            layer, "input_jacobian", lambda: layer.input_jacobian(z_t, theta_t, phi),
            lead + (n, j, i), stacked=stacked,
        )  # fmt: skip
        gradient = call_hand_written(
            layer, "parameter_gradient", lambda: compaction(delta_t, unit_jacobian),
            lead + (j, p), stacked=stacked,
        )  # fmt: skip
        inputs_gradient = compact.input_gradient(delta_t, input_jacobian)
    return HandWritten(unit_jacobian, input_jacobian, gradient, inputs_gradient), events


def rank_one_reference(
    layer: LayerType, phi: Activation, z: np.ndarray, theta: np.ndarray, delta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The seed's (δ ⊙ u) vᵀ for a layer with B_n = u_n v_nᵀ, and the bound on its
    difference from A. Stacked or not, as z, θ and δ are.

    Both sum the same N products; A rounds B = fl(u v) and then fl(δ B), the outer
    product fl(δ u) and then fl(fl(δ u) v). In Higham's model fl(a b) = a b (1 + ε) + η'
    (|ε| <= u, |η'| <= η/2, η the smallest subnormal) each path is within
    γ₂ |δ u v| of δ u v, plus the underflow of its first product carried by its second
    factor and that of its second: |δ| (1 + u) η/2 + η/2 for A, |v| (1 + u) η/2 + η/2 for
    the outer product. With the two sums, the difference is at most

        2 γ_(N+2) Σ_n |δ_nj u_nj| |v_np|  +  η Σ_n ((1 + u)(|δ_nj| + |v_np|)/2 + 1).

    (A subnormal B, as sigmoid'(-93) in float32, is where the second term matters: an η
    lost in u v comes back multiplied by |δ|.)
    """
    assert layer.rank_one is not None
    u, v = layer.rank_one(z, theta, phi)
    outer = compact.rank_one_gradient(delta, u, v)
    weighted = np.abs(delta * u).astype(np.float64)
    magnitude = np.swapaxes(weighted, -1, -2) @ np.abs(v)  # Σ_n |δ_nj u_nj| |v_np|
    count = delta.shape[-2]
    by_unit = np.asarray(np.sum(np.abs(delta), axis=-2, dtype=np.float64))  # Σ_n |δ_nj|
    by_parameter = np.asarray(np.sum(np.abs(v), axis=-2, dtype=np.float64))  # Σ_n |v_np|
    carried = by_unit[..., :, None] + by_parameter[..., None, :]  # (..., J, P)
    unit = tolerance.unit_roundoff(z.dtype)
    eta = float(np.finfo(z.dtype).smallest_subnormal)
    bound = 2.0 * tolerance.gamma(count + 2, z.dtype) * magnitude
    bound += eta * ((1.0 + unit) / 2.0 * carried + count)
    return outer, bound
