"""check(): verdicts for kinks and bad input, and what a result carries."""

from __future__ import annotations

import numpy as np
import pytest
from cases import random_case

from gradcheck import Case, GradcheckError, Verdict, check
from gradcheck.catalogue.checker import ORACLES
from gradcheck.errors import UnknownNameError


def dense_at_a_kink(activation: str) -> Case:
    # Unit 0: 2·1 + (-1)·2 + 0 = 0 exactly, on the kink of relu and abs.
    return Case(
        layer_type="dense",
        activation=activation,
        z=np.array([[1.0, 2.0]]),
        theta=np.array([[2.0, -1.0, 0.0], [1.0, 1.0, 0.5]]),
        delta=np.array([[0.7, -1.3]]),
    )


@pytest.mark.parametrize("activation", ["relu", "abs", "leaky_relu", "hard_tanh"])
def test_a_case_on_a_kink_is_non_differentiable(activation):
    case = dense_at_a_kink(activation)
    if activation == "hard_tanh":  # kinks at ±1: move unit 0 onto +1
        case = Case(
            layer_type="dense",
            activation=activation,
            z=case.z,
            theta=np.array([[2.0, -1.0, 1.0], [1.0, 1.0, 0.5]]),
            delta=case.delta,
        )
    result = check(case)
    assert result.verdict is Verdict.NON_DIFFERENTIABLE, result.message
    assert "kink" in result.message


def test_maxout_tie_is_non_differentiable():
    # Both pieces of unit 0 give 1·1 + 1 = 2 and 2·1 + 0 = 2.
    case = Case(
        layer_type="maxout",
        z=np.array([[1.0]]),
        theta=np.array([[1.0, 1.0, 2.0, 0.0]]),
        delta=np.array([[1.0]]),
    )
    result = check(case)
    assert result.verdict is Verdict.NON_DIFFERENTIABLE, result.message
    assert "max over 2 candidates" in result.message


def test_within_the_finite_difference_step_of_a_kink_is_non_differentiable():
    case = dense_at_a_kink("relu")
    theta = np.array(case.theta)
    theta[0, 2] = 1e-7  # a = 1e-7: differentiable, but closer than the step of 6e-6
    result = check(
        Case(layer_type="dense", activation="relu", z=case.z, theta=theta, delta=case.delta)
    )
    assert result.verdict is Verdict.NON_DIFFERENTIABLE


def test_clear_of_the_kink_is_checked():
    case = dense_at_a_kink("relu")
    theta = np.array(case.theta)
    theta[0, 2] = 1e-3
    result = check(
        Case(layer_type="dense", activation="relu", z=case.z, theta=theta, delta=case.delta)
    )
    assert result.verdict is Verdict.PASS, result.message


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "activation", ["tanh", "relu", "sigmoid", "gelu", "elu", "mish", "hard_sigmoid"]
)
def test_correct_layers_pass_in_both_dtypes(activation, dtype):
    for seed in range(10):
        for layer_type in ("dense", "gated", "cosine", "weightnorm", "elementwise"):
            result = check(random_case(layer_type, activation, dtype=dtype, seed=seed, batch=4))
            assert result.verdict in (Verdict.PASS, Verdict.NON_DIFFERENTIABLE), result.message
            if result.verdict is Verdict.PASS:
                assert result.case.dtype == np.dtype(dtype).name


BAD_ARRAYS = [
    (
        "theta",
        lambda c: {"theta": np.where(np.eye(*np.shape(c.theta)) > 0, np.nan, c.theta)},
        "theta contains nan at index (0, 0)",
    ),
    ("z", lambda c: {"z": np.full(np.shape(c.z), np.inf)}, "z contains inf"),
    ("delta", lambda c: {"delta": -np.full(np.shape(c.delta), np.inf)}, "delta contains -inf"),
    (
        "integer",
        lambda c: {"z": np.ones(np.shape(c.z), dtype=np.int64)},
        "z has integer dtype int64",
    ),
    (
        "mixed dtypes",
        lambda c: {"theta": np.asarray(c.theta, dtype=np.float32)},
        "must share one dtype",
    ),
    (
        "zero-sized",
        lambda c: {"z": np.zeros((0, 4)), "delta": np.zeros((0, 3))},
        "z has a zero-sized dimension",
    ),
    ("one-dimensional", lambda c: {"z": np.zeros(4)}, "z must be 2-dimensional"),
    ("delta shape", lambda c: {"delta": np.zeros((3, 2))}, "delta must have shape (N, J) = (3, 3)"),
    ("theta columns", lambda c: {"theta": np.zeros((3, 4))}, "theta must have 5 columns for dense"),
    (
        "float16",
        lambda c: {k: np.asarray(getattr(c, k), np.float16) for k in ("z", "theta", "delta")},
        "z has dtype float16",
    ),
    ("ragged", lambda c: {"z": [[1.0, 2.0], [3.0]]}, "z is not an array"),
]


