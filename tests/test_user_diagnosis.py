"""User layers are diagnosed like the catalogue's: a planted bug is named as planted."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import pytest

import gradcheck
from gradcheck import GradientMismatch

AFFINE = "(n,i),(i,j),(j)->(n,j)"


def affine(x, w, b):
    return x @ w + b


def affine_backward(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def dense_tanh(x, w, b):
    return anp.tanh(anp.dot(x, w) + b)


def dense_tanh_backward(dout, x, w, b, derivative=lambda t: 1.0 - t * t):
    slope = dout * derivative(np.tanh(x @ w + b))
    return slope @ w.T, x.T @ slope, slope.sum(axis=0)


def softmax_layer(x, w):
    a = anp.dot(x, w)
    e = anp.exp(a - anp.max(a, axis=1, keepdims=True))
    return e / anp.sum(e, axis=1, keepdims=True)


def softmax_ignoring_coupling(dout, x, w):
    # Each unit treated alone: ∂s_j/∂a_j = s_j (1 - s_j), the cross terms -s_j s_k dropped.
    s = softmax_layer(x, w)
    slope = dout * s * (1.0 - s)
    return slope @ w.T, x.T @ slope


def normalize(x):
    return x / anp.sqrt(anp.sum(x * x, axis=1, keepdims=True))


def normalize_without_the_norm(dout, x):
    # ∂/∂x of x/‖x‖ with ‖x‖ treated as a constant: the term -x (x·dout)/‖x‖³ is missing.
    return (dout / np.sqrt(np.sum(x * x, axis=1, keepdims=True)),)


PLANTED = {
    "sign": (affine, lambda d, x, w, b: (d @ w.T, -(x.T @ d), d.sum(axis=0)), AFFINE),
    "batch-mean-vs-sum": (affine, lambda d, x, w, b: (d @ w.T, x.T @ d, d.mean(axis=0)), AFFINE),
    "scale-constant": (affine, lambda d, x, w, b: (d @ w.T, 2 * (x.T @ d), d.sum(axis=0)), AFFINE),
    "transpose": (
        affine,
        lambda d, x, w, b: (d @ w, x.T @ d, d.sum(axis=0)),
        "(n,i),(i,i),(i)->(n,i)",
    ),
    "bias-only": (affine, lambda d, x, w, b: (d @ w.T, x.T @ d, d[0]), AFFINE),
    "input-gradient-only": (
        affine,
        lambda d, x, w, b: (d @ w.T + x, x.T @ d, d.sum(axis=0)),
        AFFINE,
    ),
    "wrong-activation-derivative": (
        dense_tanh,
        lambda *a: dense_tanh_backward(*a, derivative=lambda t: 1.0 + t * t),
        AFFINE,
    ),
    "coupling-ignored": (softmax_layer, softmax_ignoring_coupling, "(n,i),(i,j)->(n,j)"),
    "missing-term": (normalize, normalize_without_the_norm, "(n,i)->(n,i)"),
}


@pytest.mark.parametrize("planted", sorted(PLANTED))
def test_a_user_layer_bug_is_diagnosed_as_planted(planted):
    forward, backward, signature = PLANTED[planted]
    with pytest.raises(GradientMismatch) as raised:
        gradcheck.check_backward(forward, backward, signature=signature, max_examples=30)
    assert raised.value.diagnosis == planted, str(raised.value)
    assert f"diagnosis: {planted}" in str(raised.value)


def test_a_correct_user_layer_has_no_diagnosis():
    summary = gradcheck.check_backward(
        dense_tanh, dense_tanh_backward, signature=AFFINE, max_examples=20
    )
    assert summary.passed
