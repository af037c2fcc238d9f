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
Adding a layer type is adding a row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import autograd.numpy as anp
import numpy as np

from gradcheck.catalogue.activations import ACTIVATIONS, Activation
from gradcheck.core.tolerance import value_of

Forward = Callable[[Any, Any, Activation], Any]
RankOne = Callable[[Any, Any, Activation], tuple[Any, Any]]

_SIGMOID = ACTIVATIONS["sigmoid"]
_IDENTITY = ACTIVATIONS["identity"]


@dataclass(frozen=True)
class LayerType:
    """A family f(z; θ) with its per-unit parameter partition and hand-written Jacobians.

    parameters_per_unit(I) is P for I inputs; accepts_parameters(I, P), when given,
    widens that to a family of valid P (maxout's number of pieces). square layers need
    I = J. coupled layers break the block-diagonal precondition; min_units is the
    smallest J at which they do. parameter_gradient(δ, B), when given, is a hand-written
    way of forming A from δ and B in place of `gradcheck.core.compact.compact_gradient`.

    Two fields serve the generators. clear_of_kinks(z, θ, φ) gets z and θ as Tracked
    arrays whose error is the finite-difference step and returns θ moved so that no
    pre-activation lies within twice its uncertainty of a kink (None: the layer cannot,
    so generators pair it only with smooth activations). positive_columns are columns of
    θ that must be positive (rbf widths).

    Two fields serve explanations of failures: preactivation(z, θ), the argument of the
    activation (N × J), and bias_columns(I, P), the columns of θ that hold biases.
    """

    name: str
    formula: str
    forward: Forward
    unit_jacobian: Forward
    input_jacobian: Forward
    parameters_per_unit: Callable[[int], int]
    rank_one: RankOne | None = None
    coupled: bool = False
    uses_activation: bool = True
    square: bool = False
    min_units: int = 1
    accepts_parameters: Callable[[int, int], bool] | None = None
    kinks: str = "the activation's"
    parameter_gradient: Callable[[Any, Any], Any] | None = None
    clear_of_kinks: Callable[[Any, Any, Activation], np.ndarray] | None = None
    positive_columns: tuple[int, ...] = ()
    preactivation: Callable[[Any, Any], Any] | None = None
    bias_columns: Callable[[int, int], tuple[int, ...]] = lambda inputs, parameters: ()

    def __repr__(self) -> str:
        return f"LayerType({self.name!r})"

    def shape_problem(self, inputs: int, units: int, parameters: int) -> str | None:
        """Why (I, J, P) is not a valid shape for this layer type, or None."""
        if self.square and inputs != units:
            return f"{self.name} needs as many inputs as units, got I={inputs}, J={units}"
        if units < self.min_units:
            return f"{self.name} needs at least {self.min_units} units, got J={units}"
        expected = self.parameters_per_unit(inputs)
        ok = (
            self.accepts_parameters(inputs, parameters)
            if self.accepts_parameters is not None
            else parameters == expected
        )
        if not ok:
            return (
                f"theta must have {expected} columns for {self.name} with I={inputs} "
                f"(one row of per-unit parameters θʲ per unit), got {parameters}"
            )
        return None


# ---- shared pieces ----------------------------------------------------------------------


def _augmented(z: Any) -> Any:
    """[z, 1]: the input with a constant 1 appended, so that θʲ·[z, 1] = wʲ·z + b_j."""
    return anp.concatenate([z, anp.ones_like(z[..., :1])], axis=-1)


def _affine(z: Any, theta: Any) -> Any:
    """a_nj = θʲ·[z_n, 1], broadcast over leading axes of z and θ (a matrix product,
    which BLAS makes several times faster than einsum on large layers)."""
    return anp.matmul(_augmented(z), anp.swapaxes(theta, -1, -2))


def _norm(x: Any) -> Any:
    return anp.sqrt(anp.sum(x * x, axis=-1))


# ---- dense: f_j = φ(wʲ·z + b_j) -------------------------------------------------------------


def _dense_forward(z: Any, theta: Any, phi: Activation) -> Any:
    return phi(_affine(z, theta))


