"""Functional layers: forward(x, *params) -> out, backward(dout, x, *params) -> grads.

One of them is wrong on purpose (see softmax_backward), so that gradcheck has something
to find.
"""

from __future__ import annotations

import numpy as np


def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """out = x w + b for a batch x (N × D), weights w (D × M), bias b (M)."""
    return x.dot(w) + b


def affine_backward(
    dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dx = dout.dot(w.T)
    dw = x.T.dot(dout)
    db = np.sum(dout, axis=0)
    return dx, dw, db


def relu_forward(x: np.ndarray) -> np.ndarray:
    return np.maximum(0, x)


def relu_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    dx = dout.copy()
    dx[x <= 0] = 0
    return dx


def sigmoid_forward(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def sigmoid_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    s = sigmoid_forward(x)
    return dout * s * (1.0 - s)


def softmax_forward(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax of scores x (N × C)."""
    shifted = x - np.max(x, axis=1, keepdims=True)
    p = np.exp(shifted)
    return p / np.sum(p, axis=1, keepdims=True)


def softmax_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Deliberately wrong: the diagonal of the Jacobian only, p (1 - p), as if each
    output depended on its own score alone. The right gradient is
    p ⊙ (dout - Σ_c dout_c p_c)."""
    p = softmax_forward(x)
    return dout * p * (1.0 - p)