@pytest.mark.parametrize(("what", "change", "message"), BAD_ARRAYS, ids=[b[0] for b in BAD_ARRAYS])
def test_bad_input_is_invalid_input_naming_the_array(what, change, message):
    base = random_case("dense", "tanh")
    fields = {
        "layer_type": "dense",
        "activation": "tanh",
        "z": base.z,
        "theta": base.theta,
        "delta": base.delta,
    }
    fields.update(change(base))
    result = check(Case(**fields))
    assert result.verdict is Verdict.INVALID_INPUT
    assert message in result.message
    assert result.comparisons == ()


def test_square_layer_with_wrong_sizes_is_invalid():
    case = random_case("elementwise", "tanh")
    result = check(
        Case(
            layer_type="elementwise",
            activation="tanh",
            z=np.ones((2, 3)),
            theta=case.theta,
            delta=np.ones((2, 4)),
        )
    )
    assert result.verdict is Verdict.INVALID_INPUT
    assert "needs as many inputs as units" in result.message


def test_a_forward_that_overflows_is_invalid_input():
    case = Case(
        layer_type="dense",
        activation="cube",
        z=np.array([[1e5]]),
        theta=np.array([[1e5, 0.0]]),
        delta=np.array([[1.0]]),
    )
    result = check(case)
    assert result.verdict is Verdict.INVALID_INPUT
    assert "outside its domain" in result.message


def test_hand_written_code_that_raises_is_reported():
    from dataclasses import replace

    from gradcheck import LAYER_TYPES

    def broken(z, theta, phi):
        raise ZeroDivisionError("oops")

    layer = replace(LAYER_TYPES["dense"], name="broken", unit_jacobian=broken)
    result = check(random_case(layer, "tanh"))
    assert result.verdict is Verdict.INVALID_INPUT
    assert "broken.unit_jacobian raised ZeroDivisionError: oops" in result.message


def test_usage_errors_raise():
    case = random_case("dense", "tanh")
    with pytest.raises(UnknownNameError, match="unknown oracle 'magic'"):
        check(case, oracles=("magic",))
    with pytest.raises(GradcheckError, match="finite_differences must be"):
        check(case, finite_differences="sideways")
    with pytest.raises(GradcheckError, match="probes must be a positive integer"):
        check(case, probes=0)
    with pytest.raises(UnknownNameError):
        check(Case(layer_type="nope", z=case.z, theta=case.theta, delta=case.delta))


def test_a_result_carries_every_comparison_and_timings():
    result = check(random_case("dense", "tanh", batch=4))
    assert result.passed
    assert (
        result.case.batch == 4 and result.case.units == 3 and result.case.parameters_per_unit == 5
    )
    seen = {(c.oracle, c.target) for c in result.comparisons}
    assert seen == {
        ("dense", "parameters"),
        ("autograd", "parameters"),
        ("autograd", "inputs"),
        ("finite-differences", "parameters"),
        ("finite-differences", "inputs"),
    }
    for comparison in result.comparisons:
        assert 0.0 <= comparison.worst_ratio <= 1.0
        assert comparison.worst_error <= comparison.worst_bound
        assert set(comparison.worst_entry) in ({"unit", "parameter"}, {"row", "input"})
    assert set(ORACLES) <= set(result.seconds) and result.seconds["total"] > 0
    assert result.rank_one == "holds" and result.off_diagonal_mass == 0.0


@pytest.mark.parametrize("layout", ["full", "columns", "probes"])
def test_every_finite_difference_layout_checks(layout):
    result = check(
        random_case("gated", "tanh"), oracles=("finite-differences",), finite_differences=layout
    )
    assert result.verdict is Verdict.PASS, result.message
    (parameters,) = [c for c in result.comparisons if c.target != "inputs"]
    assert layout in parameters.method or (layout == "probes" and "probes" in parameters.method)


def test_check_many_gives_what_check_gives_case_by_case():
    from mutants import MUTANTS

    from gradcheck.catalogue.checker import check_many

    cases = [
        random_case(layer, "tanh", seed=seed)
        for layer in ("dense", "rbf", "tied")
        for seed in range(3)
    ]
    cases += [
        dense_at_a_kink("relu"),
        random_case("dense", "relu", seed=7),
        MUTANTS[0].case(np.float64),
    ]
    cases += [
        Case(
            layer_type="dense",
            activation="tanh",
            z=np.ones((3, 4)),
            theta=np.ones((3, 5)),
            delta=np.full((3, 3), np.nan),
        )
    ]
    together = check_many(cases)
    alone = [check(case) for case in cases]
    assert [r.verdict for r in together] == [r.verdict for r in alone]
    assert [r.message for r in together] == [r.message for r in alone]
    for a, b in zip(together, alone, strict=True):
        assert [(c.oracle, c.target, c.worst_entry) for c in a.comparisons] == [
            (c.oracle, c.target, c.worst_entry) for c in b.comparisons
        ]
    assert {str(r.verdict) for r in together} == {
        "pass",
        "coupled",
        "non-differentiable",
        "mismatch",
        "invalid-input",
    }