def _dense_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    slope, inputs = _dense_rank_one(z, theta, phi)
    return slope[..., :, :, None] * inputs[..., :, None, :]


def _dense_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    return phi.derivative(_affine(z, theta))[..., :, :, None] * theta[..., None, :, :-1]


def _dense_rank_one(z: Any, theta: Any, phi: Activation) -> tuple[Any, Any]:
    """B_n = u_n v_nᵀ with u = φ'(a), v = [z, 1]: the seed's outer-product case."""
    return phi.derivative(_affine(z, theta)), _augmented(z)


# ---- linear: f_j = wʲ·z + b_j -----------------------------------------------------------------


def _linear_forward(z: Any, theta: Any, phi: Activation) -> Any:
    return _affine(z, theta)


def _linear_rank_one(z: Any, theta: Any, phi: Activation) -> tuple[Any, Any]:
    """Every row of B_n is the same vector [z_n, 1]: u = 1."""
    units = theta.shape[-2]
    return np.ones(z.shape[:-1] + (units,), dtype=z.dtype), _augmented(z)


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
    norm = _norm(direction)[..., None, :]
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
    weight_norm = _norm(theta)[..., None, :]
    input_norm = _norm(z)[..., :, None]
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
    return anp.einsum("...ni,...jmi->...njm", _augmented(z), weights), weights


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
    slots = chosen[..., None] * _augmented(z)[..., :, None, None, :]
    return np.reshape(slots, slots.shape[:-2] + (-1,))


def _maxout_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """∂f_j/∂z = the winning piece's weights."""
    chosen, weights = _maxout_winners(z, theta)
    return np.einsum("...njm,...jmi->...nji", chosen, weights[..., :-1])


def _gated_clear(z: Any, theta: Any, phi: Activation) -> np.ndarray:
    """Shift the value path's bias (column I of θ); the sigmoid gate has no kinks."""
    half = theta.shape[-1] // 2
    return _bias_shift(_gated_value, half - 1)(z, theta, phi)


def _maxout_accepts(inputs: int, parameters: int) -> bool:
    return parameters > 0 and parameters % (inputs + 1) == 0


# ---- gated: f_j = φ(θᵃʲ·[z, 1]) · σ(θᵇʲ·[z, 1]) -----------------------------------------------------


def _gated_parts(z: Any, theta: Any) -> tuple[Any, Any]:
    half = theta.shape[-1] // 2
    return _affine(z, theta[..., :half]), _affine(z, theta[..., half:])


def _gated_forward(z: Any, theta: Any, phi: Activation) -> Any:
    value, gate = _gated_parts(z, theta)
    return phi(value) * _SIGMOID(gate)


def _gated_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    value, gate = _gated_parts(z, theta)
    inputs = _augmented(z)[..., :, None, :]
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


# ---- coupled: softmax over dense outputs, f = softmax(Wz + b) -------------------------------------


def _softmax(a: Any) -> Any:
    # The shift cancels from the result; value_of keeps it out of autograd and the error model.
    shifted = anp.exp(a - np.max(value_of(a), axis=-1, keepdims=True))
    return shifted / anp.sum(shifted, axis=-1, keepdims=True)


def _softmax_forward(z: Any, theta: Any, phi: Activation) -> Any:
    return _softmax(_affine(z, theta))


def _softmax_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """Diagonal blocks only: ∂s_j/∂θʲ = s_j (1 - s_j) [z, 1]."""
    s = _softmax(_affine(z, theta))
    return (s * (1.0 - s))[..., None] * _augmented(z)[..., :, None, :]


def _softmax_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """∂s_j/∂z = s_j (wʲ - Σ_k s_k wᵏ)."""
    s = _softmax(_affine(z, theta))
    weights = theta[..., :-1]
    mean_weight = np.einsum("...nk,...ki->...ni", s, weights)
    return s[..., None] * (weights[..., None, :, :] - mean_weight[..., :, None, :])


# ---- coupled: layer norm over dense outputs, f = φ((a - mean a) / sqrt(var a + ε)) ------------------

