"""The finite-difference error model holds at every magnitude (issue 14), each case held
against an exact computation written here: rational arithmetic (`fractions.Fraction`)
for the polynomial and rational activations, the derivative of exp for exp.

Each test also shows what the bound must cover: the actual error of the reference, which
the earlier model (rounding charged at x, truncation of E as a whole) did not.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from gradcheck import Case, Verdict, check
from gradcheck.catalogue.activations import ACTIVATIONS
from gradcheck.catalogue.checker import check_large
from gradcheck.catalogue.hand_written import rank_one_reference
from gradcheck.catalogue.layers import LAYER_TYPES
from gradcheck.core import differences, oracles
from gradcheck.core.comparison import compare
from gradcheck.core.rounding import ulps_error
from gradcheck.core.tolerance import track

DENSE = LAYER_TYPES["dense"]


def dense_case(seed: int, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The dense cases of tests/field/repro_issue14.py: z (4 × 3), θ (2 × 4) × scale, δ."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(4, 3)), rng.normal(size=(2, 4)) * scale, rng.normal(size=(4, 2))


def exact_dense_gradient(z, theta, delta, derivative) -> np.ndarray:
    """∂E/∂θ of E = Σ δ φ(θ·[z, 1]) in exact rational arithmetic: Σ_n δ_nj φ'(a_nj) [z, 1]_np."""
    rows = [[Fraction(float(v)) for v in row] + [Fraction(1)] for row in z]
    result = np.empty(theta.shape)
    for j, unit in enumerate(theta):
        weights = [Fraction(float(v)) for v in unit]
        total = [Fraction(0)] * len(weights)
        for n, row in enumerate(rows):
            a = sum(w * x for w, x in zip(weights, row, strict=True))
            slope = Fraction(float(delta[n, j])) * derivative(a)
            total = [t + slope * x for t, x in zip(total, row, strict=True)]
        result[j] = [float(t) for t in total]
    return result


def dense_forward(activation: str):
    phi = ACTIVATIONS[activation]

    def forward(z, theta):
        return DENSE.forward(z, theta, phi)

    return forward


def first_and_second_look(activation, z, theta, delta):
    forward = dense_forward(activation)
    z, theta, delta = z[None], theta[None], delta[None]
    forward_error = np.asarray(forward(track(z), track(theta)).error)
    first = oracles.parameter_differences(forward, z, theta, delta, forward_error, layout="full")
    second = oracles.parameter_differences(
        forward, z, theta, delta, forward_error, layout="full", tracked=True
    )
    return first, second


def test_the_second_look_charges_the_rounding_where_the_differences_are_taken():
    # square with θ × 1e-10: |f(θ)| ≈ 1e-19, but the stencil reaches |f(θ ± h)| ≈ 2e-11.
    z, theta, delta = dense_case(0, 1e-10)
    exact = exact_dense_gradient(z, theta, delta, lambda a: 2 * a)
    first, second = first_and_second_look("square", z, theta, delta)
    miss = np.abs(first.value[0] - exact)
    assert np.any(miss > first.error[0])  # the rounding charged at θ does not cover it
    assert np.all(np.abs(second.value[0] - exact) <= second.error[0])
    assert np.all(second.error[0] <= 1e-9 * np.abs(exact).max())  # still a sharp reference
    case = Case(layer_type="dense", activation="square", z=z, theta=theta, delta=delta)
    result = check(case)
    assert result.verdict is Verdict.PASS, result.message


def softsign_derivative(a: Fraction) -> Fraction:
    return 1 / (1 + abs(a)) ** 2


def test_the_truncation_is_taken_output_by_output():
    # softsign with θ × 1e-6: φ'' jumps at a = 0 and the stencil crosses it for some
    # examples, whose truncation errors cancel in E but not in the reference.
    z, theta, delta = dense_case(1, 1e-6)
    exact = exact_dense_gradient(z, theta, delta, softsign_derivative)
    first, _ = first_and_second_look("softsign", z, theta, delta)
    assert np.all(np.abs(first.value[0] - exact) <= first.error[0])
    # somewhere E's own |D(h) - D(2h)| is below the reference's actual error
    forward = dense_forward("softsign")

    def energy(entry, step):
        moved = theta.copy()
        moved[entry] += step
        return float(np.sum(delta * forward(z, moved)))

    short = []
    for entry in np.ndindex(theta.shape):
        h = differences.step_sizes(theta[entry])
        d1 = (energy(entry, h) - energy(entry, -h)) / (2 * h)
        d2 = (energy(entry, 2 * h) - energy(entry, -2 * h)) / (4 * h)
        short.append(abs(d1 - d2) < abs(first.value[0][entry] - exact[entry]))
    assert any(short)


