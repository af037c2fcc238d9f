"""The layers' gradients, checked by gradcheck's pytest plugin (the `gradcheck` fixture)."""

import pytest
from numpy_layers import (
    Affine,
    Tanh,
    affine_backward,
    affine_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    softmax_backward,
    softmax_forward,
)


def test_affine(gradcheck):
    gradcheck.check_backward(affine_forward, affine_backward, signature="(n,d),(d,m),(m)->(n,m)")


def test_relu(gradcheck):
    gradcheck.check_backward(relu_forward, relu_backward, signature="(n,d)->(n,d)")


@pytest.mark.gradcheck(dtypes=("float64", "float32"))
def test_sigmoid(gradcheck):
    gradcheck.check_backward(sigmoid_forward, sigmoid_backward, signature="(n,d)->(n,d)")


def test_softmax(gradcheck):
    gradcheck.check_backward(softmax_forward, softmax_backward, signature="(n,c)->(n,c)")


def test_affine_object(gradcheck):
    gradcheck.check_layer_object(Affine, parameters=["W", "b"], signature="(n,d),(d,m),(m)->(n,m)")


def test_tanh_object(gradcheck):
    gradcheck.check_layer_object(Tanh, parameters=[], signature="(n,d)->(n,d)")
