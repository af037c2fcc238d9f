"""The catalogue of layer types: forward, hand-written unit Jacobian B and input Jacobian.

A layer maps a batch of inputs z (N × I) to outputs f (N × J) with parameters θ (J × P),
row j = θʲ the parameters of output unit j. Each row of `LAYER_TYPES` gives

- forward(z, θ, φ): f written with autograd.numpy. It broadcasts over leading axes of
  z (..., N, I) and θ (..., J, P), so that finite differences evaluate many perturbed
  copies in one call;
- unit_jacobian(z, θ, φ): B, N × J × P, B[n, j] = ∂f_nj/∂θʲ (for a coupled layer, the
  diagonal blocks of ∂f/∂θ, which the compact form would wrongly take for all of it);
- input_jacobian(z, θ, φ): N × J × I, ∂f_nj/∂z_n;
- rank_one(z, θ, φ), where B_n = u_n v_nᵀ: the factors u (N × J), v (N × P);
- whether the layer is coupled: output j then depends on θⁱ for some i ≠ j, and the
  compact gradient A = δ ⊙ B is not the gradient.

The hand-written functions are plain numpy on the inputs they get, and broadcast over
leading axes as the forward does (the checker stacks many cases of one shape and checks
them in one pass). They also run on `Tracked` arrays, which is how the error model bounds
their rounding; write them with the operations `gradcheck.core.tolerance` has rules for.

Adding a layer type is adding a row to `LAYER_TYPES`, with its rules above the table. The
rules of the four coupled controls are in `gradcheck.catalogue.coupled_layers`; the row's
record, `LayerType`, with its shape check, in `gradcheck.catalogue.layer_type`; the rules
that place cases clear of kinks in `gradcheck.catalogue.kinks`; the affine algebra the
rows share in `gradcheck.catalogue.affine`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import autograd.numpy as anp
import numpy as np

from gradcheck.catalogue import coupled_layers as coupled
from gradcheck.catalogue.activations import ACTIVATIONS, Activation
from gradcheck.catalogue.affine import affine, augmented, euclidean_norm
from gradcheck.catalogue.kinks import bias_shift, leading_piece
from gradcheck.catalogue.layer_type import LayerType
from gradcheck.catalogue.tables import resolve, table

__all__ = ["LAYER_TYPES", "LayerType", "identity_if_unused", "resolve_layer_type"]

_SIGMOID = ACTIVATIONS["sigmoid"]
_IDENTITY = ACTIVATIONS["identity"]


# ---- dense: f_j = φ(wʲ·z + b_j) -------------------------------------------------------------


def _dense_forward(z: Any, theta: Any, phi: Activation) -> Any:
    return phi(affine(z, theta))


def _dense_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    slope, inputs = _dense_rank_one(z, theta, phi)
    return slope[..., :, :, None] * inputs[..., :, None, :]


def _dense_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    return phi.derivative(affine(z, theta))[..., :, :, None] * theta[..., None, :, :-1]


def _dense_rank_one(z: Any, theta: Any, phi: Activation) -> tuple[Any, Any]:
    """B_n = u_n v_nᵀ with u = φ'(a), v = [z, 1]: the seed's outer-product case."""
    return phi.derivative(affine(z, theta)), augmented(z)


# ---- linear: f_j = wʲ·z + b_j -----------------------------------------------------------------


def _linear_forward(z: Any, theta: Any, phi: Activation) -> Any:
    return affine(z, theta)


def _linear_rank_one(z: Any, theta: Any, phi: Activation) -> tuple[Any, Any]:
    """Every row of B_n is the same vector [z_n, 1]: u = 1."""
    units = theta.shape[-2]
    return np.ones(z.shape[:-1] + (units,), dtype=z.dtype), augmented(z)


def _linear_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    ones, inputs = _linear_rank_one(z, theta, phi)
    return ones[..., :, :, None] * inputs[..., :, None, :]


def _linear_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    return np.ones(z.shape[:-1] + (1, 1), dtype=z.dtype) * theta[..., None, :, :-1]


# ---- rbf: f_j = exp(-γ_j ‖z - cʲ‖²), θʲ = (cʲ, γ_j) ------------------------------------------


def _rbf_parts(z: Any, theta: Any) -> tuple[Any, Any, Any]:
    difference = z[..., :, None, :] - theta[..., None, :, :-1]  # (..., N, J, I)
    return difference, anp.sum(difference * difference, axis=-1), theta[..., None, :, -1]


def _rbf_forward(z: Any, theta: Any, phi: Activation) -> Any:
    _, squared_distance, width = _rbf_parts(z, theta)
    return anp.exp(-width * squared_distance)


def _rbf_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """∂f/∂cʲ = 2γ f (z - cʲ), ∂f/∂γ = -‖z - cʲ‖² f."""
    difference, squared_distance, width = _rbf_parts(z, theta)
    f = np.exp(-width * squared_distance)
    centre = (2.0 * width * f)[..., None] * difference
    return np.concatenate([centre, (-squared_distance * f)[..., None]], axis=-1)


def _rbf_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    difference, squared_distance, width = _rbf_parts(z, theta)
    f = np.exp(-width * squared_distance)
    return (-2.0 * width * f)[..., None] * difference


# ---- elementwise (I = J): f_j = φ(α_j z_j + β_j) ------------------------------------------------


def _elementwise_pre(z: Any, theta: Any) -> Any:
    return theta[..., None, :, 0] * z + theta[..., None, :, 1]


def _elementwise_forward(z: Any, theta: Any, phi: Activation) -> Any:
    return phi(_elementwise_pre(z, theta))


def _elementwise_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    slope = phi.derivative(_elementwise_pre(z, theta))
    return slope[..., None] * np.stack([z, np.ones_like(z)], axis=-1)


def _elementwise_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    slope = phi.derivative(_elementwise_pre(z, theta)) * theta[..., None, :, 0]
    return slope[..., None] * np.eye(theta.shape[-2], dtype=z.dtype)


# ---- weight-normalised dense: f_j = φ(g_j vʲ·z / ‖vʲ‖ + b_j), θʲ = (vʲ, g_j, b_j) ------------------


def _weightnorm_parts(z: Any, theta: Any) -> tuple[Any, Any, Any, Any]:
    direction, gain, bias = theta[..., :-2], theta[..., -2], theta[..., -1]
    norm = euclidean_norm(direction)[..., None, :]
    projection = anp.einsum("...ni,...ji->...nj", z, direction)
    pre = gain[..., None, :] * projection / norm + bias[..., None, :]
    return pre, projection, norm, gain[..., None, :]


def _weightnorm_forward(z: Any, theta: Any, phi: Activation) -> Any:
    return phi(_weightnorm_parts(z, theta)[0])


def _weightnorm_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """∂a/∂v = (g/‖v‖)(z - (v·z) v/‖v‖²), ∂a/∂g = v·z/‖v‖, ∂a/∂b = 1, each times φ'(a)."""
    pre, projection, norm, gain = _weightnorm_parts(z, theta)
    slope = phi.derivative(pre)
    direction = theta[..., None, :, :-2]
    along = (projection / (norm * norm))[..., None] * direction
    d_direction = (gain / norm)[..., None] * (z[..., :, None, :] - along)
    d_gain = (projection / norm)[..., None]
    d_bias = np.ones_like(d_gain)
    return slope[..., None] * np.concatenate([d_direction, d_gain, d_bias], axis=-1)


