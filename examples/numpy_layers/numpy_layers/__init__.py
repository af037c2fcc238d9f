"""A small NumPy layer library: functional layers (CS231n style) and layer objects."""

from numpy_layers.functional import (
    affine_backward,
    affine_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    softmax_backward,
    softmax_forward,
)
from numpy_layers.objects import Affine, Tanh

__all__ = [
    "Affine",
    "Tanh",
    "affine_backward",
    "affine_forward",
    "relu_backward",
    "relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax_backward",
    "softmax_forward",
]