_LAYER_NORM_EPSILON = 1e-3


def _layernorm_parts(z: Any, theta: Any) -> tuple[Any, Any]:
    a = _affine(z, theta)
    units = a.shape[-1]
    centred = a - anp.sum(a, axis=-1, keepdims=True) / units
    scale = anp.sqrt(
        anp.sum(centred * centred, axis=-1, keepdims=True) / units + _LAYER_NORM_EPSILON
    )
    return centred / scale, scale


def _layernorm_forward(z: Any, theta: Any, phi: Activation) -> Any:
    return phi(_layernorm_parts(z, theta)[0])


def _layernorm_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """Diagonal blocks only: ∂y_j/∂a_j = (1 - 1/J - y_j²/J) / σ, times φ'(y_j) [z, 1]."""
    y, scale = _layernorm_parts(z, theta)
    units = y.shape[-1]
    diagonal = (1.0 - 1.0 / units - y * y / units) / scale
    return (phi.derivative(y) * diagonal)[..., None] * _augmented(z)[..., :, None, :]


def _layernorm_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
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


def _conv_pre(z: Any, theta: Any) -> Any:
    windows = z[..., _circular_indices(z.shape[-1])]  # (..., N, J, J)
    return anp.einsum("...njm,...m->...nj", windows, theta[..., 0]) + theta[..., None, :, 1]


def _conv_forward(z: Any, theta: Any, phi: Activation) -> Any:
    return phi(_conv_pre(z, theta))


def _conv_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """Diagonal blocks only: ∂f_j/∂(k_j, b_j) = φ'(a_j) (z_(2j mod I), 1)."""
    slope = phi.derivative(_conv_pre(z, theta))
    units = theta.shape[-2]
    own_tap = z[..., (2 * np.arange(units)) % units]
    return slope[..., None] * np.stack([own_tap, np.ones_like(own_tap)], axis=-1)


def _conv_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """∂f_j/∂z_i = φ'(a_j) k_(i - j mod I)."""
    slope = phi.derivative(_conv_pre(z, theta))
    units = theta.shape[-2]
    taps = theta[..., (np.arange(units)[None, :] - np.arange(units)[:, None]) % units, 0]
    return slope[..., None] * taps[..., None, :, :]


# ---- coupled: tied weights, I = J: f = φ((W + Wᵀ) z + b) ------------------------------------------


def _tied_weights(theta: Any) -> Any:
    square = theta[..., :-1]
    return square + anp.swapaxes(square, -1, -2)


def _tied_pre(z: Any, theta: Any) -> Any:
    return anp.einsum("...ni,...ji->...nj", z, _tied_weights(theta)) + theta[..., None, :, -1]


def _tied_forward(z: Any, theta: Any, phi: Activation) -> Any:
    return phi(_tied_pre(z, theta))


def _tied_unit_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    """Diagonal blocks only: ∂a_j/∂W_jm = z_m + [m = j] z_j, ∂a_j/∂b_j = 1."""
    slope = phi.derivative(_tied_pre(z, theta))
    units = theta.shape[-2]
    own = z[..., :, :, None] * np.eye(units, dtype=z.dtype)  # [m = j] z_j
    d_weights = z[..., :, None, :] + own
    d_bias = np.ones(d_weights.shape[:-1] + (1,), dtype=z.dtype)
    return slope[..., None] * np.concatenate([d_weights, d_bias], axis=-1)


def _tied_input_jacobian(z: Any, theta: Any, phi: Activation) -> Any:
    weights = _tied_weights(theta)[..., None, :, :]
    return phi.derivative(_tied_pre(z, theta))[..., None] * weights


# ---- placing cases clear of kinks ---------------------------------------------------------------


