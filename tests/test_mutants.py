"""Planted gradient bugs come out mismatch against every oracle that can see them."""

from __future__ import annotations

import numpy as np
import pytest
from mutants import MUTANTS

from gradcheck import Verdict, check

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