def test_the_extrapolation_does_not_overflow_below_the_largest_float():
    # exp at 709: every stencil value is finite (exp(709 + 2h) = 8.3e307), 4·D(h) is not.
    x = np.array([709.0])
    (plus1, minus1, plus2, minus2), (step1, step2) = differences.stencil(x)
    d1 = (np.exp(plus1) - np.exp(minus1)) / step1
    d2 = (np.exp(plus2) - np.exp(minus2)) / step2
    with np.errstate(over="ignore"):
        assert np.isinf(4.0 * d1).all()
    rounding = 4 * differences.U64 * np.exp(plus2) / step1  # 4 ulps of exp at each point
    value, error = differences.richardson(d1, d2, rounding, rounding)
    exact = math.exp(709.0)
    assert np.isfinite(value).all() and np.isfinite(error).all()
    assert abs(value.item() - exact) <= error.item() <= 1e-5 * exact  # |D(h) - D(2h)| ≈ 6e-6


def test_an_unresolved_entry_is_not_compared():
    # estimate NaN, error inf: the oracle could not resolve the entry (an overflow)
    value, error = differences.richardson(
        np.array([np.inf, 1.0]), np.array([1.0, 1.0]), np.zeros(2), np.zeros(2)
    )
    assert np.isnan(value[0]) and error[0] == np.inf and np.isfinite(value[1])
    names = ("entry",)
    (ok,) = compare("finite-differences", "inputs", "m", [[5.0, 1.0]], [value], [error], 0.0, names)
    assert ok.passed and ok.unbounded_entries == 1
    # but a hand-written NaN is never excused by it
    (bad,) = compare(
        "finite-differences", "inputs", "m", [[np.nan, 1.0]], [value], [error], 0.0, names
    )
    assert not bad.passed


def test_a_function_accurate_to_ulps_may_be_that_many_subnormals_off():
    eta = float(np.finfo(np.float32).smallest_subnormal)
    tiny = np.array([3e-41], dtype=np.float32)  # subnormal: its ulp is η
    assert ulps_error(tiny, 4.0)[0] >= 4 * eta
    assert ulps_error(tiny, 0.5)[0] >= eta / 2


def test_the_outer_product_bound_covers_subnormal_products():
    """dense / sigmoid / float32 with pre-activations near -98: B = σ'(a) [z, 1] is
    subnormal, and each path (fl(δ fl(u v)) and fl(fl(δ u) v)) loses up to η/2 per product,
    the first one multiplied by |δ| or |v|. Exact: float32 products are exact in float64,
    and Fraction adds them exactly."""
    z = np.array([[-5.468947887420654, 30.408132553100586, 10.66677474975586]], np.float32)
    theta = np.array(
        [
            [0.4463745653629303, -0.5369532108306885, 0.581118106842041, -98.3915023803711],
            [0.2941325008869171, 0.028422242030501366, 0.5467129945755005, -98.3915023803711],
        ],
        np.float32,
    )
    delta = np.array([[3.122363805770874, -4.174485206604004]], np.float32)
    phi = ACTIVATIONS["sigmoid"]
    u, v = DENSE.rank_one(z, theta, phi)
    outer, bound = rank_one_reference(DENSE, phi, z, theta, delta)
    compact = np.einsum("nj,njp->jp", delta, u[:, :, None] * v[:, None, :])
    exact = np.array(
        [
            [
                float(
                    Fraction(float(delta[0, j]))
                    * Fraction(float(u[0, j]))
                    * Fraction(float(v[0, p]))
                )
                for p in range(v.shape[1])
            ]
            for j in range(u.shape[1])
        ]
    )
    eta = float(np.finfo(np.float32).smallest_subnormal)
    assert np.abs(outer).max() < np.finfo(np.float32).tiny  # subnormal: the case in point
    difference = np.abs(compact.astype(np.float64) - outer)
    assert np.all(difference <= bound)
    assert np.any(difference > 6 * eta)  # what the earlier 2(N + 2)η allowed
    # each path is within its own half of the bound of the exact product
    u32 = float(np.finfo(np.float32).eps) / 2
    relative = 2.1 * u32 * np.abs(exact)
    carried_a = (1 + u32) * np.abs(delta[0]).astype(np.float64)[:, None] * eta / 2 + eta / 2
    carried_r = (1 + u32) * np.abs(v[0]).astype(np.float64)[None, :] * eta / 2 + eta / 2
    assert np.all(np.abs(compact - exact) <= relative + carried_a)
    assert np.all(np.abs(outer - exact) <= relative + carried_r)
    result = check(Case(layer_type="dense", activation="sigmoid", z=z, theta=theta, delta=delta))
    assert result.verdict is Verdict.PASS, result.message


