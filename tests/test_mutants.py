"""Planted gradient bugs come out mismatch against every oracle that can see them."""

from __future__ import annotations

import numpy as np
import pytest
from mutants import MUTANTS

from gradcheck import Case, Verdict, check
from gradcheck.catalogue.activations import ACTIVATIONS, resolve_activation
from gradcheck.catalogue.checker import check_many
from gradcheck.catalogue.hand_written import hand_written_side
from gradcheck.catalogue.layers import LAYER_TYPES, identity_if_unused, resolve_layer_type

CASES = [(m, oracle) for m in MUTANTS for oracle in m.caught_by]


def test_there_are_at_least_twelve_mutants():
    assert len(MUTANTS) >= 12
    assert len({m.name for m in MUTANTS}) == len(MUTANTS)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("mutant", "oracle"), CASES, ids=[f"{m.name} / {o}" for m, o in CASES])
def test_mutant_is_caught(mutant, oracle, dtype):
    result = check(mutant.case(dtype), oracles=(oracle,))
    assert result.verdict is Verdict.MISMATCH, result.message
    failing = {(c.oracle, c.target) for c in result.failures()}
    assert (oracle, mutant.target) in failing


@pytest.mark.parametrize(
    "mutant",
    [m for m in MUTANTS if "dense" not in m.caught_by and m.target == "parameters"],
    ids=lambda m: m.name,
)
def test_block_diagonal_product_agrees_with_a_mutated_B(mutant):
    # The block-diagonal product multiplies the same B: it still agrees with the compaction.
    result = check(mutant.case(np.float64), oracles=("dense",))
    block = [c for c in result.comparisons if c.method in ("explicit", "block by block")]
    assert len(block) == 1 and block[0].passed, result.message


def test_a_B_that_contradicts_its_rank_one_factors_is_caught_by_the_dense_oracle():
    # dense declares B_n = u_n v_nᵀ; a B edited without its factors breaks the outer product.
    (mutant,) = [m for m in MUTANTS if m.name == "B sign flipped"]
    result = check(mutant.case(np.float64), oracles=("dense",))
    assert result.verdict is Verdict.MISMATCH and result.rank_one == "fails"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_is_diagnosed_as_planted(mutant, dtype):
    result = check(mutant.case(dtype))
    assert result.verdict is Verdict.MISMATCH
    assert result.diagnosis is not None and result.diagnosis.kind == mutant.diagnosis, (
        result.diagnosis
    )
    assert mutant.diagnosis in result.message or mutant.diagnosis == "unknown"


@pytest.mark.parametrize(("mutant", "oracle"), CASES, ids=[f"{m.name} / {o}" for m, o in CASES])
def test_the_diagnosis_holds_whichever_oracle_caught_it(mutant, oracle):
    result = check(mutant.case(np.float64), oracles=(oracle,))
    assert result.diagnosis is not None and result.diagnosis.kind == mutant.diagnosis, (
        result.diagnosis
    )


def test_every_diagnosis_class_but_three_is_planted():
    from gradcheck.diagnosis.classes import CLASSES

    # coupling-ignored needs a layer whose backward claims the whole gradient (a user
    # layer; see test_diagnosis.py), and precision a rounding the model did not foresee.
    planted = {m.diagnosis for m in MUTANTS}
    assert planted == set(CLASSES) - {"coupling-ignored", "precision"}


# ---- every scale (issue 14) ---------------------------------------------------------------


def _twin(case):
    """The mutant's layer and activation, and the catalogue's own (the correct twin)."""
    layer = resolve_layer_type(case.layer_type)
    phi = identity_if_unused(layer, resolve_activation(case.activation))
    right = ACTIVATIONS[phi.name]
    if phi.parameter is not None:
        right = right.with_parameter(phi.parameter)
    return layer, phi, LAYER_TYPES[layer.name.removesuffix(" (mutant)")], right


def _observable(case, target):
    """Whether the planted bug shows in the case's dtype: the mutant's gradient and its
    correct twin's differ by more than both their running bounds plus 16 ulps of float64
    (the references' own resolution); at some scales a bug vanishes (φ' = 1 - 1e-16 at
    a = 1e-8 with tanh, everything underflowing in float32)."""
    layer, phi, twin_layer, twin_phi = _twin(case)
    arrays = [np.asarray(a) for a in (case.z, case.theta, case.delta)]
    with np.errstate(all="ignore"):
        mutant, _ = hand_written_side(layer, phi, *arrays)
        right, _ = hand_written_side(twin_layer, twin_phi, *arrays)
    pick = "gradient" if target == "parameters" else "inputs_gradient"
    got, want = getattr(mutant, pick), getattr(right, pick)
    value, reference = np.asarray(got.value, np.float64), np.asarray(want.value, np.float64)
    resolution = 16 * np.finfo(np.float64).eps * np.abs(reference)
    with np.errstate(all="ignore"):
        gap = (
            np.abs(value - reference) > np.asarray(got.error) + np.asarray(want.error) + resolution
        )
    return bool(np.any(gap | (np.isfinite(reference) & ~np.isfinite(value))))


def _scaled(case, dtype, exponents):
    for k in exponents:
        for which in ("theta", "z", "delta", "all"):
            arrays = {n: np.asarray(getattr(case, n), np.float64) for n in ("z", "theta", "delta")}
            for name in arrays:
                if which in (name, "all"):
                    arrays[name] = arrays[name] * 10.0**k
            with np.errstate(over="ignore", under="ignore"):
                typed = {n: a.astype(dtype) for n, a in arrays.items()}
            yield (k, which), Case(layer_type=case.layer_type, activation=case.activation, **typed)


def _missed_at_scales(mutant, dtype, exponents):
    """The scalings at which the bug shows but the check does not call it a mismatch (a
    verdict naming another cause, invalid input or non-differentiable, is not a miss)."""
    scaled = list(_scaled(mutant.case(dtype), dtype, exponents))
    results = check_many([case for _, case in scaled])
    return [
        (tag, str(result.verdict), result.message[:160])
        for (tag, case), result in zip(scaled, results, strict=True)
        if result.verdict
        not in (Verdict.MISMATCH, Verdict.INVALID_INPUT, Verdict.NON_DIFFERENTIABLE)
        and _observable(case, mutant.target)
    ]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_is_caught_at_every_scale_where_it_shows(mutant, dtype):
    """θ, z, δ (and all three) scaled by 10^k at a few k; the slow test takes every k."""
    exponents = (-12, -6, 0, 6, 12) if dtype == np.float64 else (-6, -3, 0, 3, 6)
    assert not _missed_at_scales(mutant, dtype, exponents)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_is_caught_at_every_magnitude(mutant, dtype):
    exponents = range(-12, 13) if dtype == np.float64 else range(-6, 7)
    assert not _missed_at_scales(mutant, dtype, exponents)
