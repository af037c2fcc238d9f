"""The references are right within their own error bounds, and those bounds are tight."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import LAYER_TYPES
from gradcheck.catalogue.activations import ACTIVATIONS
from gradcheck.core import oracles
from gradcheck.core.probes import projections
from gradcheck.core.tolerance import track


def sine_forward(z, theta):
    """f_nj = sin(θ_j0 z_n0 + θ_j1): ∂E/∂θ has a closed form."""
    import autograd.numpy as anp

    return anp.sin(theta[..., None, :, 0] * z[..., :, :1] + theta[..., None, :, 1])


def sine_gradient(z, theta, delta):
    a = theta[..., None, :, 0] * z[..., :, :1] + theta[..., None, :, 1]
    weighted = delta * np.cos(a)
    return np.stack([(weighted * z[..., :, :1]).sum(-2), weighted.sum(-2)], axis=-1)


@pytest.fixture
def sine_case():
    """Two stacked cases: the oracles work on a leading case axis."""
    rng = np.random.default_rng(5)
    z = rng.normal(size=(2, 4, 1)) * 2
    theta = rng.normal(size=(2, 3, 2)) * 2
    delta = rng.normal(size=(2, 4, 3))
    forward_error = np.asarray(sine_forward(track(z), track(theta)).error)
    return z, theta, delta, forward_error


@pytest.mark.parametrize("layout", ["full", "columns"])
def test_finite_differences_are_within_their_bound_and_the_bound_is_tight(sine_case, layout):
    z, theta, delta, forward_error = sine_case
    reference = oracles.parameter_differences(
        sine_forward, z, theta, delta, forward_error, layout=layout
    )
    exact = sine_gradient(z, theta, delta)
    assert np.all(np.abs(reference.value - exact) <= reference.error)
    assert np.all(reference.error <= 1e-7 * np.abs(exact).max())


def test_probes_are_within_their_bound(sine_case):
    z, theta, delta, forward_error = sine_case
    reference, directions = oracles.probe_differences(
        sine_forward, z, theta, delta, forward_error, probes=8
    )
    assert reference.value.shape == (2, 8) and directions.shape == (8, 2, 3, 2)
    # The exact gradient projected as a hand-written one with no error of its own: the
    # projection's bound still charges the steps actually taken.
    exact, taken = projections(directions, sine_gradient(z, theta, delta), 0.0, theta, cases=1)
    assert np.allclose(exact, np.einsum("qkjp,kjp->kq", directions, sine_gradient(z, theta, delta)))
    assert np.all(np.abs(reference.value - exact) <= reference.error + taken)


def test_input_differences_match_autograd(sine_case):
    z, theta, delta, forward_error = sine_case
    _, d_z, _ = oracles.autograd_gradients(sine_forward, z, theta, delta)
    for layout in ("full", "columns"):
        reference = oracles.input_differences(
            sine_forward, z, theta, delta, forward_error, layout=layout
        )
        assert np.all(np.abs(reference.value - d_z.value) <= reference.error + d_z.error)


def test_autograd_reference_is_exact_within_its_bound(sine_case):
    z, theta, delta, _ = sine_case
    d_theta, _, _ = oracles.autograd_gradients(sine_forward, z, theta, delta)
    assert np.all(np.abs(d_theta.value - sine_gradient(z, theta, delta)) <= 2 * d_theta.error)
    assert np.all(d_theta.error < 1e-13)


def test_the_autograd_bound_covers_its_own_cancellation():
    # autograd differentiates expm1 with e^x computed as 1 + expm1(x): at x = -9 that loses
    # 4 digits. The hand-written exp(x) is accurate; the bound must charge autograd, not it.
    elu = ACTIVATIONS["elu"]
    x = np.array([-9.0, -20.0])
    reference = oracles.elementwise_derivative(elu, x)
    assert np.all(np.abs(reference.value - np.exp(x)) <= reference.error)
    assert np.all(reference.error > 1e-17)


def test_unit_contributions_add_up_to_the_gradient():
    layer = LAYER_TYPES["softmax_dense"]
    phi = ACTIVATIONS["identity"]
    rng = np.random.default_rng(2)
    z, theta, delta = (
        rng.normal(size=(2, 3, 2)),
        rng.normal(size=(2, 4, 3)),
        rng.normal(size=(2, 3, 4)),
    )

    def forward(inputs, parameters):
        return layer.forward(inputs, parameters, phi)

    d_theta, _, contributions = oracles.autograd_gradients(forward, z, theta, delta)
    assert contributions.value.shape == (2, 4, 4, 3)  # cases, output units, units, parameters
    np.testing.assert_allclose(
        contributions.value.sum(axis=1), d_theta.value, rtol=1e-12, atol=1e-15
    )
    mass = oracles.off_diagonal_mass(contributions.value)
    assert mass.shape == (2,) and np.all((mass > 0.2) & (mass < 1.0))
    sample = np.array([0, 2])
    sampled_gradient, _, sampled = oracles.autograd_gradients(
        forward, z, theta, delta, units=sample
    )
    np.testing.assert_allclose(sampled.value, contributions.value[:, sample], rtol=1e-12)
    np.testing.assert_allclose(sampled_gradient.value, d_theta.value, rtol=1e-12, atol=1e-15)


def test_step_follows_float64_epsilon_and_scale():
    steps = oracles.step_sizes(np.array([0.0, 1.0, -1000.0]))
    h = np.cbrt(np.finfo(np.float64).eps / 2)
    np.testing.assert_allclose(steps, [h, h, 1000 * h])
