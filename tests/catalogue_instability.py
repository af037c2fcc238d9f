"""Numerical-instability bugs in catalogue rows (issue 16, the catalogue's side), each
beside the row it breaks, and how often a seeded search of `gradcheck.strategies.cases`
catches one.

Each bug is an activation row whose hand-written φ' is right on paper and overflows in
part of the row's domain: e^±x of a pre-activation beyond ±88.7 is inf in float32 (±709.8
in float64), and inf/inf is NaN. The small value table rarely takes a pre-activation
w·z + b that far; draws over (−64, 64) do. A row is what a contributor adding an
activation writes, so each is searched the way `tests/test_activations.py` would check a
new row: `cases(activations=[row])` over every unit-partitioned layer type and both
dtypes, through `assert_gradients_correct`.

`catch(row, seed)` runs one search with hypothesis's default 100 examples, seeded,
without an example database or shrinking (whether a search catches the bug is the
question, not how small the case gets), and says what happened: "mismatch:<diagnosis>"
or "pass".
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import autograd.numpy as anp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as seeded

from gradcheck import ACTIVATIONS, Activation, GradientMismatch
from gradcheck import strategies as gst

DEFAULT_EXAMPLES = 100


def _overflowing(x, rule):
    with anp.errstate(over="ignore", invalid="ignore"):
        return rule(x)


@dataclass(frozen=True)
class RowBug:
    """A wrong row and the catalogue's own (right) row it stands in for."""

    name: str
    wrong: Activation
    right: Activation
    caught_as: str = "mismatch:non-finite"


def _bug(name: str, row: str, dphi) -> RowBug:
    right = ACTIVATIONS[row]
    wrong = replace(right, name=f"{row}_unstable", dphi=lambda x, y: _overflowing(x, dphi))
    return RowBug(name, wrong, right)


CATALOGUE_BUGS = (
    # softplus' = e^x / (1 + e^x): inf/inf above x ≈ 88.7 (float32).
    _bug("softplus_exp_overflow", "softplus", lambda x: anp.exp(x) / (1.0 + anp.exp(x))),
    # silu' = (1 + e^-x + x e^-x) / (1 + e^-x)²: NaN below x ≈ -88.7 (float32).
    _bug(
        "silu_exp_overflow",
        "silu",
        lambda x: (1.0 + anp.exp(-x) + x * anp.exp(-x)) / (1.0 + anp.exp(-x)) ** 2,
    ),
    # log σ' = e^-x / (1 + e^-x): inf/inf below x ≈ -88.7 (float32).
    _bug("log_sigmoid_exp_overflow", "log_sigmoid", lambda x: anp.exp(-x) / (1.0 + anp.exp(-x))),
    # σ' = e^-x / (1 + e^-x)²: NaN below x ≈ -88.7 (float32), -709.8 (float64).
    _bug("sigmoid_exp_overflow", "sigmoid", lambda x: anp.exp(-x) / (1.0 + anp.exp(-x)) ** 2),
)
CATALOGUE_BY_NAME = {bug.name: bug for bug in CATALOGUE_BUGS}


def catch(row: Activation, seed: int, *, examples: int = DEFAULT_EXAMPLES) -> str:
    """One seeded search of `cases(activations=[row])` (see the module docstring)."""

    @seeded(seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],  # caught or not: no shrinking
    )
    @given(gst.cases(activations=[row]))
    def search(case) -> None:
        gst.assert_gradients_correct(case)

    try:
        search()
    except GradientMismatch as mismatch:
        return f"mismatch:{mismatch.diagnosis}"
    return "pass"
