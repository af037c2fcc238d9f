"""The running error bound through the NumPy that hand-written layer code uses: every
bound contains the true rounding error of a float32 evaluation, and conversions that
drop the error are recorded."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gradcheck.core.tolerance import Tracked, recording, track

values = st.floats(-30.0, 30.0, allow_nan=False, width=32)
matrices = arrays(np.float32, (3, 4), elements=values)


def relu_backward(dout, x):
    dx = dout.copy()
    dx[x <= 0] = 0
    return dx


def filled(dout, x):
    dx = np.zeros_like(x)
    dx[:, 1:] = dout[:, 1:] * 2.5
    dx[0] += 1.0 / 3.0
    return dx


def softmax_loss_gradient(dout, x):
    shifted = x - x.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    p /= np.sum(p, axis=1, keepdims=True)
    p[np.arange(3), [0, 1, 2]] -= 1
    return p / 3


def batchnorm_backward(dout, x):
    n = x.shape[0]
    mu = x.mean(axis=0)
    std = np.sqrt(x.var(axis=0) + 1e-5)
    xhat = (x - mu) / std
    return (1.0 / n) / std * (n * dout - dout.sum(axis=0) - xhat * (dout * xhat).sum(axis=0))


EXPRESSIONS = {
    "np.dot": lambda d, x: np.dot(d, x.T),
    "ndarray.dot": lambda d, x: d.T.dot(x),
    "np.dot with a vector": lambda d, x: np.dot(x, d[0]),
    "np.dot of 3-D by 2-D": lambda d, x: np.dot(x.reshape(3, 2, 2), d[:2, :2]),
    "np.tensordot": lambda d, x: np.tensordot(d, x, axes=([0], [0])),
    "np.outer": lambda d, x: np.outer(d[0], x[1]),
    "mean and min": lambda d, x: x.mean(axis=0) - np.min(d, axis=1).sum(),
    "std": lambda d, x: np.std(x, axis=1, keepdims=True) * d,
    "relu backward (copy, setitem)": relu_backward,
    "zeros_like, setitem, in place": filled,
    "softmax loss gradient": softmax_loss_gradient,
    "batchnorm backward (var)": batchnorm_backward,
    "reshape, ravel, transpose, stacks": lambda d, x: np.hstack(
        [x.reshape((4, 3)).ravel(), np.vstack([d.T, x.T]).transpose().flatten()]
    ),
}


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
@given(dout=matrices, x=matrices)
def test_running_bound_contains_the_float32_rounding_error(name, dout, x):
    expression = EXPRESSIONS[name]
    with recording() as events:
        result = expression(track(dout), track(x))
    assert isinstance(result, Tracked)
    assert not [e for e in events if e.kind == "untracked"]
    assert result.value.dtype == np.float32  # evaluated in the working precision
    exact = expression(dout.astype(np.float64), x.astype(np.float64))
    error = np.abs(result.value.astype(np.float64) - exact)
    assert np.all(error <= result.error), (error, result.error)


def test_a_lossy_conversion_to_a_plain_array_is_recorded_as_untracked():
    value = track(np.array([1.0, 2.0], dtype=np.float32)) * np.float32(1.1)
    assert np.any(value.error > 0)
    plain = np.zeros(2, dtype=np.float32)
    with recording() as events:
        plain[...] = value  # numpy converts through __array__, dropping the error
    assert [e.kind for e in events] == ["untracked"]
    assert np.array_equal(plain, value.value)


def test_converting_an_exact_value_loses_nothing_and_records_nothing():
    with recording() as events:
        np.asarray(track(np.array([1.0, 2.0])))
    assert events == []


def test_zeros_like_of_a_tracked_array_is_tracked_and_exact():
    zeros = np.zeros_like(track(np.ones((2, 2), dtype=np.float32)))
    assert isinstance(zeros, Tracked) and zeros.dtype == np.float32
    assert not np.any(zeros.value) and not np.any(zeros.error)
    third = np.full_like(track(np.ones(2, dtype=np.float32)), 1.0 / 3.0)
    assert np.all(third.error >= abs(1.0 / 3.0 - float(np.float32(1.0 / 3.0))))
    assert np.all(third.error > 0)


def test_storing_a_wider_value_charges_its_rounding():
    target = track(np.zeros(2, dtype=np.float32))
    target[0] = 0.1  # a Python float rounds to float32
    target[1] = np.float64(1.0) / 3.0
    assert np.all(target.error >= np.abs(target.value - np.array([0.1, 1.0 / 3.0])))
    assert np.all(target.error > 0)


def test_the_max_of_tied_values_is_bounded_by_every_tied_candidate():
    # True values 1 ± 0 and 1 ± 0.5: the computed max may be the exact one's, but the true
    # maximum can be as large as 1.5.
    values = Tracked(np.array([1.0, 1.0]), np.array([0.0, 0.5]))
    with recording() as events:
        top = values.max()
    assert top.error >= 0.5
    assert [e.kind for e in events] == ["tie"]
