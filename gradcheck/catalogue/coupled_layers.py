"""The coupled controls of the layer table: layers that share parameters across units.

Each of these layers breaks the block-diagonal precondition (output j depends on θⁱ for
some i ≠ j), so the compact gradient A = δ ⊙ B is not its gradient: the checker must
report them as coupled, and they are in the catalogue to show that it does. Their
unit_jacobian gives only the diagonal blocks ∂f_j/∂θʲ, which is all the compact form
would use. The rows that name these functions are in `gradcheck.catalogue.layers`; the
rules follow the same contract as the unit-partitioned ones there.
"""

from __future__ import annotations

from typing import Any

import autograd.numpy as anp
import numpy as np

from gradcheck.catalogue.activations import Activation
from gradcheck.catalogue.affine import affine, augmented
from gradcheck.core.tolerance import value_of

# ---- coupled: softmax over dense outputs, f = softmax(Wz + b) ------------------------------------


def _softmax(a: Any) -> Any:
    # The shift cancels from the result; value_of keeps it out of autograd and the error model.
    shifted = anp.exp(a - np.max(value_of(a), axis=-1, keepdims=True))
    return shifted / anp.sum(shifted, axis=-1, keepdims=True)


def softmax_forward(z: Any, theta: Any, phi: Activation) -> Any:
    return _softmax(affine(z, theta))


def softmax_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """Diagonal blocks only: ∂s_j/∂θʲ = s_j (1 - s_j) [z, 1]."""
    s = _softmax(affine(z, theta))
    return (s * (1.0 - s))[..., None] * augmented(z)[..., :, None, :]


def softmax_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """∂s_j/∂z = s_j (wʲ - Σ_k s_k wᵏ)."""
    s = _softmax(affine(z, theta))
    weights = theta[..., :-1]
    mean_weight = np.einsum("...nk,...ki->...ni", s, weights)
    return s[..., None] * (weights[..., None, :, :] - mean_weight[..., :, None, :])


# ---- coupled: layer norm over dense outputs, f = φ((a - mean a) / sqrt(var a + ε)) ---------------

_LAYER_NORM_EPSILON = 1e-3


def _layernorm_parts(z: Any, theta: Any) -> tuple[Any, Any]:
    a = affine(z, theta)
    units = a.shape[-1]
    centred = a - anp.sum(a, axis=-1, keepdims=True) / units
    scale = anp.sqrt(
        anp.sum(centred * centred, axis=-1, keepdims=True) / units + _LAYER_NORM_EPSILON
    )
    return centred / scale, scale


def layernorm_forward(z: Any, theta: Any, phi: Activation) -> Any:
    return phi(_layernorm_parts(z, theta)[0])


def layernorm_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """Diagonal blocks only: ∂y_j/∂a_j = (1 - 1/J - y_j²/J) / σ, times φ'(y_j) [z, 1]."""
    y, scale = _layernorm_parts(z, theta)
    units = y.shape[-1]
    diagonal = (1.0 - 1.0 / units - y * y / units) / scale
    return (phi.derivative(y) * diagonal)[..., None] * augmented(z)[..., :, None, :]


def layernorm_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """∂y/∂a = (1 - 11ᵀ/J - y yᵀ/J) / σ, so ∂f/∂z = φ'(y) ⊙ (∂y/∂a W)."""
    y, scale = _layernorm_parts(z, theta)
    units = y.shape[-1]
    weights = theta[..., :-1]
    through_mean = np.sum(weights, axis=-2) / units
    through_variance = np.einsum("...nk,...ki->...ni", y, weights) / units
    d_normalised = (
        weights[..., None, :, :]
        - through_mean[..., None, None, :]
        - y[..., None] * through_variance[..., :, None, :]
    )
    return (phi.derivative(y) / scale)[..., None] * d_normalised


# ---- coupled: shared-weight (circular) 1-d convolution, I = J ----------------------------------
# f_j = φ(Σ_m k_m z_(j+m mod I) + b_j), θʲ = (k_j, b_j): row j holds tap j of the one kernel
# that every unit shares, and unit j's own bias.


def _circular_indices(units: int) -> np.ndarray:
    return (np.arange(units)[:, None] + np.arange(units)[None, :]) % units


def conv_pre(z: Any, theta: Any) -> Any:
    windows = z[..., _circular_indices(z.shape[-1])]  # (..., N, J, J)
    return anp.einsum("...njm,...m->...nj", windows, theta[..., 0]) + theta[..., None, :, 1]


def conv_forward(z: Any, theta: Any, phi: Activation) -> Any:
    return phi(conv_pre(z, theta))


def conv_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """Diagonal blocks only: ∂f_j/∂(k_j, b_j) = φ'(a_j) (z_(2j mod I), 1)."""
    slope = phi.derivative(conv_pre(z, theta))
    units = theta.shape[-2]
    own_tap = z[..., (2 * np.arange(units)) % units]
    return slope[..., None] * np.stack([own_tap, np.ones_like(own_tap)], axis=-1)


def conv_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """∂f_j/∂z_i = φ'(a_j) k_(i - j mod I)."""
    slope = phi.derivative(conv_pre(z, theta))
    units = theta.shape[-2]
    taps = theta[..., (np.arange(units)[None, :] - np.arange(units)[:, None]) % units, 0]
    return slope[..., None] * taps[..., None, :, :]


# ---- coupled: tied weights, I = J: f = φ((W + Wᵀ) z + b) -----------------------------------------


def _tied_weights(theta: Any) -> Any:
    square = theta[..., :-1]
    return square + anp.swapaxes(square, -1, -2)


def tied_pre(z: Any, theta: Any) -> Any:
    return anp.einsum("...ni,...ji->...nj", z, _tied_weights(theta)) + theta[..., None, :, -1]


def tied_forward(z: Any, theta: Any, phi: Activation) -> Any:
    return phi(tied_pre(z, theta))


def tied_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """Diagonal blocks only: ∂a_j/∂W_jm = z_m + [m = j] z_j, ∂a_j/∂b_j = 1."""
    slope = phi.derivative(tied_pre(z, theta))
    units = theta.shape[-2]
    own = z[..., :, :, None] * np.eye(units, dtype=z.dtype)  # [m = j] z_j
    d_weights = z[..., :, None, :] + own
    d_bias = np.ones(d_weights.shape[:-1] + (1,), dtype=z.dtype)
    return slope[..., None] * np.concatenate([d_weights, d_bias], axis=-1)


def tied_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    weights = _tied_weights(theta)[..., None, :, :]
    return phi.derivative(tied_pre(z, theta))[..., None] * weights


def layernorm_pre(z: Any, theta: Any) -> Any:
    """The normalised outputs y, the argument of the activation."""
    return _layernorm_parts(z, theta)[0]
