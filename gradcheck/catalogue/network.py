"""Whole networks and the seed's two formulas as a recursion.

A network is a stack of layers z^ℓ = f^ℓ(z^(ℓ-1); θ^ℓ), ℓ = 1 … L, on inputs z⁰ (N × I),
closed by a loss E = Σ_n e(z^L_n, y_n) (`gradcheck.catalogue.losses`). With δ^ℓ = ∂E/∂z^ℓ,
backprop is

    δ^L      = ∂E/∂z^L                          the loss rule
    A^ℓ      = Σ_n diag(δ^ℓ_n) B^ℓ_n            formula 2, compact (B^ℓ: the unit Jacobian)
    δ^(ℓ-1)  = δ^ℓ · ∂f^ℓ/∂z^(ℓ-1)              formula 1

for ℓ = L … 1, every factor from a layer type's hand-written rules. `backpropagate` runs
it on one network; `StackedNetworks.hand_written` runs it on K networks of one
architecture at once, on `Tracked` arrays, so that every z^ℓ, δ^ℓ and A^ℓ carries a
running bound on its rounding that composes through the layers exactly as the arithmetic
does. `gradcheck.catalogue.network_checker` holds the result against the oracles.

This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from gradcheck.catalogue.activations import Activation, resolve_activation
from gradcheck.catalogue.layers import LayerType, identity_if_unused, resolve_layer_type
from gradcheck.catalogue.losses import Loss, resolve_loss
from gradcheck.core import compact, tolerance
from gradcheck.core.comparison import CaseError, as_array
from gradcheck.core.tolerance import Tracked, track
from gradcheck.errors import GradcheckError


def _source(value: Any) -> str:
    """Python source for a catalogue name, an array (exactly: floats repr round-trip and
    float32 values are exact in float64), or anything else by its repr."""
    if isinstance(value, LayerType | Loss):
        return repr(value.name)
    if isinstance(value, Activation):
        if value.parameter is None:
            return repr(value.name)
        return f"ACTIVATIONS[{value.name!r}].with_parameter({value.parameter!r})"
    if isinstance(value, np.ndarray):
        return f"np.array({value.tolist()!r}, dtype=np.{value.dtype.name})"
    return repr(value)


@dataclass(frozen=True)
class NetworkLayer:
    """One layer of a network: a layer type, its activation and its parameters θ (J × P)."""

    layer_type: str | LayerType
    activation: str | Activation | None
    theta: ArrayLike

    def __repr__(self) -> str:
        arguments = (self.layer_type, self.activation, self.theta)
        return f"NetworkLayer({', '.join(_source(a) for a in arguments)})"


@dataclass(frozen=True, kw_only=True)
class Network:
    """A stack of layers and a loss, with inputs z⁰ (N × I) and targets.

    Layer ℓ's inputs are layer ℓ-1's outputs. targets: N × J_L values for squared error;
    class indices (N integers) or one-hot rows (N × J_L) for softmax cross-entropy; 0 or 1
    per output (N × J_L) for logistic. The dtype is the arrays' own (float32 or float64).
    The repr is Python that rebuilds the network exactly (given ``import numpy as np``
    and ``from gradcheck import ACTIVATIONS, Network, NetworkLayer``), for catalogue rows.
    """

    layers: tuple[NetworkLayer, ...]
    loss: str | Loss
    z: ArrayLike
    targets: ArrayLike

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))

    def __repr__(self) -> str:
        layers = "".join(f"{layer!r}, " for layer in self.layers)
        return (
            f"Network(layers=({layers}), loss={_source(self.loss)}, z={_source(self.z)}, "
            f"targets={_source(self.targets)})"
        )


class InvalidNetworkError(GradcheckError):
    """A network cannot be evaluated: bad arrays, widths that do not chain, bad targets,
    or hand-written code that raised or returned the wrong shape."""


# ---- validation ----------------------------------------------------------------------------


def _float_array(name: str, value: ArrayLike, ndim: int) -> np.ndarray:
    try:
        return as_array(name, value, ndim)
    except CaseError as problem:
        raise InvalidNetworkError(str(problem)) from None


def _targets(
    loss: Loss, value: ArrayLike, batch: int, units: int, dtype: np.dtype[Any]
) -> np.ndarray:
    """The targets as an N × J array in the network's dtype (class indices become one-hot)."""
    array = np.asarray(value)
    if loss.targets == "classes" and array.dtype.kind in "iu":
        if array.shape != (batch,):
            raise InvalidNetworkError(
                f"class-index targets must have shape (N,) = ({batch},), got {array.shape}"
            )
        if array.min() < 0 or array.max() >= units:
            raise InvalidNetworkError(
                f"class indices must lie in [0, {units}) for {units} outputs, got {array.tolist()}"
            )
        return np.eye(units, dtype=dtype)[array]
    targets = _float_array("targets", array, 2)
    if targets.shape != (batch, units):
        raise InvalidNetworkError(
            f"targets must have shape (N, J) = ({batch}, {units}) for {loss.name}, "
            f"got {targets.shape}"
        )
    if targets.dtype != dtype:
        raise InvalidNetworkError(f"targets have dtype {targets.dtype}, the network {dtype}")
    return targets


