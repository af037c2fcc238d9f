"""The error model's running bounds contain the true rounding error, and no more than
that is needed to find kinks, ties and singularities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gradcheck import tolerance
from gradcheck.tolerance import Tracked, recording, track

finite = st.floats(-30.0, 30.0, allow_nan=False, width=32)


def exact(expression, *arguments):
    """The expression in float64 on the float32 arguments: float32 rounding is ~2^29
    times coarser, so the float64 value stands in for the exact one."""
    return expression(*(np.asarray(a, dtype=np.float64) for a in arguments))


def assert_bounded(result: Tracked, reference: np.ndarray) -> None:
    error = np.abs(result.value.astype(np.float64) - reference)
    assert np.all(error <= result.error), (error, result.error)


EXPRESSIONS = {
    "sum of products": lambda x, y: np.sum(x * y, axis=-1),
    "cancellation": lambda x, y: (x + y) - y,
    "division": lambda x, y: x / (1.0 + y * y),
    "tanh derivative": lambda x, y: 1.0 - np.tanh(x) ** 2,
    "sigmoid derivative": lambda x, y: (
        np.exp(-np.logaddexp(0.0, -x)) * (1.0 - np.exp(-np.logaddexp(0.0, -x)))
    ),
    "silu derivative": lambda x, y: (
        np.exp(-np.logaddexp(0.0, -x)) * (1.0 + x * (1.0 - np.exp(-np.logaddexp(0.0, -x))))
    ),
    "erf": lambda x, y: scipy.special.erf(x / math.sqrt(2.0)) * y,
    "contraction": lambda x, y: np.einsum("i,j->ij", x, y) @ np.cos(y),
    "norm": lambda x, y: np.sqrt(np.sum(x * x) + 1.0) * np.expm1(-np.abs(y)),
}


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
@given(
    x=arrays(np.float32, 5, elements=finite),
    y=arrays(np.float32, 5, elements=finite),
)
def test_running_bound_contains_the_float32_rounding_error(name, x, y):
    expression = EXPRESSIONS[name]
    result = expression(track(x), track(y))
    assert result.value.dtype == np.float32  # evaluated in the working precision
    assert_bounded(result, exact(expression, x, y))


def test_underflow_is_inside_the_bound():
    x = np.array([-200.0, -90.0, -50.0], dtype=np.float32)
    result = np.exp(track(x))
    assert result.value[0] == 0.0  # underflows in float32 ...
    assert_bounded(result, np.exp(x.astype(np.float64)))  # ... but 1e-87 is inside the bound


def test_a_bound_is_not_vacuous():
    # The bound is a few ulps, not a blanket tolerance: 1 - tanh(x)^2 at x = 0.5.
    result = 1.0 - np.tanh(track(np.array([0.5], dtype=np.float32))) ** 2
    assert 0 < result.error[0] < 64 * np.finfo(np.float32).eps


def test_gamma_is_the_higham_constant():
    u = tolerance.unit_roundoff(np.float64)
    assert u == 2.0**-53
    assert tolerance.gamma(10, np.float64) == pytest.approx(10 * u / (1 - 10 * u), rel=1e-15)
    assert tolerance.gamma(2**60, np.float32) == math.inf


def test_summation_bound_covers_any_summation_order():
    rng = np.random.default_rng(3)
    delta = rng.normal(size=(50, 4)).astype(np.float32)
    unit_jacobian = rng.normal(size=(50, 4, 6)).astype(np.float32) * 1e3
    forward = np.einsum("nj,njp->jp", delta, unit_jacobian)
    backward = np.einsum("nj,njp->jp", delta[::-1], unit_jacobian[::-1])
    bound = tolerance.summation_bound(delta, unit_jacobian)
    assert np.all(np.abs(forward.astype(np.float64) - backward) <= bound)


def test_kink_of_max_is_recorded_as_a_tie():
    pieces = track(np.array([[1.0, 1.0 + 1e-9, -3.0]]), 1e-6)
    with recording() as events:
        np.max(pieces, axis=-1)
    assert [e.kind for e in events] == ["tie"]


def test_clear_max_records_nothing():
    with recording() as events:
        np.max(track(np.array([[1.0, 2.0, -3.0]]), 1e-6), axis=-1)
    assert events == []


def test_square_root_near_zero_is_a_singularity():
    with recording() as events:
        result = np.sqrt(track(np.array([1e-12, 4.0]), 1e-9))
    assert events[0].kind == "singularity"
    assert events[0].index == (0,)
    assert np.isinf(result.error[0]) and np.isfinite(result.error[1])


def test_division_by_an_overflowed_value_stays_bounded():
    # autograd's tanh rule computes g / cosh(x)^2, and cosh overflows beyond |x| ~ 710.
    denominator = np.cosh(track(np.array([800.0, 1.0]))) ** 2
    result = track(np.array([2.0, 2.0])) / denominator
    assert np.all(np.isfinite(result.error))
    assert_bounded(result, np.array([0.0, 2.0 / np.cosh(1.0) ** 2]))


def test_unsupported_functions_refuse_rather_than_drop_the_error():
    with pytest.raises(TypeError):
        np.linalg.inv(track(np.eye(2)))
