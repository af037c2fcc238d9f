"""The error model's running bounds contain the true rounding error, and no more than
that is needed to find kinks, ties and singularities."""

from __future__ import annotations

import math
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gradcheck.core import tolerance
from gradcheck.core.tolerance import Tracked, recording, track

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


# ---- products that broadcast to a larger result, and contractions of them ----------------
#
# The rules for these evaluate the docstring's formulas in another form (operand-sized
# factors, kept unformed until read). Each test evaluates the docstring's formula entry by
# entry in exact rational arithmetic, requires the rule's bound to be at least that, and
# requires it to contain the true error of the result for true operands anywhere within
# their errors (exact, from Fractions).

#: The rules evaluate their bounds in float64, in another order than the references here:
#: each is within a few dozen float64 roundings of its exact value, 2^-53 of it each, and
#: where the bound is itself subnormal in float64 (only float64 results near underflow get
#: there), half a float64 subnormal per rounding.
EVALUATION = Fraction(1, 2**44)
FLOAT64_UNDERFLOW = 16 * Fraction(float(np.finfo(np.float64).smallest_subnormal))

#: Magnitudes whose products underflow: subnormal in the dtype, or 0.
TINY = {np.float32: 1e-22, np.float64: 1e-160}


def rational(a) -> np.ndarray:
    """An array of exact Fractions (float32 and float64 values are dyadic rationals)."""
    return np.vectorize(lambda v: Fraction(float(v)), otypes=[object])(np.asarray(a))


def roundoff(dtype) -> tuple[Fraction, Fraction]:
    """u and η (the smallest subnormal) of a dtype, exactly."""
    info = np.finfo(dtype)
    return Fraction(float(info.eps)) / 2, Fraction(float(info.smallest_subnormal))


def operand(rng, shape, dtype, *, tiny=False, large_errors=False, exact=None):
    """Values of the dtype (some exactly 0; near underflow when tiny) and errors: none for
    an exact operand, else a few units of roundoff of each value (large_errors: up to 1e-3
    of it) plus, for tiny values, a few subnormals."""
    value = (rng.normal(size=shape) * (TINY[dtype] if tiny else 1.0)).astype(dtype)
    value[rng.random(shape) < 0.15] = 0.0
    if exact is None:
        exact = rng.random() < 0.3
    if exact:
        return value, np.zeros(shape)
    u, eta = (float(q) for q in roundoff(dtype))
    relative = rng.uniform(0.0, 1e-3 if large_errors else 8 * u, size=shape)
    error = relative * np.abs(value.astype(np.float64))
    if tiny:
        error += rng.integers(0, 4, size=shape) * eta
    return value, error


def perturbed(rng, value, error) -> np.ndarray:
    """True values somewhere within the errors of the computed ones, exactly."""
    return rational(value) + rational(rng.uniform(-1.0, 1.0, size=np.shape(value))) * rational(
        np.broadcast_to(error, np.shape(value))
    )


def product_rule(x, ex, y, ey, dtype) -> np.ndarray:
    """The x · y rule of the module docstring entry by entry, exactly, with the rounding
    charged at u|x y|, the most it can be (the module charges u' >= u): |y| e_x + |x| e_y +
    e_x e_y + u|x y| + η (Fraction arrays in, broadcast)."""
    u, eta = roundoff(dtype)
    return abs(y) * ex + abs(x) * ey + ex * ey + u * abs(x * y) + eta


def assert_at_least(bound: np.ndarray, reference: np.ndarray) -> None:
    """bound >= reference entry by entry, up to the float64 evaluation of the bound."""
    reference = np.asarray(reference, dtype=object)
    bound = rational(np.broadcast_to(bound, reference.shape))
    short = [
        i
        for i in np.ndindex(reference.shape)
        if bound[i] < reference[i] * (1 - EVALUATION) - FLOAT64_UNDERFLOW
    ]
    assert not short, [(i, float(bound[i]), float(reference[i])) for i in short[:5]]