# ---- the recursion -----------------------------------------------------------------------


@dataclass(frozen=True)
class HandWritten:
    """The hand-written recursion for K stacked networks, on Tracked arrays.

    outputs z^0 … z^L (K, N, J_ℓ); energy e per example (K, N); deltas δ^0 … δ^L;
    unit_jacobians B^1 … B^L (K, N, J, P); input_jacobians ∂f^ℓ/∂z (K, N, J, I);
    gradients A^1 … A^L (K, J, P). Index ℓ - 1 of the per-layer lists is layer ℓ.
    """

    outputs: list[Tracked]
    energy: Tracked
    deltas: list[Tracked]
    unit_jacobians: list[Tracked]
    input_jacobians: list[Tracked]
    gradients: list[Tracked]


#: The bilinear products of backprop: A = Σ_n diag(δ_n) B_n and δ_in = δ · ∂f/∂z.
COMPACTION = "...nj,...njp->...jp"
FORMULA_1 = "...nj,...nji->...ni"


def with_cross_term(product: Any, subscripts: str, delta: Tracked, jacobian: Tracked) -> Any:
    """Add Σ e_δ e_J, the second-order term of a product of two uncertain factors.

    Tracked's einsum rule is first order (Σ |δ| e_J + e_δ |J|), enough when one factor is
    exact, as in a single layer's check. In a network both δ and the Jacobians carry
    errors, and where both values are 0 (a φ' and a δ that underflowed, or a saturated
    tanh' in float32) the first-order terms vanish while the true error, up to e_δ e_J,
    does not. For a bilinear product that term completes the bound, whatever code formed it.
    """
    if not isinstance(product, Tracked):
        return product
    cross = np.einsum(subscripts, np.asarray(delta.error), np.asarray(jacobian.error))
    return Tracked(product.value, product.error + cross)


def compaction(layer: LayerType) -> Callable[[Any, Any], Any]:
    """The layer's way of forming A from δ and B: its own, or A = Σ_n diag(δ_n) B_n."""
    return layer.parameter_gradient or compact.compact_gradient


