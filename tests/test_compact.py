"""The seed's identity: δ ⊙ B equals the block-diagonal product, and the outer product
when B has rank one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gradcheck.core import compact, tolerance

sizes = st.integers(1, 5)
values = st.floats(-100, 100, allow_nan=False, width=32)


@st.composite
def deltas_and_unit_jacobians(draw, dtype=np.float64):
    n, j, p = draw(sizes), draw(sizes), draw(sizes)
    delta = draw(arrays(dtype, (n, j), elements=values))
    unit_jacobian = draw(arrays(dtype, (n, j, p), elements=values))
    return delta, unit_jacobian


def loop_gradient(delta, unit_jacobian):
    """A_jp = Σ_n δ_nj B_njp, written as the seed writes it: row j of B scaled by δ_j."""
    n, j, p = unit_jacobian.shape
    result = np.zeros((j, p))
    for example in range(n):
        for unit in range(j):
            result[unit] += float(delta[example, unit]) * unit_jacobian[example, unit].astype(
                np.float64
            )
    return result


@given(deltas_and_unit_jacobians())
def test_compact_gradient_is_delta_times_each_row(case):
    delta, unit_jacobian = case
    expected = loop_gradient(delta, unit_jacobian)
    bound = tolerance.summation_bound(delta, unit_jacobian)
    assert np.all(np.abs(compact.compact_gradient(delta, unit_jacobian) - expected) <= bound)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
def test_compact_equals_dense_within_a_few_ulps(dtype, data):
    delta, unit_jacobian = data.draw(deltas_and_unit_jacobians(dtype))
    dense, method = compact.dense_gradient(delta, unit_jacobian)
    assert method == "explicit"
    difference = np.abs(compact.compact_gradient(delta, unit_jacobian).astype(np.float64) - dense)
    assert np.all(difference <= tolerance.summation_bound(delta, unit_jacobian))


@given(deltas_and_unit_jacobians())
def test_block_by_block_dense_product_agrees_with_the_explicit_one(case):
    delta, unit_jacobian = case
    explicit, _ = compact.dense_gradient(delta, unit_jacobian)
    blockwise, method = compact.dense_gradient(delta, unit_jacobian, budget=0)
    assert method == "block by block"
    assert np.all(np.abs(explicit - blockwise) <= tolerance.summation_bound(delta, unit_jacobian))


def test_block_diagonal_layout():
    unit_jacobian = np.arange(1.0, 7.0).reshape(1, 2, 3)  # J = 2 units, P = 3
    dense = compact.block_diagonal(unit_jacobian)[0]
    assert dense.shape == (2, 6)
    np.testing.assert_array_equal(dense[0, :3], unit_jacobian[0, 0])
    np.testing.assert_array_equal(dense[1, 3:], unit_jacobian[0, 1])
    assert not dense[0, 3:].any() and not dense[1, :3].any()


@given(
    arrays(np.float64, (3, 4), elements=values),
    arrays(np.float64, (3, 4), elements=values),
    arrays(np.float64, (3, 5), elements=values),
)
def test_rank_one_unit_jacobian_collapses_to_an_outer_product(delta, u, v):
    unit_jacobian = u[:, :, None] * v[:, None, :]
    magnitude = np.einsum("nj,np->jp", np.abs(delta * u), np.abs(v))
    difference = compact.compact_gradient(delta, unit_jacobian) - compact.rank_one_gradient(
        delta, u, v
    )
    assert np.all(np.abs(difference) <= 2 * tolerance.gamma(3 + 2, np.float64) * magnitude)


def test_seed_special_case_every_row_the_same():
    # Every row of B is the same vector v: A is the outer product δ vᵀ.
    delta = np.array([[2.0, -1.0, 0.5]])
    v = np.array([1.0, 3.0])
    unit_jacobian = np.broadcast_to(v, (1, 3, 2))
    np.testing.assert_array_equal(
        compact.compact_gradient(delta, unit_jacobian), np.outer(delta[0], v)
    )


def test_input_gradient_is_formula_one():
    rng = np.random.default_rng(0)
    delta, input_jacobian = rng.normal(size=(2, 3)), rng.normal(size=(2, 3, 4))
    expected = np.stack([delta[n] @ input_jacobian[n] for n in range(2)])
    np.testing.assert_allclose(compact.input_gradient(delta, input_jacobian), expected, rtol=1e-14)