@pytest.mark.parametrize("scale", [1e-12, 1e-8, 1e-4, 1e4, 1e8, 1e12])
def test_the_reference_is_within_its_bound_at_every_magnitude(scale):
    """square and softsign differenced at θ of every size, against exact arithmetic."""
    for activation, derivative in (("square", lambda a: 2 * a), ("softsign", softsign_derivative)):
        for seed in range(3):
            z, theta, delta = dense_case(seed, scale)
            exact = exact_dense_gradient(z, theta, delta, derivative)
            _, second = first_and_second_look(activation, z, theta, delta)
            assert np.all(np.abs(second.value[0] - exact) <= second.error[0]), (activation, seed)


@pytest.mark.parametrize(
    ("layer", "layout"),
    [("dense", "columns"), ("elementwise", "columns"), ("elementwise", "probes")],
)
def test_the_large_path_charges_the_rounding_where_it_differences(layer, layout):
    """square with θ × 1e-10 checked block by block: the stencil's sums are per output and
    each block's share that misses is differenced again with the rounding at its stencil
    points. The hand-written A is the exact gradient (rational arithmetic)."""
    rng = np.random.default_rng(0)
    row = LAYER_TYPES[layer]
    units = 6 if row.square else 40
    z = rng.normal(size=(3, 6))
    theta = rng.normal(size=(units, row.parameters_per_unit(6))) * 1e-10
    delta = rng.normal(size=(3, units))
    case = Case(layer_type=layer, activation="square", z=z, theta=theta, delta=delta)
    result = check_large(case, finite_differences=layout, block_units=7)
    assert result.verdict is Verdict.PASS, result.message
    hand = np.einsum("nj,njp->jp", delta, row.unit_jacobian(z, theta, ACTIVATIONS["square"]))
    exact = np.empty(theta.shape)
    for j, p in np.ndindex(theta.shape):  # E = Σ_n δ_nj a_nj², a_nj = Σ_q θ_jq x_njq
        total = Fraction(0)
        for n in range(z.shape[0]):
            # the coefficients x_nj of θ_j in a_nj: dense [z_n, 1], elementwise (z_nj, 1)
            x = [*z[n], 1.0] if layer == "dense" else [z[n, j], 1.0]
            a = sum(
                Fraction(float(t)) * Fraction(float(c)) for t, c in zip(theta[j], x, strict=True)
            )
            total += Fraction(float(delta[n, j])) * 2 * a * Fraction(float(x[p]))
        exact[j, p] = float(total)
    assert np.allclose(hand, exact, rtol=1e-12, atol=0)


def cosine_tanh_energy(z, theta, delta):
    """E = Σ δ tanh(w·z / (‖w‖ ‖z‖)), written here (complex-analytic: no abs)."""
    weight_norm = np.sqrt(np.sum(theta * theta, axis=1))
    input_norm = np.sqrt(np.sum(z * z, axis=1))
    return np.sum(delta * np.tanh((z @ theta.T) / (input_norm[:, None] * weight_norm[None, :])))


def test_the_second_look_checks_convergence_where_the_step_is_large_against_the_values():
    """cosine / tanh with z × 1e-4: the step 4.8e-6 is a twentieth of each row's norm, and
    at this entry D's h² term nearly vanishes while its h⁴ term does not, so |D(h) - D(2h)|
    misses R's error. The second look adds ±4h and charges how far R(h) lies from R(2h)
    (fifteen times R(h)'s own truncation where h⁴ leads). The exact ∂E/∂z comes from the
    complex step."""
    z = 1e-4 * np.array(
        [
            [-0.0721253949, 0.0909375321, -0.161278290, -0.816884454],
            [0.135108404, 0.135108404, 2.18042867, 0.104942487],
            [-0.862823657, -0.647896555, -0.117077698, -0.430484148],
            [-0.0625, 0.684332371, 0.360631465, 0.0928579766],
        ]
    )
    theta = np.array([[0.09605159, -3.86700408, -0.75, 4.0]])
    delta = np.array([[3.45873206], [1.5], [0.5], [3.65324108]])
    exact = np.empty(z.shape)
    for index in np.ndindex(z.shape):
        moved = z.astype(complex)
        moved[index] += 1e-150j
        exact[index] = cosine_tanh_energy(moved, theta, delta).imag / 1e-150
    layer, phi = LAYER_TYPES["cosine"], ACTIVATIONS["tanh"]

    def forward(inputs, parameters):
        return layer.forward(inputs, parameters, phi)

    arrays = z[None], theta[None], delta[None]
    forward_error = np.asarray(forward(track(arrays[0]), track(arrays[1])).error)
    first = oracles.input_differences(forward, *arrays, forward_error, layout="full")
    second = oracles.input_differences(forward, *arrays, forward_error, layout="full", tracked=True)
    assert np.any(np.abs(first.value[0] - exact) > first.error[0])
    assert np.all(np.abs(second.value[0] - exact) <= second.error[0])
    assert np.all(second.error[0] <= 1e-2 * np.abs(exact).max())  # 20 steps per norm
    result = check(Case(layer_type="cosine", activation="tanh", z=z, theta=theta, delta=delta))
    assert result.verdict is Verdict.PASS, result.message