class StackedNetworks:
    """K networks of one architecture (layer types, activations, loss, dtype and
    shapes), their arrays stacked on a leading axis: every layer broadcasts over it."""

    def __init__(
        self,
        rows: tuple[tuple[LayerType, Activation], ...],
        loss: Loss,
        z: np.ndarray,
        thetas: list[np.ndarray],
        targets: np.ndarray,
    ) -> None:
        self.rows, self.loss = rows, loss
        self.z, self.thetas, self.targets = z, thetas, targets  # (K, ...) in the dtype
        self.count, self.batch = z.shape[0], z.shape[1]
        self.depth = len(rows)
        self.widths = (z.shape[2],) + tuple(theta.shape[1] for theta in thetas)

    @property
    def architecture(self) -> tuple[Any, ...]:
        shapes = (self.z.shape[1:], *(theta.shape[1:] for theta in self.thetas))
        return (self.rows, self.loss, self.z.dtype, shapes)

    @classmethod
    def of(cls, network: Network) -> StackedNetworks:
        """One network, validated; raises InvalidNetworkError."""
        loss = resolve_loss(network.loss)
        if not network.layers:
            raise InvalidNetworkError("a network needs at least one layer")
        z = _float_array("z", network.z, 2)
        rows, thetas = [], []
        width = z.shape[1]
        for index, layer in enumerate(network.layers, start=1):
            if not isinstance(layer, NetworkLayer):
                raise InvalidNetworkError(f"layer {index} is {layer!r}, not a NetworkLayer")
            layer_type = resolve_layer_type(layer.layer_type)
            phi = identity_if_unused(layer_type, resolve_activation(layer.activation))
            theta = _float_array(f"theta of layer {index}", layer.theta, 2)
            if theta.dtype != z.dtype:
                raise InvalidNetworkError(
                    f"theta of layer {index} has dtype {theta.dtype}, z has {z.dtype}: "
                    "a network computes in one dtype"
                )
            problem = layer_type.shape_problem(width, *theta.shape)
            if problem is not None:
                source = "z" if index == 1 else f"layer {index - 1}"
                raise InvalidNetworkError(
                    f"layer {index} ({layer_type.name}) gets {width} inputs from {source}: "
                    f"{problem}"
                )
            rows.append((layer_type, phi))
            thetas.append(theta[None])
            width = theta.shape[0]
        targets = _targets(loss, network.targets, z.shape[0], width, z.dtype)
        return cls(tuple(rows), loss, z[None], thetas, targets[None])

    @classmethod
    def stacked(cls, singles: Sequence[StackedNetworks]) -> StackedNetworks:
        """Concatenate stacks of one architecture."""
        first = singles[0]
        if len(singles) == 1:
            return first
        return cls(
            first.rows,
            first.loss,
            np.concatenate([s.z for s in singles]),
            [np.concatenate([s.thetas[k] for s in singles]) for k in range(first.depth)],
            np.concatenate([s.targets for s in singles]),
        )

    def forward_from(
        self, start: int, z: Any, thetas: Sequence[Any], stop: int | None = None
    ) -> Any:
        """z^stop (default z^L) from z^start through layers start+1 … stop (thetas: all L).
        Leading axes of z and θ broadcast: finite differences stack perturbed copies."""
        stop = self.depth if stop is None else stop
        for (layer, phi), theta in zip(self.rows[start:stop], thetas[start:stop], strict=True):
            z = layer.forward(z, theta, phi)
        return z

    def energy_from(self, start: int, z: Any, thetas: Sequence[Any], targets: Any) -> Any:
        """e per example (…, N): the loss of z^L, computed from z^start."""
        return self.loss.forward(self.forward_from(start, z, thetas), targets)

    @staticmethod
    def call(where: str, function: Callable[..., Any], *arguments: Any) -> Tracked:
        """Run hand-written (or user) code; what it raises makes the networks invalid."""
        try:
            with np.errstate(all="ignore"):
                result = function(*arguments)
        except Exception as error:
            raise InvalidNetworkError(f"{where} raised {type(error).__name__}: {error}") from None
        return result if isinstance(result, Tracked) else track(result)

    @staticmethod
    def expect(where: str, result: Tracked, shape: tuple[int, ...]) -> Tracked:
        if result.shape != shape:
            raise InvalidNetworkError(
                f"{where} returned shape {result.shape[1:]}, expected {shape[1:]}"
            )
        return result

    def hand_written(self) -> HandWritten:
        """Forward, δ^L by the loss rule, then for ℓ = L … 1: B^ℓ, ∂f^ℓ/∂z,
        A^ℓ = compaction(δ^ℓ, B^ℓ) and δ^(ℓ-1) = δ^ℓ · ∂f^ℓ/∂z, in the networks' dtype on
        Tracked arrays from exact inputs. Records events (kinks met within the rounding)
        into the caller's `tolerance.recording()`."""
        k, n = self.count, self.batch
        thetas = [track(theta) for theta in self.thetas]
        outputs = [track(self.z)]
        for index, ((layer, phi), theta) in enumerate(zip(self.rows, thetas, strict=True)):
            where = f"layer {index + 1} ({layer.name}).forward"
            z = self.call(where, layer.forward, outputs[-1], theta, phi)
            outputs.append(self.expect(where, z, (k, n, theta.shape[1])))
        targets = track(self.targets)
        energy = self.call(f"{self.loss.name}.forward", self.loss.forward, outputs[-1], targets)
        where = f"{self.loss.name}.gradient"
        delta = self.call(where, self.loss.gradient, outputs[-1], targets)
        deltas = [self.expect(where, delta, outputs[-1].shape)]
        unit_jacobians: list[Tracked] = []
        input_jacobians: list[Tracked] = []
        gradients: list[Tracked] = []
        for index in reversed(range(self.depth)):
            (layer, phi), theta, z = self.rows[index], thetas[index], outputs[index]
            units, parameters = theta.shape[1:]
            name = f"layer {index + 1} ({layer.name})"
            unit_jacobian = self.expect(
                f"{name}.unit_jacobian",
                self.call(f"{name}.unit_jacobian", layer.unit_jacobian, z, theta, phi),
                (k, n, units, parameters),
            )
            input_jacobian = self.expect(
                f"{name}.input_jacobian",
                self.call(f"{name}.input_jacobian", layer.input_jacobian, z, theta, phi),
                (k, n, units, z.shape[-1]),
            )
            gradient = self.expect(
                f"{name}.parameter_gradient",
                self.call(
                    f"{name}.parameter_gradient", compaction(layer), deltas[0], unit_jacobian
                ),
                (k, units, parameters),
            )
            delta = compact.input_gradient(deltas[0], input_jacobian)
            gradients.insert(0, with_cross_term(gradient, COMPACTION, deltas[0], unit_jacobian))
            deltas.insert(0, with_cross_term(delta, FORMULA_1, deltas[0], input_jacobian))
            unit_jacobians.insert(0, unit_jacobian)
            input_jacobians.insert(0, input_jacobian)
        return HandWritten(outputs, energy, deltas, unit_jacobians, input_jacobians, gradients)


