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


@pytest.mark.parametrize("autograd", [None, False])
def test_huge_layers_take_fewer_probes_only_where_autograd_confirms(monkeypatch, autograd):
    """A layer above LARGE_LAYER entries (all its arguments) takes LARGE_PROBES probes per
    argument when autograd compares every entry, PROBES when it does not."""
    import gradcheck
    from gradcheck.user import finite
    from gradcheck.user.differences import LARGE_LAYER, PROBES

    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(2, 100)), rng.normal(size=(100, LARGE_LAYER // 100 + 1))
    dout = rng.normal(size=(2, w.shape[1]))

    def forward(x, w):
        return np.tanh(x @ w)

    def backward(dout, x, w):
        d = dout * (1.0 - np.tanh(x @ w) ** 2)
        return d @ w.T, x.T @ d

    seen: list[int] = []
    original = finite.differences

    def spy(*args, **kwargs):
        found = original(*args, **kwargs)
        seen.append(len(found.directions))
        return found

    monkeypatch.setattr(finite, "differences", spy)
    gradcheck.check_backward(
        forward, backward, signature="(n,i),(i,j)->(n,j)", example=((x, w), dout),
        autograd=autograd,
    )  # fmt: skip
    expected = probes.LARGE_PROBES if autograd is None else PROBES
    assert seen == [expected, expected]


def test_one_weight_a_thousandth_off_in_a_large_layer_is_caught():
    """Above LARGE_ARGUMENT entries the probes only confirm: autograd must still catch a
    single entry of W 0.1 % off (a pattern six probes could miss)."""
    import gradcheck

    rng = np.random.default_rng(5)
    x, w = rng.normal(size=(2, 300)), rng.normal(size=(300, 300)) / 20.0
    dout = rng.normal(size=(2, 300))

    def forward(x, w):
        return np.tanh(x @ w)

    def backward(dout, x, w):
        d = dout * (1.0 - np.tanh(x @ w) ** 2)
        dw = x.T @ d
        dw[17, 42] *= 1.001
        return d @ w.T, dw

    with pytest.raises(gradcheck.GradientMismatch, match="gradient of w"):
        gradcheck.check_backward(
            forward, backward, signature="(n,i),(i,j)->(n,j)", example=((x, w), dout)
        )


# ---- structure of parameters too large for their Jacobian ---------------------------------


def _halves(forward, w, axes=(1,)):
    from gradcheck.user.oracles import structure_by_halves

    x = np.random.default_rng(6).normal(size=(3, w.shape[0]))

    def moved(variant: np.ndarray) -> np.ndarray:
        return np.asarray(forward(x, variant), dtype=np.float64)

    return structure_by_halves(moved, w, moved(w), axes)


def test_halves_find_a_partitioned_parameter():
    w = np.random.default_rng(7).normal(size=(40, 30))
    assert _halves(lambda x, w: np.tanh(x @ w), w) == ("partitioned", 1)


@pytest.mark.parametrize(
    "forward",
    [
        lambda x, w: (x @ w) - (x @ w).mean(axis=1, keepdims=True),  # every unit reads all
        lambda x, w: x @ w + np.roll(x @ w, 1, axis=1) * 1e-3,  # unit j also reads slice j-1
    ],
    ids=["centred", "neighbour"],
)
def test_halves_find_shared_parameters(forward):
    w = np.random.default_rng(8).normal(size=(40, 30))
    assert _halves(forward, w) == ("shared", None)


def test_halves_find_an_unused_parameter_and_one_unit():
    w = np.random.default_rng(9).normal(size=(40, 30))
    assert _halves(lambda x, w: x[:, :30] * 2.0, w) == ("unused", None)
    assert _halves(lambda x, w: np.tanh(x @ w[:, :1]), w) == ("undetermined", None)
