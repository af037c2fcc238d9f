"""npdl 0.4.0.1 (PyPI: npdl) through gradcheck's public API, as a user would check it.

npdl's sdist runs ``import numpy`` in its setup.py, so it installs only without build
isolation (``pip install wheel && pip install --no-build-isolation npdl==0.4.0.1``).
Its Linear and Dense layers keep W, b, dW and db as attributes (gradcheck's default
gradient paths) and return dx only when ``first_layer`` is False; its activations are
objects with forward(x) and derivative() (from the last forward). Outcomes: docs/field.md.
"""

from __future__ import annotations

import numpy as np
import pytest

import gradcheck

from . import confirm
from .outcomes import caught, field_settings, passes

pytestmark = pytest.mark.field

core = pytest.importorskip("npdl.layers")
npdl_activations = pytest.importorskip("npdl.activations")

DTYPES = ("float64", "float32")


def _hidden(layer):
    layer.first_layer = False  # set by npdl's Model for every layer but the first
    return layer


def _mp_dense(activation):
    """E's forward for npdl's Dense: φ(x W + b), in mpmath."""
    functions = {"linear": lambda v: v, "tanh": confirm.mpmath.tanh}

    def forward(x, w, b):
        return confirm.mp_map(functions[activation], x @ w + b)

    return forward


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["linear", "tanh"])
def test_dense_bias_gradient_is_a_batch_mean(activation, dtype):
    """Bug: Linear and Dense set db = np.mean(pre_grad, axis=0) while dW sums over the
    batch: the bias gradient is 1/N of ∂E/∂b. gradcheck: 'batch-mean-vs-sum'.
    Independent: mpmath's ∂E/∂b is N times npdl's db on a batch of three."""
    factory = (lambda: _hidden(core.Linear(1))) if activation == "linear" else None
    if factory is None:
        factory = lambda: _hidden(core.Dense(1, activation=activation))  # noqa: E731
    error = caught(
        gradcheck.check_layer_object,
        factory,
        parameters=["W", "b"],
        signature="(n,i),(i,j),(j)->(n,j)",
        dtypes=(dtype,),
        settings=field_settings(20),
    )
    assert error.diagnosis == "batch-mean-vs-sum", str(error)
    rng = np.random.default_rng(1)
    x, w, b = rng.normal(size=(3, 2)), rng.normal(size=(2, 2)), rng.normal(size=2)
    dout = rng.normal(size=(3, 2))
    layer = factory()
    layer.W, layer.b = w, b
    layer.forward(x)
    layer.backward(dout)
    exact_b = confirm.mp_gradient(_mp_dense(activation), [x, w, b], dout, 2)
    exact_w = confirm.mp_gradient(_mp_dense(activation), [x, w, b], dout, 1)
    assert confirm.relative_gap(layer.dW, exact_w) < 1e-12  # W is right
    assert confirm.relative_gap(3 * layer.db, exact_b) < 1e-12  # b is 1/N of the truth
    assert confirm.relative_gap(layer.db, exact_b) > 0.5


def activation_adapter(name):
    def forward(x):
        return getattr(npdl_activations, name)().forward(x)

    def backward(dout, x):
        function = getattr(npdl_activations, name)()
        function.forward(x)
        return (dout * function.derivative()).astype(x.dtype)

    forward.__qualname__ = f"npdl.{name}.forward"
    return forward, backward


ACTIVATIONS = ("Sigmoid", "Tanh", "ReLU", "Linear", "Elliot", "SymmetricElliot", "SoftSign")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation(name, dtype):
    forward, backward = activation_adapter(name)
    passes(
        gradcheck.check_backward,
        forward,
        backward,
        signature="(n,j)->(n,j)",
        dtypes=(dtype,),
        allow_aliases=name == "Linear",  # Linear.forward returns x itself
        settings=field_settings(20),
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_derivative_is_ones(dtype):
    """By design, not a usable layer on its own: Softmax.derivative() returns ones (npdl
    folds the softmax Jacobian into its categorical cross-entropy's y_pred - y), so as an
    activation its backward passes dout through unchanged. Independent: mpmath's
    Jacobian-vector product of softmax differs from dout."""
    forward, backward = activation_adapter("Softmax")
    error = caught(
        gradcheck.check_backward,
        forward,
        backward,
        signature="(n,j)->(n,j)",
        dtypes=(dtype,),
        settings=field_settings(20),
    )
    assert error.diagnosis is not None
    x = np.array([[0.5, -1.0, 2.0]])
    dout = np.array([[1.0, 0.0, 0.0]])

    def mp_softmax(z):
        e = confirm.mp_map(confirm.mpmath.exp, z)
        return e / np.sum(e, axis=1, keepdims=True)

    exact = confirm.mp_gradient(mp_softmax, [x], dout, 0)
    assert np.array_equal(backward(dout, x), dout)
    assert confirm.relative_gap(dout, exact) > 0.5


@pytest.mark.parametrize("dtype", DTYPES)
def test_softplus(dtype):
    """log(1 + eˣ): correct where it is finite; its draws reach x where eˣ overflows,
    so the domain is bounded as gradcheck's message asks."""
    forward, backward = activation_adapter("SoftPlus")
    passes(
        gradcheck.check_backward,
        forward,
        backward,
        signature="(n,j)->(n,j)",
        bounds=[(-80.0, 80.0)],
        dtypes=(dtype,),
        settings=field_settings(20),
    )