def clearing_shift(values: np.ndarray, margins: np.ndarray, kinks: tuple[float, ...]) -> np.ndarray:
    """The smallest shift s per unit that takes every a_nj + s further than margin_nj
    from each kink: values and margins (..., N, J), result (..., J)."""
    candidates = [np.zeros(values.shape[:-2] + values.shape[-1:])[..., None]]
    for kink in kinks:
        for side in (-1.5, 1.5):  # just beyond either edge of each forbidden interval
            candidates.append(np.moveaxis(kink - values + side * margins, -2, -1))
    shifts = np.concatenate(candidates, axis=-1)  # (..., J, C)
    moved = values[..., None, :, :] + np.moveaxis(shifts, -1, -2)[..., :, None, :]  # (..., C, N, J)
    clear = np.ones(moved.shape, dtype=bool)
    for kink in kinks:
        clear &= np.abs(moved - kink) > margins[..., None, :, :]
    valid = np.asarray(clear.all(axis=-2))  # (..., C, J)
    cost = np.where(np.moveaxis(valid, -2, -1), np.abs(shifts), np.inf)
    return np.take_along_axis(shifts, np.argmin(cost, axis=-1)[..., None], axis=-1)[..., 0]


def _bias_shift(preactivation: Callable[[Any, Any], Any], column: int) -> Callable[..., np.ndarray]:
    """clear_of_kinks for layers whose θ has a column added to the pre-activation."""

    def clear(z: Any, theta: Any, phi: Activation) -> np.ndarray:
        moved = np.array(theta.value, dtype=np.float64)
        if phi.kinks:
            pre = preactivation(z, theta)
            shift = clearing_shift(pre.value, 2.0 * pre.error, phi.kinks)
            moved[..., column] += shift
        return moved

    return clear


def _maxout_clear(z: Any, theta: Any, phi: Activation) -> np.ndarray:
    """Raise the winning piece's bias until, for every example, it leads the runner-up
    by more than twice their uncertainty."""
    from gradcheck.core.tolerance import Tracked

    inputs = z.shape[-1] + 1
    moved = np.array(theta.value, dtype=np.float64)
    pieces = moved.shape[-1] // inputs
    for _ in range(4 * pieces * z.shape[-2] + 1):
        candidate = Tracked(moved, theta.error)
        values = _maxout_pieces(z, candidate)[0]  # (..., N, J, k)
        order = np.argsort(values.value, axis=-1)
        best, second = order[..., -1:], order[..., -2:-1]
        gap = (
            np.take_along_axis(values.value, best, -1)
            - np.take_along_axis(values.value, second, -1)
        )[..., 0]
        margin = (
            2.0
            * (
                np.take_along_axis(values.error, best, -1)
                + np.take_along_axis(values.error, second, -1)
            )[..., 0]
        )
        short = np.where(gap <= margin, 2.0 * margin - gap, 0.0)  # (..., N, J)
        if pieces < 2 or not short.any():
            break
        raise_by = np.zeros(moved.shape[:-1] + (pieces,))  # (..., J, k)
        winner = best[..., 0]  # (..., N, J)
        for m in range(pieces):
            raise_by[..., m] = np.max(np.where(winner == m, short, 0.0), axis=-2)
        moved[..., inputs - 1 :: inputs] += raise_by
    return moved


# ---- the catalogue ------------------------------------------------------------------------------


def _catalogue(*rows: LayerType) -> Mapping[str, LayerType]:
    table = {row.name: row for row in rows}
    assert len(table) == len(rows), "layer type names must be unique"
    return MappingProxyType(table)


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


def _layernorm_pre(z: Any, theta: Any) -> Any:
    return _layernorm_parts(z, theta)[0]