def assert_contains(result: Tracked, true: np.ndarray) -> None:
    """|computed - true| <= the bound, exactly, entry by entry (up to the float64 underflow
    of the bound's own evaluation, which only float64 results near underflow meet)."""
    true = np.asarray(true, dtype=object)
    error = rational(np.broadcast_to(result.error, result.shape))
    value = rational(result.value)
    missed = [
        i
        for i in np.ndindex(result.shape)
        if abs(value[i] - true[i]) > error[i] + FLOAT64_UNDERFLOW
    ]
    assert not missed, [(i, float(abs(value[i] - true[i])), float(error[i])) for i in missed[:5]]


SHAPES = {
    "outer product": ((2, 8, 1), (2, 1, 16)),
    "elementwise": ((4, 8), (4, 8)),
    "row times matrix": ((8,), (4, 8)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tiny", [False, True], ids=["normal", "underflow"])
@pytest.mark.parametrize("shapes", sorted(SHAPES))
@given(seed=st.integers(0, 2**32 - 1))
def test_product_bound_holds_the_rule_and_the_true_error(dtype, tiny, shapes, seed):
    rng = np.random.default_rng(seed)
    (x, ex), (y, ey) = (
        operand(rng, shape, dtype, tiny=tiny, large_errors=True) for shape in SHAPES[shapes]
    )
    result = track(x, ex) * track(y, ey)
    assert result.value.dtype == dtype
    rule = product_rule(rational(x), rational(ex), rational(y), rational(ey), dtype)
    assert_at_least(result.error, rule)
    assert_contains(result, perturbed(rng, x, ex) * perturbed(rng, y, ey))


def test_product_with_unbounded_errors_or_infinite_values_is_unbounded_there():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 8, 1)).astype(np.float32)
    y = rng.normal(size=(3, 1, 16)).astype(np.float32)
    x[0, :2], y[1, 0, :3] = 0.0, 0.0  # exact zeros meet the unbounded errors below
    x[2, 0], y[0, 0, 5] = np.inf, np.float32(3e38)  # inf times a number, and an overflow
    ex = np.full(x.shape, 1e-7)
    ex[0, 0], ex[1, 1] = np.nan, np.inf  # an error the model could not bound
    ey = np.zeros(y.shape)
    ey[1, 0, 0] = np.inf
    result = track(x, ex) * track(y, ey)
    error = np.broadcast_to(result.error, result.shape)
    assert not np.any(np.isnan(error))
    # The docstring's rule with 0 · inf = 0 where a factor is an exact 0 (the product of
    # an exact 0 is exactly 0), and unbounded where the product is not finite.
    x64, y64, ex64 = (a.astype(np.float64) for a in (x, y, np.where(np.isnan(ex), np.inf, ex)))
    with np.errstate(invalid="ignore", over="ignore"):
        terms = [np.abs(y64) * ex64, np.abs(x64) * ey, ex64 * ey]
        terms = [np.where(np.isnan(t), 0.0, t) for t in terms]
        u = float(np.finfo(np.float32).eps) / 2
        rule = sum(terms) + u * np.abs(x64 * y64) + float(np.finfo(np.float32).smallest_subnormal)
    rule = np.where(np.isfinite(result.value), rule, np.inf)
    assert np.all(np.isinf(error) == np.isinf(rule))
    finite = np.isfinite(rule)
    assert np.all(error[finite] >= rule[finite] * (1 - float(EVALUATION)))
    overflowed = np.isinf(result.value[0, :, 5])
    assert overflowed.any() and np.isinf(error[0, :, 5][overflowed]).all()
    assert np.isinf(error[2, 0]).all()
    assert np.isfinite(error[1, 1, 1])  # an unbounded x times an exact 0 is exactly 0


