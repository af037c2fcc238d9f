"""The probe machinery both engines share (gradcheck.core.probes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradcheck.core import probes
from gradcheck.core.differences import U64, step_sizes
from gradcheck.core.tolerance import gamma


def test_directions_are_signed_steps():
    x = np.array([[0.0, 3.0], [-1e6, 1e-9]])
    directions = probes.signed_steps(np.random.default_rng(4), 64, x)
    assert directions.shape == (64, 2, 2)
    assert np.array_equal(np.abs(directions), np.broadcast_to(step_sizes(x), directions.shape))
    # both signs occur for every entry (64 draws: a missing sign has probability 2^-63)
    assert np.all((directions > 0).any(axis=0)) and np.all((directions < 0).any(axis=0))


def test_projection_bound_is_the_documented_sum():
    """The bound against the docstring's formula summed term by term with math.fsum."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4)) * 10.0 ** rng.integers(-3, 6, size=(3, 4))
    g = rng.normal(size=(3, 4))
    e = np.abs(rng.normal(size=(3, 4))) * 1e-12
    directions = probes.signed_steps(rng, 5, x)
    projected, bound = probes.projections(directions, g, e, x)
    h = step_sizes(x).ravel()
    terms = list(zip(g.ravel(), e.ravel(), np.abs(x).ravel(), h, strict=True))
    expected = (
        math.fsum(hk * ek for gk, ek, _, hk in terms)
        + gamma(g.size + 1, np.float64) * math.fsum(hk * abs(gk) for gk, _, _, hk in terms)
        + 2.0 * U64 * math.fsum((abs(gk) + ek) * (xk + 4.0 * hk) for gk, ek, xk, hk in terms)
    )
    assert np.allclose(bound, expected, rtol=1e-12, atol=0.0)
    for q, w in enumerate(directions):
        assert projected[q] == pytest.approx(math.fsum(w.ravel() * g.ravel()), rel=1e-12)


def test_projection_bound_covers_the_steps_taken():
    """x ± w is rounded: the exact ⟨g, steps taken⟩ / (nominal step) differs from ⟨g, w⟩,
    at large |x| by more than the dot product's own rounding. The bound must cover it."""
    rng = np.random.default_rng(1)
    x = rng.uniform(1e5, 1e6, size=8) * rng.choice([-1.0, 1.0], size=8)
    g = rng.normal(size=8)
    directions = probes.signed_steps(rng, 64, x)
    projected, bound = probes.projections(directions, g, 0.0, x)
    own_rounding = gamma(g.size + 1, np.float64) * (np.abs(directions[0]) @ np.abs(g))
    worst = 0.0
    for q, w in enumerate(directions):
        for c in (1.0, 2.0, 4.0):
            taken = ((x + c * w) - (x - c * w)) / (2.0 * c)  # per entry, exact in float64
            moved = math.fsum(g * taken)
            assert abs(moved - projected[q]) <= bound[q]
            worst = max(worst, abs(moved - projected[q]))
    assert worst > 4.0 * own_rounding  # the case needs the steps-taken term


def test_projections_of_stacked_cases_and_in_chunks(monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 5, 2))
    g = rng.normal(size=(3, 5, 2))
    directions = probes.signed_steps(rng, 4, x)
    stacked, stacked_bound = probes.projections(directions, g, 1e-9, x, cases=1)
    assert stacked.shape == stacked_bound.shape == (3, 4)
    for k in range(3):
        alone, alone_bound = probes.projections(directions[:, k], g[k], 1e-9, x[k])
        assert np.allclose(stacked[k], alone) and np.allclose(stacked_bound[k], alone_bound)
    monkeypatch.setattr(probes, "CHUNK", 3)
    chunked, chunked_bound = probes.projections(directions, g, 1e-9, x, cases=1)
    assert np.allclose(chunked, stacked) and np.allclose(chunked_bound, stacked_bound)
