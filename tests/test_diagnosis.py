"""Each diagnosis class is recognised from its pattern, each pattern is told apart from
its neighbours, the order decides ties, and the decision over several draws is made once
(the shown case and the further draws together) and shown once."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest
from mutants import MUTANTS

import gradcheck
from gradcheck.diagnosis.classes import (
    CLASSES,
    PRECISION_FACTOR,
    ArgumentEvidence,
    Evidence,
    JacobianEvidence,
    decide,
    diagnose,
)
from gradcheck.errors import NonFiniteOutputError
from gradcheck.strategies import assert_gradients_correct

RNG = np.random.default_rng(11)
R = RNG.normal(size=(3, 4))  # a reference gradient, J × P
Z = RNG.normal(size=(2, 3))  # a reference input gradient, N × I
BOUND = 1e-12


def argument(g, r=R, role="parameters", **extra):
    return ArgumentEvidence(
        "θ" if role == "parameters" else "z", role, g, r, np.full(r.shape, BOUND), **extra
    )


def inputs(g=Z, r=Z, **extra):
    return argument(g, r, role="inputs", **extra)


def evidence(*arguments, batch=4, **extra):
    return Evidence(tuple(arguments), batch, **extra)


def kind(*arguments, **extra):
    return diagnose(evidence(*arguments, **extra)).kind


def test_the_classes_are_the_documented_ones_in_order():
    assert CLASSES[0] == "non-finite" and CLASSES[-1] == "unknown" and len(CLASSES) == 12


def test_non_finite():
    g = R.copy()
    g[1, 2] = np.nan
    assert kind(argument(g), inputs()) == "non-finite"


def test_coupling_ignored():
    blocks = R * 0.6  # δ ⊙ B from the diagonal blocks: what a compact form gives
    found = diagnose(evidence(argument(blocks, uncoupled=blocks, cross_mass=0.4), inputs()))
    assert found.kind == "coupling-ignored" and "40.0%" in found.summary
    # Without cross-unit mass the same numbers are something else.
    assert kind(argument(blocks, uncoupled=blocks, cross_mass=0.0), inputs()) != "coupling-ignored"


def test_transpose_of_a_square_parameter():
    r = RNG.normal(size=(3, 3))
    assert kind(argument(r.T, r, transposed=r.T), inputs()) == "transpose"


def test_sign_on_the_differing_entries_only():
    g = R.copy()
    g[:, 1] *= -1.0
    assert kind(argument(g), inputs()) == "sign"


@pytest.mark.parametrize("factor", [1 / 4, 4.0])
def test_batch_mean_versus_sum(factor):
    found = diagnose(evidence(argument(R * factor), inputs(), batch=4))
    assert found.kind == "batch-mean-vs-sum" and found.factor == factor


@pytest.mark.parametrize(
    ("factor", "reading"), [(0.5, "factor 2 missing"), (2.0, "factor 2 too many"), (1.37, "")]
)
def test_scale_constant(factor, reading):
    found = diagnose(evidence(argument(R * factor), inputs(), batch=4))
    assert (
        found.kind == "scale-constant"
        and found.factor == pytest.approx(factor)
        and reading in found.summary
    )


def test_bias_only():
    bias = np.zeros(R.shape, dtype=bool)
    bias[:, -1] = True
    g = R.copy()
    g[:, -1] += RNG.normal(size=3)
    assert kind(argument(g, bias=bias), inputs()) == "bias-only"
    g[0, 0] += 1.0  # a weight too: no longer bias-only
    assert kind(argument(g, bias=bias), inputs()) != "bias-only"


def test_input_gradient_only():
    assert kind(argument(R), inputs(Z + RNG.normal(size=Z.shape))) == "input-gradient-only"


def test_wrong_activation_derivative_shows_the_implied_derivative():
    reference = RNG.normal(size=(2, 3, 4))  # B: N × J × P
    factors = np.array([[0.2, 1.0, 3.0], [1.0, -0.5, 1.0]])  # h(a) / φ'(a) per row
    jacobian = JacobianEvidence(
        "B",
        reference * factors[..., None],
        reference,
        np.full(reference.shape, BOUND),
        preactivation=np.full((2, 3), 0.5),
        derivative=np.full((2, 3), 2.0),
    )
    g = R + RNG.normal(size=R.shape)  # the compact gradient is wrong too, in no simple way
    found = diagnose(evidence(argument(g), inputs(), jacobians=(jacobian,)))
    assert found.kind == "wrong-activation-derivative"
    implied = {row: (a, h, true) for row, a, h, true in found.table}
    assert implied["n=0, j=0"] == (0.5, pytest.approx(0.4), 2.0)  # 0.2 × φ' = 0.4
    assert len(found.table) == 3  # the three rows that differ


def test_missing_term_zero_where_the_truth_is_not():
    g = R.copy()
    g[:, 2:] = 0.0
    assert kind(argument(g), inputs()) == "missing-term"


def test_missing_term_along_the_rows_own_values():
    values = RNG.normal(size=R.shape)
    g = R - np.array([[0.3], [-1.2], [0.7]]) * values  # each row misses c_j · θʲ
    assert kind(argument(g, values=values), inputs()) == "missing-term"
    assert kind(argument(g), inputs()) == "unknown"  # without the values, nothing to see


def test_precision():
    g = R + 0.5 * PRECISION_FACTOR * BOUND * RNG.choice([-1.0, 1.0], size=R.shape)
    assert kind(argument(g), inputs()) == "precision"


def test_unknown():
    assert kind(argument(R + RNG.normal(size=R.shape)), inputs()) == "unknown"


def test_the_first_matching_class_wins():
    # A bias averaged over the batch is both "batch-mean-vs-sum" and "bias-only";
    # batch-mean-vs-sum comes first in the order.
    bias = np.zeros(R.shape, dtype=bool)
    bias[:, -1] = True
    g = R.copy()
    g[:, -1] /= 4
    assert kind(argument(g, bias=bias), inputs(), batch=4) == "batch-mean-vs-sum"


# ---- each class against its neighbours ----------------------------------------------------------


def test_the_class_names_are_exported_in_their_order():
    assert gradcheck.DIAGNOSIS_CLASSES == CLASSES


def test_a_factor_on_some_entries_only_is_not_a_constant_factor():
    # A leaky-relu mask taken from the output: factor -0.5 where x < 0, right elsewhere.
    g = R.copy()
    g[:, :2] *= -0.5
    assert kind(argument(g), inputs()) != "scale-constant"


def test_a_factor_within_rounding_of_zero_is_a_zero_not_a_factor():
    found = diagnose(evidence(argument(-4e-17 * R), inputs()))
    assert found.kind == "missing-term" and "is 0 where the truth is not" in found.summary


def _draw(factor, n, shape=(3, 4), seed=0):
    r = np.random.default_rng(seed).normal(size=shape)
    return evidence(argument(factor * r, r, batch=n), inputs(), batch=1)


def test_a_factor_that_follows_n_is_batch_mean_versus_sum():
    found = decide(_draw(1 / 2, 2), [_draw(1 / 3, 3, seed=1), _draw(1 / 4, 4, seed=2)])
    assert found.kind == "batch-mean-vs-sum"
    assert any("follows N" in line for line in found.evidence)


def test_a_factor_that_stays_when_n_changes_is_a_constant():
    # "scale-constant 2 at N = 2": the draws at N = 3 and 4 show the factor is no batch size.
    found = decide(_draw(2.0, 2), [_draw(2.0, 3, seed=1), _draw(2.0, 4, seed=2)])
    assert found.kind == "scale-constant" and found.factor == pytest.approx(2.0)


def test_the_batch_size_is_the_arguments_own():
    # A loss: scalar output (the evidence's N is 1), but its argument has a batch of 3.
    assert decide(_draw(3.0, 3), [_draw(2.0, 2, seed=1)]).kind == "batch-mean-vs-sum"


def test_the_same_constant_must_fit_every_draw():
    assert decide(_draw(1.7, 2), [_draw(2.3, 3, seed=1)]).kind == "unknown"


def test_coupling_ignored_on_a_softmax_like_input():
    # Only the diagonal of a coupled Jacobian kept, on an input of the output's shape.
    rng = np.random.default_rng(3)
    jacobian = rng.normal(size=(4, 4))
    dout = rng.normal(size=4)
    r, diagonal = dout @ jacobian, dout * np.diag(jacobian)
    x = inputs(diagonal, r, uncoupled=diagonal, cross_mass=0.6)
    assert kind(argument(R), x) == "coupling-ignored"
    # A gradient that is wrong in another way is not claimed by it.
    assert kind(argument(R), inputs(r * 3, r, uncoupled=diagonal, cross_mass=0.6)) != (
        "coupling-ignored"
    )


def test_missing_term_needs_an_intercept_per_row():
    # Layer norm with its statistics as constants: error = a + b · x on each row.
    values = RNG.normal(size=(3, 5))
    r = RNG.normal(size=(3, 5))
    g = r - (np.array([[0.4], [-1.1], [0.2]]) + np.array([[0.3], [0.9], [-2.0]]) * values)
    found = diagnose(evidence(argument(g, r, values=values), inputs()))
    assert found.kind == "missing-term" and "per row" in found.summary
    # ... or on each column (batch norm: statistics over the batch axis).
    g = r - (np.array([[0.4, -1.1, 0.2, 0.0, 1.0]]) + 0.7 * values)
    assert diagnose(evidence(argument(g, r, values=values), inputs())).summary.count("column")


def _tanh_like(factors, reference_rows, reading_rows=None, linear=None):
    reference = np.asarray(reference_rows, dtype=float)[None]
    hand = np.asarray(factors, dtype=float)[None, :, None] * reference
    if reading_rows is not None:
        hand = hand.copy()
        for row, value in reading_rows.items():
            hand[0, row, row] = value
    units = reference.shape[1]
    return JacobianEvidence(
        "J",
        hand,
        reference,
        np.full(reference.shape, BOUND),
        reading=np.arange(units)[None],
        reading_values=np.linspace(-1, 1, units)[None],
        linear=linear,
    )


def test_a_zero_derivative_row_does_not_hide_a_wrong_derivative():
    # tanh' = 1 - t² is 0 where tanh saturates; 1 + t² is 2 there.
    reference = np.diag([0.4, 0.0, 0.9])
    jacobian = _tanh_like([3.0, 1.0, 1.2], reference, reading_rows={1: 2.0})
    g = R + 1.0  # the gradient is wrong too, in no simple way
    found = diagnose(evidence(argument(g), inputs(), jacobians=(jacobian,)))
    assert found.kind == "wrong-activation-derivative"
    implied = {label: (h, true) for label, _, h, true in found.table}
    assert implied["n=0, j=1"] == (2.0, 0.0)  # the implied φ' beside the true one


def test_a_backward_that_is_not_linear_in_dout_has_no_wrong_derivative():
    jacobian = _tanh_like([3.0, 1.0, 1.2], np.diag([0.4, 0.5, 0.9]), linear=False)
    found = diagnose(evidence(argument(R + 1.0), inputs(), jacobians=(jacobian,)))
    assert found.kind != "wrong-activation-derivative"


def test_precision_of_a_part_computed_in_float32():
    # A float64 check, error a million times the float64 bound but within float32's.
    rounding = np.full(R.shape, BOUND)
    g = R + 1e6 * BOUND * RNG.choice([-1.0, 1.0], size=R.shape)
    found = diagnose(evidence(argument(g, rounding=rounding), inputs()))
    assert found.kind == "precision" and "float32" in found.summary
    assert diagnose(evidence(argument(g), inputs())).kind == "unknown"  # no rounding known


def test_rounding_sized_errors_show_no_logic_pattern():
    # A constant factor whose error is 3 times its bound: precision, not scale-constant.
    g = R * (1.0 + 3.0 * BOUND / np.abs(R).max())
    assert kind(argument(g), inputs()) == "precision"


# ---- the decision over several draws, made and shown once -----------------------------------------


def test_a_draw_too_small_to_show_a_pattern_defers_to_the_others():
    one = np.array([[1.5]])
    shown = Evidence((argument(2.0 * one, one),), 1, description="sizes i=1")
    r = RNG.normal(size=(3, 4))
    factors = RNG.uniform(0.5, 3.0, size=(3, 4))
    jacobian = JacobianEvidence(
        "J",
        (factors.reshape(-1)[:, None] * np.eye(12))[None],
        np.eye(12)[None],
        np.full((1, 12, 12), BOUND),
    )
    draw = Evidence(
        (argument(factors * r, r),), 1, (jacobian,), description="sizes i=12\n  x = [...]"
    )
    found = decide(shown, [draw])
    assert found.kind == "wrong-activation-derivative"
    assert found.evidence[0].startswith("the case above is consistent with it")
    assert found.draws and found.draws[0].startswith("draw 1: sizes i=12")  # shown as a case
    named = {name for name in CLASSES for line in found.lines() if f"{name}:" in line}
    assert named == {"wrong-activation-derivative"}


def test_one_draw_that_contradicts_a_class_rules_it_out():
    shown = _draw(-1.0, 2)  # the sign, everywhere
    other = _draw(0.5, 3, seed=1)
    assert decide(shown, [other]).kind == "unknown"
    assert decide(shown, [_draw(-1.0, 3, seed=1)]).kind == "sign"


# ---- through check_backward --------------------------------------------------------------------------


def _square(x):
    return x * x


def test_an_unstable_forward_is_diagnosed_non_finite_inside_its_bounds():
    def forward(x):
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(x)
            return e / (1.0 + e)  # inf / inf above x = 709

    def backward(dout, x):
        s = 0.5 * (np.tanh(0.5 * x) + 1.0)
        return (dout * s * (1.0 - s),)

    with pytest.raises(NonFiniteOutputError) as raised:
        gradcheck.check_backward(
            forward,
            backward,
            signature="(n)->(n)",
            bounds=[(-2000.0, 2000.0)],
            example=((np.array([800.0]),), np.array([1.0])),
        )
    assert raised.value.diagnosis == "non-finite"
    message = str(raised.value)
    assert "diagnosis: non-finite" in message and "inside the declared bounds" in message
    assert "pass bounds=" not in message and "x = [800.0]" in message


def test_the_reproduction_states_and_reproduces_the_one_diagnosis():
    def backward(dout, x):
        return (dout * (1.0 + 0.5 * x),)  # the derivative of x², wrong: 2x expected

    with pytest.raises(gradcheck.GradientMismatch) as raised:
        gradcheck.check_backward(_square, backward, signature="(n,i)->(n,i)", max_examples=20)
    first = raised.value
    message = str(first)
    assert message.count("\ndiagnosis: ") == 1  # once (the snippet states it in a comment)
    assert f"# gradcheck's diagnosis: {first.diagnosis}." in first.reproduction
    namespace = {"backward": backward, "_square": _square}
    snippet = first.reproduction.replace("from test_diagnosis import _square\n", "")
    with pytest.raises(gradcheck.GradientMismatch) as again:
        exec(compile(snippet, "<reproduction>", "exec"), namespace)
    assert again.value.diagnosis == first.diagnosis == "wrong-activation-derivative"
    assert "implied φ'" in message and "true φ'" in message


def test_the_snippet_draws_as_the_check_did():
    # dtypes= and sizes= go into the snippet: the diagnosis draws must be the same ones.
    def backward(dout, x):
        return (dout * 3.0 * x,)

    with pytest.raises(gradcheck.GradientMismatch) as raised:
        gradcheck.check_backward(
            _square,
            backward,
            signature="(n,i)->(n,i)",
            dtypes=("float32",),
            sizes={"i": (2, 3)},
            max_examples=10,
        )
    snippet = raised.value.reproduction
    assert "dtypes=('float32',)" in snippet and "sizes={'i': (2, 3)}" in snippet


def test_the_default_size_range_is_check_backwards():
    import inspect

    from gradcheck.user.run import DEFAULT_SIZES

    parameters = inspect.signature(gradcheck.check_backward).parameters
    assert (parameters["min_size"].default, parameters["max_size"].default) == DEFAULT_SIZES


# ---- the catalogue: one case, its batch stacked twice, the same class again -------------------------


def _class_names(text):
    return {name for name in CLASSES if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)}


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_a_catalogue_failure_names_one_class_and_its_snippet_names_it_again(mutant):
    case = mutant.case(np.float64)
    with pytest.raises(gradcheck.GradientMismatch) as raised:
        assert_gradients_correct(case)
    error = raised.value
    assert error.diagnosis == mutant.diagnosis
    message = str(error).split("reproduce with:")[0]
    assert (
        _class_names(message) <= {mutant.diagnosis, "unknown"}
        and message.count("\ndiagnosis: ") == 1
    )
    assert f"# gradcheck's diagnosis: {mutant.diagnosis} " in error.reproduction
    printed = io.StringIO()
    namespace = {"my_layer_type": case.layer_type, "my_activation": case.activation}
    with contextlib.redirect_stdout(printed):
        exec(compile(error.reproduction, "<reproduction>", "exec"), namespace)
    assert f"\ndiagnosis: {mutant.diagnosis}: " in printed.getvalue()