def contraction_rule(subscripts, dtype, *operands) -> np.ndarray:
    """The docstring's contraction rule, exactly, for (|x_k|, e_k) pairs of Fraction
    arrays: Σ_k C(|x_1|, ..., e_k, ..., |x_K|) + γ_m C(|x_1|, ..., |x_K|) plus a subnormal
    for each of the m = (summed terms) + (K - 1) multiplications per term and operand."""
    u, eta = roundoff(dtype)
    magnitudes = [m for m, _ in operands]
    value = np.einsum(subscripts, *magnitudes)
    sizes = {}
    for letters, m in zip(subscripts.split("->")[0].split(","), magnitudes, strict=True):
        sizes.update(zip(letters, m.shape, strict=True))
    terms = math.prod(n for letter, n in sizes.items() if letter not in subscripts.split("->")[1])
    m = terms + len(operands) - 1
    rule = m * u / (1 - m * u) * value + terms * len(operands) * eta
    for k, (_, error) in enumerate(operands):
        rule = rule + np.einsum(subscripts, *magnitudes[:k], error, *magnitudes[k + 1 :])
    return rule


CONTRACTIONS = ["nj,njp->jp", "njp,nj->pj", "nj,njp->np", "nj,njp->", "nj,njp->njp"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tiny", [False, True], ids=["normal", "underflow"])
@pytest.mark.parametrize("subscripts", CONTRACTIONS)
@given(seed=st.integers(0, 2**32 - 1))
def test_contraction_of_an_outer_product_holds_the_rule_and_the_true_error(
    dtype, tiny, subscripts, seed
):
    # A = Σ_n δ_nj B_njp with B_n = s_n v_nᵀ (the dense layers' unit Jacobian), and
    # permutations of it. Errors are a few units of roundoff, as the contraction rule is
    # first order (it leaves out e_δ e_B).
    rng = np.random.default_rng(seed)
    (s, es), (v, ev), (d, ed) = (
        operand(rng, shape, dtype, tiny=tiny) for shape in ((2, 8, 1), (2, 1, 16), (2, 8))
    )
    product = track(s, es) * track(v, ev)
    if rng.random() < 0.5:  # B as an array formed in full, as other code gives it
        product = Tracked(product.value, product.error)
    first, second = ("d", "B") if subscripts.startswith("nj,") else ("B", "d")
    tracked = {"d": track(d, ed), "B": product}
    result = np.einsum(subscripts, tracked[first], tracked[second])
    assert result.value.dtype == dtype
    # The rule with B's own error by the product rule and its magnitude |fl(s v)|.
    error_b = product_rule(rational(s), rational(es), rational(v), rational(ev), dtype)
    exact = {"d": (abs(rational(d)), rational(ed)), "B": (abs(rational(product.value)), error_b)}
    rule = contraction_rule(subscripts, dtype, exact[first], exact[second])
    assert_at_least(result.error, rule)
    true = {"d": perturbed(rng, d, ed), "B": perturbed(rng, s, es) * perturbed(rng, v, ev)}
    assert_contains(result, np.einsum(subscripts, true[first], true[second]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(seed=st.integers(0, 2**32 - 1))
def test_contraction_over_stacks_and_broadcast_operands(dtype, seed):
    # Ellipses, a stacked outer product whose factors broadcast over the stack, and an
    # operand that is a broadcast view with one error for all its entries.
    rng = np.random.default_rng(seed)
    (s, es), (v, ev) = (operand(rng, shape, dtype) for shape in ((2, 2, 4, 1), (1, 2, 1, 16)))
    d = rng.normal(size=(2, 4)).astype(dtype)
    radius = float(rng.uniform(0, 8)) * float(roundoff(dtype)[0])
    subscripts = "...nj,...njp->...pj"
    stacked = track(np.broadcast_to(d, (2, 2, 4)), radius)
    product = track(s, es) * track(v, ev)
    result = np.einsum(subscripts, stacked, product)
    explicit = "knj,knjp->kpj"
    error_b = product_rule(rational(s), rational(es), rational(v), rational(ev), dtype)
    magnitude_d = abs(rational(np.broadcast_to(d, (2, 2, 4))))
    rule = contraction_rule(
        explicit,
        dtype,
        (magnitude_d, rational(np.full((2, 2, 4), radius))),
        (abs(rational(product.value)), error_b),
    )
    assert_at_least(result.error, rule)
    true_d = np.broadcast_to(perturbed(rng, d, np.full(d.shape, radius)), (2, 2, 4))
    true_b = perturbed(rng, s, es) * perturbed(rng, v, ev)
    assert_contains(result, np.einsum(explicit, true_d, true_b))


def test_contraction_with_unbounded_errors_is_unbounded_where_they_reach():
    rng = np.random.default_rng(11)
    s = rng.normal(size=(2, 8, 1)).astype(np.float32)
    v = rng.normal(size=(2, 1, 16)).astype(np.float32)
    d = rng.normal(size=(2, 8)).astype(np.float32)
    es = np.full(s.shape, 1e-7)
    es[0, 3], es[1, 5] = np.nan, np.inf  # errors the model could not bound
    result = np.einsum("nj,njp->jp", track(d), track(s, es) * track(v))
    error = np.broadcast_to(result.error, result.shape)
    assert not np.any(np.isnan(error))
    assert np.isinf(error[[3, 5]]).all()  # A_jp sums δ_nj B_njp over n: rows 3 and 5
    assert np.isfinite(np.delete(error, [3, 5], axis=0)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("exact_side", ["left", "right", "neither", "both"])
@pytest.mark.parametrize(("rows", "columns"), [(5, 3), (3, 5)])
@given(seed=st.integers(0, 2**32 - 1))
def test_matrix_product_holds_the_rule_and_the_true_error(dtype, exact_side, rows, columns, seed):
    rng = np.random.default_rng(seed)
    (a, ea), (b, eb) = (
        operand(rng, shape, dtype, exact=exact_side in (side, "both"))
        for shape, side in (((rows, 7), "left"), ((7, columns), "right"))
    )
    result = track(a, ea) @ track(b, eb)
    u, eta = roundoff(dtype)
    magnitude_a, magnitude_b = abs(rational(a)), abs(rational(b))
    gamma = 8 * u / (1 - 8 * u)  # γ_(K+1), K = 7
    rule = (
        magnitude_a @ rational(eb)
        + rational(ea) @ magnitude_b
        + gamma * (magnitude_a @ magnitude_b)
        + 2 * 7 * eta
    )
    assert_at_least(result.error, rule)
    assert_contains(result, perturbed(rng, a, ea) @ perturbed(rng, b, eb))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_summation_bound_from_an_outer_products_factors_covers_the_plain_one(dtype):
    rng = np.random.default_rng(5)
    slope, inputs = rng.normal(size=(3, 5)).astype(dtype), rng.normal(size=(3, 7)).astype(dtype)
    delta = rng.normal(size=(3, 5)).astype(dtype)
    unit_jacobian = track(slope)[..., None] * track(inputs)[:, None, :]
    assert unit_jacobian._bounds is not None  # kept as factors: the case under test
    factored = tolerance.summation_bound(delta, unit_jacobian)
    plain = tolerance.summation_bound(delta, unit_jacobian.value)
    assert factored.shape == plain.shape == (5, 7)
    # |fl(x y)| <= (1 + 2u)|x||y| + η: the factors bound |B| from above, and barely.
    assert np.all(factored >= plain)
    # How far above: the factors' (1 + 2u) over B's own rounding (1 - u) gives 3u, and the
    # two magnitudes are summed over N = 3 in a different order in float64, each within
    # γ_(N+2) of the exact sum (two more products per term), so within twice that of each
    # other. (4u alone failed on float64 once BLAS summed in another order.)
    rtol = 3 * tolerance.unit_roundoff(dtype) + 2 * tolerance.gamma(3 + 2, np.float64)
    assert np.allclose(factored, plain, rtol=rtol, atol=0)


def test_loading_the_error_model_does_not_import_scipy():
    code = "import sys, gradcheck.core.tolerance; print('scipy.special' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False"


def test_scipy_erf_on_a_tracked_array_follows_its_rule():
    x = track(np.array([0.5, -1.0, 2.0]), radius=1e-6)
    result = scipy.special.erf(x)
    assert isinstance(result, Tracked)
    slope = 2.0 / np.sqrt(np.pi) * np.exp(-(x.value**2))
    # |erf'(x)| e_x plus the function's own ulps: at least the propagated part, and finite.
    assert np.all(result.error >= slope * 1e-6) and np.all(np.isfinite(result.error))