def _weightnorm_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    pre, _, norm, gain = _weightnorm_parts(z, theta)
    return (phi.derivative(pre) * gain / norm)[..., None] * theta[..., None, :, :-2]


# ---- cosine unit: f_j = φ(wʲ·z / (‖wʲ‖ ‖z‖)) ------------------------------------------------------


def _cosine_parts(z: Any, theta: Any) -> tuple[Any, Any, Any]:
    weight_norm = euclidean_norm(theta)[..., None, :]
    input_norm = euclidean_norm(z)[..., :, None]
    cosine = anp.einsum("...ni,...ji->...nj", z, theta) / (weight_norm * input_norm)
    return cosine, weight_norm, input_norm


def _cosine_forward(z: Any, theta: Any, phi: Activation) -> Any:
    return phi(_cosine_parts(z, theta)[0])


def _cosine_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """∂c/∂w = z/(‖w‖‖z‖) - c w/‖w‖², times φ'(c)."""
    cosine, weight_norm, input_norm = _cosine_parts(z, theta)
    slope = phi.derivative(cosine)
    towards_input = z[..., :, None, :] / (weight_norm * input_norm)[..., None]
    along_weight = (cosine / (weight_norm * weight_norm))[..., None] * theta[..., None, :, :]
    return slope[..., None] * (towards_input - along_weight)


