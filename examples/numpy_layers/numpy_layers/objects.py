"""Layer objects in the style of most NumPy frameworks: forward(x) caches what backward
needs, backward(dout) returns dx and stores the parameter gradients on the layer."""

from __future__ import annotations

import numpy as np


class Affine:
    """out = x W + b; backward accumulates into dW and db (reset them between steps)."""

    def __init__(self, inputs: int = 3, outputs: int = 2, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.W = rng.normal(size=(inputs, outputs))
        self.b = np.zeros(outputs)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self.dW += self.x.T @ dout
        self.db += dout.sum(axis=0)
        return dout @ self.W.T


class Tanh:
    """out = tanh(x), with no parameters."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1.0 - self.out**2)