# ---- one network, plain arrays -------------------------------------------------------------


@dataclass(frozen=True)
class Backpropagation:
    """What backprop computes, as plain arrays in the network's dtype: outputs[ℓ] = z^ℓ
    and deltas[ℓ] = δ^ℓ = ∂E/∂z^ℓ for ℓ = 0 … L, gradients[ℓ - 1] = A^ℓ = ∂E/∂θ^ℓ, and E."""

    outputs: tuple[np.ndarray, ...]
    deltas: tuple[np.ndarray, ...]
    gradients: tuple[np.ndarray, ...]
    energy: float


def backpropagate(network: Network) -> Backpropagation:
    """Forward, then the seed's recursion from δ^L = ∂E/∂z^L down: A^ℓ = δ^ℓ ⊙ B^ℓ and
    δ^(ℓ-1) = δ^ℓ · ∂f^ℓ/∂z, with the network's hand-written rules in its dtype.

    Raises InvalidNetworkError when the network is malformed.
    """
    stack = StackedNetworks.of(network)
    with tolerance.recording():
        hand = stack.hand_written()
    return Backpropagation(
        tuple(np.asarray(z.value[0]) for z in hand.outputs),
        tuple(np.asarray(delta.value[0]) for delta in hand.deltas),
        tuple(np.asarray(gradient.value[0]) for gradient in hand.gradients),
        float(np.sum(np.asarray(hand.energy.value[0], dtype=np.float64))),
    )
