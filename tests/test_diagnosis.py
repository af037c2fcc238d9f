"""Each diagnosis class is recognised from its pattern, and the order decides ties."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck.diagnosis.classes import (
    CLASSES,
    PRECISION_FACTOR,
    ArgumentEvidence,
    Evidence,
    JacobianEvidence,
    diagnose,
)

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
    found = diagnose(
        evidence(argument(blocks), inputs(), diagonal_blocks=blocks, off_diagonal_mass=0.4)
    )
    assert found.kind == "coupling-ignored" and "40.0%" in found.summary
    # Without cross-unit mass the same numbers are something else.
    assert (
        kind(argument(blocks), inputs(), diagonal_blocks=blocks, off_diagonal_mass=0.0)
        != "coupling-ignored"
    )


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
