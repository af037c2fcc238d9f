"""Search power of the catalogue's strategies (issue 16): activation rows whose
hand-written φ' overflows where the row's φ is finite, caught by a seeded search of
`gradcheck.strategies.cases` within hypothesis's default 100 examples on at least 19 of
20 seeds and diagnosed non-finite; the catalogue's own rows pass on every seed. Slow
(marker `slow`): 160 searches. `python benchmarks/search_power.py` measures the same
rows drawing from the small table only (before issue 16) and over the domain (after).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from catalogue_instability import CATALOGUE_BUGS, catch

import gradcheck

SEEDS = range(20)


def test_a_wrong_row_is_wrong_only_beyond_its_overflow():
    # The searches below can fail only through the overflow: each wrong row agrees with
    # the catalogue's row where e^±x is finite (up to rounding: φ' is O(1)), and is NaN where
    # it is not.
    moderate = np.linspace(-80.0, 80.0, 161)
    for bug in CATALOGUE_BUGS:
        np.testing.assert_allclose(
            bug.wrong.derivative(moderate), bug.right.derivative(moderate), rtol=1e-9, atol=1e-15
        )
        far = np.array([-90.0, 90.0], dtype=np.float32)
        assert not np.isfinite(bug.wrong.derivative(far)).all(), bug.name
        assert np.isfinite(bug.right.derivative(far)).all(), bug.name


def test_a_caught_row_is_diagnosed_non_finite_with_its_input():
    bug = CATALOGUE_BUGS[0]  # softplus' = e^x / (1 + e^x), NaN above 88.7 in float32
    case = gradcheck.Case(
        layer_type="dense",
        activation=bug.wrong,
        z=np.array([[60.0, 30.0]], dtype=np.float32),
        theta=np.array([[2.0, 1.0, 0.5]], dtype=np.float32),  # pre-activation 150.5
        delta=np.ones((1, 1), dtype=np.float32),
    )
    result = gradcheck.check(case)
    assert result.verdict is gradcheck.Verdict.MISMATCH
    assert result.diagnosis is not None and result.diagnosis.kind == "non-finite"
    assert "not finite where the reference is" in result.message


@pytest.mark.slow
@pytest.mark.parametrize("bug", CATALOGUE_BUGS, ids=lambda bug: bug.name)
def test_an_overflowing_row_is_caught_on_19_of_20_seeds(bug):
    outcomes = Counter(catch(bug.wrong, seed) for seed in SEEDS)
    assert outcomes[bug.caught_as] >= 19, outcomes
    twins = Counter(catch(bug.right, seed) for seed in SEEDS)
    assert twins == Counter({"pass": len(SEEDS)}), twins
