"""Every activation's hand-written derivative agrees with autograd within the error model."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck.catalogue.activations import ACTIVATIONS, Activation, resolve_activation
from gradcheck.core.oracles import elementwise_derivative
from gradcheck.core.tolerance import recording, track
from gradcheck.errors import GradcheckError, UnknownNameError

REQUIRED = {
    "identity",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "selu",
    "softplus",
    "softsign",
    "silu",
    "gelu",
    "gelu_tanh",
    "mish",
    "sin",
    "arctan",
    "square",
    "cube",
    "abs",
    "hard_tanh",
    "relu6",
    "hard_sigmoid",
    "gaussian",
    "log_sigmoid",
}

# A grid from tiny to saturating values; points closer than 1e-3 to a kink are dropped.
GRID = np.concatenate([np.linspace(-8, 8, 321), [-40.0, -15.0, -1e-3, 1e-3, 15.0, 40.0]])


def variants() -> list[Activation]:
    rows = list(ACTIVATIONS.values())
    rows += [ACTIVATIONS["leaky_relu"].with_parameter(p) for p in (-0.7, 0.3, 1.8)]
    rows += [ACTIVATIONS["elu"].with_parameter(p) for p in (0.4, 2.5)]
    return rows


def clear_of_kinks(activation: Activation, points: np.ndarray) -> np.ndarray:
    keep = np.ones(points.shape, dtype=bool)
    for kink in activation.kinks:
        keep &= np.abs(points - kink) > 1e-3
    low, high = activation.domain
    return points[keep & (points >= low) & (points <= high)]


def test_the_catalogue_holds_every_required_activation():
    assert set(ACTIVATIONS) >= REQUIRED
    assert len(ACTIVATIONS) >= 22


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", variants(), ids=lambda a: a.label)
def test_derivative_agrees_with_autograd(activation, dtype):
    x = clear_of_kinks(activation, GRID).astype(dtype)
    with recording() as events:
        hand = activation.derivative(track(x))
    assert events == []
    assert hand.value.dtype == dtype  # evaluated in the working precision
    reference = elementwise_derivative(activation, x)
    error = np.abs(hand.value.astype(np.float64) - reference.value)
    bound = hand.error + reference.error
    worst = int(np.argmax(error / bound))
    assert np.all(error <= bound), (
        f"{activation.label} at x={x[worst]}: hand-written {hand.value[worst]}, "
        f"autograd {reference.value[worst]}, bound {bound[worst]}"
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_is_stable_up_to_700(dtype):
    sigmoid = ACTIVATIONS["sigmoid"]
    x = np.array([-700.0, -100.0, 100.0, 700.0], dtype=dtype)
    with np.errstate(over="raise", invalid="raise"):  # no overflow, even in intermediate steps
        y = sigmoid(x)
        d = sigmoid.derivative(x)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(d))
    assert np.all((y >= 0) & (y <= 1)) and np.all(d >= 0)
    assert y[-1] == 1.0 and y[0] < 1e-30


def test_softplus_and_log_sigmoid_do_not_overflow():
    x = np.array([-800.0, 800.0])
    with np.errstate(over="raise", invalid="raise"):
        assert np.all(np.isfinite(ACTIVATIONS["softplus"](x)))
        assert np.all(np.isfinite(ACTIVATIONS["log_sigmoid"](x)))


@pytest.mark.parametrize("activation", [a for a in variants() if a.kinks], ids=lambda a: a.label)
def test_a_point_on_a_kink_is_recorded(activation):
    with recording() as events:
        activation.derivative(track(np.array(activation.kinks), 1e-9))
    assert events and events[0].kind == "kink"


def test_leaky_relu_slope_of_either_sign():
    negative = ACTIVATIONS["leaky_relu"].with_parameter(-0.5)
    assert negative(np.array([-2.0]))[0] == 1.0
    assert negative.derivative(np.array([-2.0]))[0] == -0.5
    assert negative.label == "leaky_relu(-0.5)"


def test_parameters_only_where_they_exist():
    with pytest.raises(TypeError):
        ACTIVATIONS["tanh"].with_parameter(2.0)


def test_names_resolve_and_unknown_names_are_explained():
    assert resolve_activation("tanh") is ACTIVATIONS["tanh"]
    assert resolve_activation(None).name == "identity"
    with pytest.raises(UnknownNameError, match="unknown activation 'tanhh'; choose one of"):
        resolve_activation("tanhh")
    assert issubclass(UnknownNameError, GradcheckError)