def _cosine_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """∂c/∂z = w/(‖w‖‖z‖) - c z/‖z‖², times φ'(c)."""
    cosine, weight_norm, input_norm = _cosine_parts(z, theta)
    slope = phi.derivative(cosine)
    towards_weight = theta[..., None, :, :] / (weight_norm * input_norm)[..., None]
    along_input = (cosine / (input_norm * input_norm))[..., None] * z[..., :, None, :]
    return slope[..., None] * (towards_weight - along_input)


# ---- maxout (k pieces): f_j = max_m (Wʲ_m·z + bʲ_m), θʲ = (Wʲ_1, bʲ_1, ..., Wʲ_k, bʲ_k) --------


def _maxout_pieces(z: Any, theta: Any) -> Any:
    inputs = z.shape[-1] + 1
    weights = anp.reshape(theta, theta.shape[:-1] + (theta.shape[-1] // inputs, inputs))
    return anp.einsum("...ni,...jmi->...njm", augmented(z), weights), weights


def _maxout_forward(z: Any, theta: Any, phi: Activation) -> Any:
    return anp.max(_maxout_pieces(z, theta)[0], axis=-1)


def _maxout_winners(z: Any, theta: Any) -> tuple[np.ndarray, Any]:
    """One-hot (..., N, J, k) of each unit's winning piece, and the pieces' weights."""
    pieces, weights = _maxout_pieces(z, theta)
    winner = np.argmax(pieces, axis=-1)
    return (np.arange(weights.shape[-2]) == winner[..., None]).astype(z.dtype), weights


def _maxout_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """Row j is [z, 1] in the slot of the winning piece, 0 elsewhere."""
    chosen, _ = _maxout_winners(z, theta)
    slots = chosen[..., None] * augmented(z)[..., :, None, None, :]
    return np.reshape(slots, slots.shape[:-2] + (-1,))


def _maxout_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """∂f_j/∂z = the winning piece's weights."""
    chosen, weights = _maxout_winners(z, theta)
    return np.einsum("...njm,...jmi->...nji", chosen, weights[..., :-1])


def _gated_clear(z: Any, theta: Any, phi: Activation) -> np.ndarray:
    """Shift the value path's bias (column I of θ); the sigmoid gate has no kinks."""
    half = theta.shape[-1] // 2
    return bias_shift(_gated_value, half - 1)(z, theta, phi)


def _maxout_accepts(inputs: int, parameters: int) -> bool:
    return parameters > 0 and parameters % (inputs + 1) == 0


# ---- gated: f_j = φ(θᵃʲ·[z, 1]) · σ(θᵇʲ·[z, 1]) -----------------------------------------------------


def _gated_parts(z: Any, theta: Any) -> tuple[Any, Any]:
    half = theta.shape[-1] // 2
    return affine(z, theta[..., :half]), affine(z, theta[..., half:])


def _gated_forward(z: Any, theta: Any, phi: Activation) -> Any:
    value, gate = _gated_parts(z, theta)
    return phi(value) * _SIGMOID(gate)


def _gated_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    value, gate = _gated_parts(z, theta)
    inputs = augmented(z)[..., :, None, :]
    d_value = (phi.derivative(value) * _SIGMOID(gate))[..., None] * inputs
    d_gate = (phi(value) * _SIGMOID.derivative(gate))[..., None] * inputs
    return np.concatenate([d_value, d_gate], axis=-1)


def _gated_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    value, gate = _gated_parts(z, theta)
    half = theta.shape[-1] // 2
    value_weights = theta[..., None, :, : half - 1]
    gate_weights = theta[..., None, :, half:-1]
    through_value = (phi.derivative(value) * _SIGMOID(gate))[..., None] * value_weights
    through_gate = (phi(value) * _SIGMOID.derivative(gate))[..., None] * gate_weights
    return through_value + through_gate


# ---- the catalogue ------------------------------------------------------------------------------


def _plus_one(i: int) -> int:
    return i + 1


def _last(inputs: int, parameters: int) -> tuple[int, ...]:
    return (parameters - 1,)


def _weightnorm_pre(z: Any, theta: Any) -> Any:
    return _weightnorm_parts(z, theta)[0]


def _cosine_pre(z: Any, theta: Any) -> Any:
    return _cosine_parts(z, theta)[0]


def _gated_value(z: Any, theta: Any) -> Any:
    return _gated_parts(z, theta)[0]


def _maxout_values(z: Any, theta: Any) -> Any:
    return _maxout_pieces(z, theta)[0]


LAYER_TYPES: Mapping[str, LayerType] = table(
    "layer type",
    LayerType("dense", "f_j = φ(wʲ·z + b_j)",
              _dense_forward, _dense_unit_jacobian, _dense_input_jacobian, _plus_one,
              rank_one=_dense_rank_one, clear_of_kinks=bias_shift(affine, -1),
              preactivation=affine, bias_columns=_last),
    LayerType("linear", "f_j = wʲ·z + b_j",
              _linear_forward, _linear_unit_jacobian, _linear_input_jacobian, _plus_one,
              rank_one=_linear_rank_one, uses_activation=False, kinks="none", bias_columns=_last),
    LayerType("rbf", "f_j = exp(-γ_j ‖z - cʲ‖²)",
              _rbf_forward, _rbf_unit_jacobian, _rbf_input_jacobian, _plus_one,
              uses_activation=False, kinks="none", positive_columns=(-1,)),
    LayerType("elementwise", "f_j = φ(α_j z_j + β_j)",
              _elementwise_forward, _elementwise_unit_jacobian, _elementwise_input_jacobian,
              lambda i: 2, square=True, clear_of_kinks=bias_shift(_elementwise_pre, 1),
              preactivation=_elementwise_pre, bias_columns=_last),
    LayerType("weightnorm", "f_j = φ(g_j vʲ·z / ‖vʲ‖ + b_j)",
              _weightnorm_forward, _weightnorm_unit_jacobian, _weightnorm_input_jacobian,
              lambda i: i + 2, kinks="the activation's; ‖vʲ‖ = 0",
              clear_of_kinks=bias_shift(_weightnorm_pre, -1), preactivation=_weightnorm_pre,
              bias_columns=_last),
    LayerType("cosine", "f_j = φ(wʲ·z / (‖wʲ‖ ‖z‖))",
              _cosine_forward, _cosine_unit_jacobian, _cosine_input_jacobian, lambda i: i,
              kinks="the activation's; ‖wʲ‖ = 0 or ‖z‖ = 0", preactivation=_cosine_pre),
    LayerType("maxout", "f_j = max_m (Wʲ_m·z + bʲ_m)",
              _maxout_forward, _maxout_unit_jacobian, _maxout_input_jacobian,
              lambda i: 2 * (i + 1), uses_activation=False, accepts_parameters=_maxout_accepts,
              kinks="ties between pieces", clear_of_kinks=leading_piece(_maxout_values),
              bias_columns=lambda i, p: tuple(range(i, p, i + 1))),
    LayerType("gated", "f_j = φ(aʲ·z + α_j) σ(cʲ·z + β_j)",
              _gated_forward, _gated_unit_jacobian, _gated_input_jacobian,
              lambda i: 2 * (i + 1), clear_of_kinks=_gated_clear, preactivation=_gated_value,
              bias_columns=lambda i, p: (i, p - 1)),
    LayerType("softmax_dense", "f = softmax(W z + b)",
              coupled.softmax_forward, coupled.softmax_unit_jacobian,
              coupled.softmax_input_jacobian, _plus_one,
              coupled=True, uses_activation=False, min_units=2, kinks="none", bias_columns=_last),
    LayerType("layernorm_dense", "f = φ(layernorm(W z + b))",
              coupled.layernorm_forward, coupled.layernorm_unit_jacobian,
              coupled.layernorm_input_jacobian, _plus_one,
              coupled=True, min_units=2, preactivation=coupled.layernorm_pre, bias_columns=_last),
    LayerType("conv_shared", "f_j = φ(Σ_m k_m z_(j+m mod I) + b_j)",
              coupled.conv_forward, coupled.conv_unit_jacobian, coupled.conv_input_jacobian,
              lambda i: 2, coupled=True, square=True, min_units=2,
              clear_of_kinks=bias_shift(coupled.conv_pre, 1),
              preactivation=coupled.conv_pre, bias_columns=_last),
    LayerType("tied", "f = φ((W + Wᵀ) z + b)",
              coupled.tied_forward, coupled.tied_unit_jacobian, coupled.tied_input_jacobian,
              _plus_one, coupled=True, square=True, min_units=2,
              clear_of_kinks=bias_shift(coupled.tied_pre, -1),
              preactivation=coupled.tied_pre, bias_columns=_last),
)  # fmt: skip


def resolve_layer_type(layer_type: str | LayerType) -> LayerType:
    """A LayerType from a row name or a LayerType."""
    return resolve("layer type", LAYER_TYPES, LayerType, layer_type)


def identity_if_unused(layer_type: LayerType, activation: Activation) -> Activation:
    """Layer types without an activation ignore it; report them with identity."""
    return activation if layer_type.uses_activation else _IDENTITY
