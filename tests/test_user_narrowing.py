"""A float64 backward that rounds to float32 is a precision bug; a layer that stores in
float32 by design (its forward too) is not (gradcheck.user.engine._charges)."""

from __future__ import annotations

import numpy as np
import pytest

import gradcheck

SIGNATURE = "(n,i),(i,j)->(n,j)"
FEW = 40


def single_forward(x, w):
    """A layer whose arithmetic is float32 whatever it is given."""
    return np.tanh(x.astype(np.float32) @ w.astype(np.float32)).astype(x.dtype)


def single_backward(dout, x, w):
    x32, w32, dout32 = x.astype(np.float32), w.astype(np.float32), dout.astype(np.float32)
    slope = dout32 * (1.0 - np.tanh(x32 @ w32) ** 2)
    return (slope @ w32.T).astype(x.dtype), (x32.T @ slope).astype(x.dtype)


def forward(x, w):
    return np.tanh(x @ w)


def right_backward(dout, x, w):
    slope = dout * (1.0 - np.tanh(x @ w) ** 2)
    return slope @ w.T, x.T @ slope


def rounding_backward(dout, x, w):
    dx, dw = right_backward(dout, x, w)
    return dx, dw.astype(np.float32).astype(dw.dtype)


def test_a_layer_that_stores_in_float32_by_design_passes_a_float64_check():
    gradcheck.check_backward(single_forward, single_backward, signature=SIGNATURE, max_examples=FEW)


def test_a_float64_backward_that_rounds_to_float32_is_a_precision_mismatch():
    with pytest.raises(gradcheck.GradientMismatch) as raised:
        gradcheck.check_backward(forward, rounding_backward, signature=SIGNATURE, max_examples=FEW)
    assert "gradient of w" in str(raised.value)
    assert "precision" in str(raised.value)


def test_the_same_backward_without_the_round_trip_passes():
    gradcheck.check_backward(forward, right_backward, signature=SIGNATURE, max_examples=FEW)