def test_a_kink_in_one_stacked_case_marks_only_that_case():
    from gradcheck.catalogue.checker import check_many

    kinked = dense_at_a_kink("relu")
    clear = Case(
        layer_type="dense",
        activation="relu",
        z=kinked.z,
        theta=np.array([[2.0, -1.0, 0.5], [1.0, 1.0, 0.5]]),
        delta=kinked.delta,
    )
    verdicts = [r.verdict for r in check_many([clear, kinked, clear])]
    assert verdicts == [Verdict.PASS, Verdict.NON_DIFFERENTIABLE, Verdict.PASS]


def test_subgradient_mode_catches_a_derivative_outside_the_one_sided_differences():
    from dataclasses import replace

    from gradcheck import ACTIVATIONS

    # relu'(0) = 2 lies outside [0, 1], the slopes on either side of the kink.
    wrong = replace(
        ACTIVATIONS["relu"],
        dphi=lambda x, y: np.where(x > 0, 1.0 + 0 * x, 0 * x) + np.where(x == 0, 2.0, 0.0),
    )
    at_kink = dense_at_a_kink("relu")
    case = Case(
        layer_type="dense", activation=wrong, z=at_kink.z, theta=at_kink.theta, delta=at_kink.delta
    )
    assert check(case).verdict is Verdict.NON_DIFFERENTIABLE
    result = check(case, kinks="subgradient")
    assert result.verdict is Verdict.MISMATCH, result.message
    assert "one-sided" in result.message
    assert check(dense_at_a_kink("relu"), kinks="subgradient").verdict is Verdict.PASS


def cosine_case(activation, z, theta) -> Case:
    return Case(
        layer_type="cosine",
        activation=activation,
        z=np.array([z], dtype=np.float32),
        theta=np.array(theta, dtype=np.float32),
        delta=np.ones((1, len(theta)), dtype=np.float32),
    )


def test_a_cosine_rounded_onto_its_kink_is_not_a_mismatch():
    from fractions import Fraction

    # Found by issue 16's wide draws: z and θ¹ are nearly parallel, so cos(z, θ¹) lies
    # 4e-8 below hard_tanh's kink at 1 and float32 rounds it onto the kink, where the
    # rule's slope is 0; no step of z can push the cosine past 1, so both one-sided
    # differences see the true slope 1 · ∂cos/∂z, 8.9e-8, and held 0 against it.
    case = cosine_case(
        "hard_tanh",
        [0.000972747802734375, 1.747344732284546],
        [[0.000972747802734375] * 2, [0.000972747802734375, 3.516580581665039]],
    )
    z, w = (np.asarray(a, dtype=np.float64) for a in (case.z[0], case.theta[1]))
    dot = sum(Fraction(a) * Fraction(b) for a, b in zip(z, w, strict=True))
    assert dot**2 < sum(Fraction(a) ** 2 for a in z) * sum(Fraction(b) ** 2 for b in w)

    def cosine(v):  # with complex v: the complex step, exact to rounding in float64
        return np.sum(v * w) / (np.sqrt(np.sum(v * v)) * np.linalg.norm(w))

    step = 1e-30
    true_slope = cosine(z + np.array([0.0, 1j * step])).imag / step
    assert true_slope > 5e-8  # what a hand-written 0 is held against
    rounded = np.float32(case.z[0] @ case.theta[1]) / (
        np.linalg.norm(case.z[0]) * np.linalg.norm(case.theta[1])
    )
    assert rounded >= 1.0  # float32 puts the cosine on the kink's flat side
    result = check(case, kinks="subgradient")
    assert result.verdict is Verdict.PASS, result.message


def test_the_slack_at_a_kink_comes_from_the_true_slope_not_the_rule_under_test():
    from dataclasses import replace

    from gradcheck import ACTIVATIONS

    # cos(z, θ) = 1 - 3.3e-9, which float32 rounds to 1 - 6e-8: on the kink's inside but
    # within its rounding of the kink at 1, where this rule's slope 3 is wrong (the true slope is 1). The slack
    # a kink adds is the true slope's jump, 1; the rule's own jump, 3, would cover its
    # error (with it, this test fails).
    wrong = replace(
        ACTIVATIONS["hard_tanh"],
        dphi=lambda x, y: np.where((x > -1.0) & (x < 1.0), 3.0 + 0 * x, 0.0 * x),
    )
    z, theta = [5 * 2.0**-12, 3.0], [[4 * 2.0**-12, 2.0]]
    z32, w32 = np.float32(z), np.float32(theta[0])
    assert 1.0 - 1e-7 < (z32 @ w32) / (np.linalg.norm(z32) * np.linalg.norm(w32)) < 1.0
    assert check(cosine_case("hard_tanh", z, theta), kinks="subgradient").verdict is Verdict.PASS
    result = check(cosine_case(wrong, z, theta), kinks="subgradient")
    assert result.verdict is Verdict.MISMATCH, result.message