LAYER_TYPES: Mapping[str, LayerType] = _catalogue(
    LayerType("dense", "f_j = φ(wʲ·z + b_j)",
              _dense_forward, _dense_unit_jacobian, _dense_input_jacobian, _plus_one,
              rank_one=_dense_rank_one, clear_of_kinks=_bias_shift(_affine, -1),
              preactivation=_affine, bias_columns=_last),
    LayerType("linear", "f_j = wʲ·z + b_j",
              _linear_forward, _linear_unit_jacobian, _linear_input_jacobian, _plus_one,
              rank_one=_linear_rank_one, uses_activation=False, kinks="none", bias_columns=_last),
    LayerType("rbf", "f_j = exp(-γ_j ‖z - cʲ‖²)",
              _rbf_forward, _rbf_unit_jacobian, _rbf_input_jacobian, _plus_one,
              uses_activation=False, kinks="none", positive_columns=(-1,)),
    LayerType("elementwise", "f_j = φ(α_j z_j + β_j)",
              _elementwise_forward, _elementwise_unit_jacobian, _elementwise_input_jacobian,
              lambda i: 2, square=True, clear_of_kinks=_bias_shift(_elementwise_pre, 1),
              preactivation=_elementwise_pre, bias_columns=_last),
    LayerType("weightnorm", "f_j = φ(g_j vʲ·z / ‖vʲ‖ + b_j)",
              _weightnorm_forward, _weightnorm_unit_jacobian, _weightnorm_input_jacobian,
              lambda i: i + 2, kinks="the activation's; ‖vʲ‖ = 0",
              clear_of_kinks=_bias_shift(_weightnorm_pre, -1), preactivation=_weightnorm_pre,
              bias_columns=_last),
    LayerType("cosine", "f_j = φ(wʲ·z / (‖wʲ‖ ‖z‖))",
              _cosine_forward, _cosine_unit_jacobian, _cosine_input_jacobian, lambda i: i,
              kinks="the activation's; ‖wʲ‖ = 0 or ‖z‖ = 0", preactivation=_cosine_pre),
    LayerType("maxout", "f_j = max_m (Wʲ_m·z + bʲ_m)",
              _maxout_forward, _maxout_unit_jacobian, _maxout_input_jacobian,
              lambda i: 2 * (i + 1), uses_activation=False, accepts_parameters=_maxout_accepts,
              kinks="ties between pieces", clear_of_kinks=_maxout_clear,
              bias_columns=lambda i, p: tuple(range(i, p, i + 1))),
    LayerType("gated", "f_j = φ(aʲ·z + α_j) σ(cʲ·z + β_j)",
              _gated_forward, _gated_unit_jacobian, _gated_input_jacobian,
              lambda i: 2 * (i + 1), clear_of_kinks=_gated_clear, preactivation=_gated_value,
              bias_columns=lambda i, p: (i, p - 1)),
    LayerType("softmax_dense", "f = softmax(W z + b)",
              _softmax_forward, _softmax_unit_jacobian, _softmax_input_jacobian, _plus_one,
              coupled=True, uses_activation=False, min_units=2, kinks="none", bias_columns=_last),
    LayerType("layernorm_dense", "f = φ(layernorm(W z + b))",
              _layernorm_forward, _layernorm_unit_jacobian, _layernorm_input_jacobian, _plus_one,
              coupled=True, min_units=2, preactivation=_layernorm_pre, bias_columns=_last),
    LayerType("conv_shared", "f_j = φ(Σ_m k_m z_(j+m mod I) + b_j)",
              _conv_forward, _conv_unit_jacobian, _conv_input_jacobian, lambda i: 2,
              coupled=True, square=True, min_units=2, clear_of_kinks=_bias_shift(_conv_pre, 1),
              preactivation=_conv_pre, bias_columns=_last),
    LayerType("tied", "f = φ((W + Wᵀ) z + b)",
              _tied_forward, _tied_unit_jacobian, _tied_input_jacobian, _plus_one,
              coupled=True, square=True, min_units=2, clear_of_kinks=_bias_shift(_tied_pre, -1),
              preactivation=_tied_pre, bias_columns=_last),
)  # fmt: skip


def resolve_layer_type(layer_type: str | LayerType) -> LayerType:
    """A LayerType from a row name or a LayerType."""
    if isinstance(layer_type, LayerType):
        return layer_type
    if isinstance(layer_type, str) and layer_type in LAYER_TYPES:
        return LAYER_TYPES[layer_type]
    from gradcheck.errors import UnknownNameError

    raise UnknownNameError("layer type", layer_type, sorted(LAYER_TYPES))


def identity_if_unused(layer_type: LayerType, activation: Activation) -> Activation:
    """Layer types without an activation ignore it; report them with identity."""
    return activation if layer_type.uses_activation else _IDENTITY
