"""The generators: what they draw, how they shrink, and how they persist failures."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis.database import InMemoryExampleDatabase
from hypothesis.errors import InvalidArgument

from gradcheck import ACTIVATIONS, LAYER_TYPES, Verdict, check
from gradcheck import strategies as gst
from gradcheck.catalogue.reproduce import reproduction
from gradcheck.core import compact
from gradcheck.errors import GradientMismatch

SHRINK = settings(
    database=None, max_examples=300, deadline=None, suppress_health_check=list(HealthCheck)
)


def fails(case) -> bool:
    return check(case).verdict is Verdict.MISMATCH


def assert_smallest(case, layer: str, activation: str) -> None:
    assert case.layer_type.name.startswith(layer)
    assert case.activation.name == activation
    assert np.asarray(case.z).shape == (1, 1) and np.asarray(case.delta).shape == (1, 1)
    assert np.asarray(case.z).dtype == np.float64


def test_a_bug_everywhere_shrinks_to_dense_identity_and_ones():
    flipped = [
        replace(layer, parameter_gradient=lambda d, b: -compact.compact_gradient(d, b))
        for layer in LAYER_TYPES.values()
        if not layer.coupled
    ]
    case = find(gst.cases(layer_types=flipped), fails, settings=SHRINK)
    assert_smallest(case, "dense", "identity")
    for values in (case.z, case.theta, case.delta):
        assert np.all(np.asarray(values) == 1.0)


def test_a_wrong_tanh_derivative_shrinks_to_a_dense_tanh_unit_of_ones():
    wrong = replace(ACTIVATIONS["tanh"], dphi=lambda x, y: 1.0 + y * y)
    choices = [ACTIVATIONS["identity"], wrong, ACTIVATIONS["sigmoid"], ACTIVATIONS["relu"]]
    case = find(gst.cases(activations=choices), fails, settings=SHRINK)
    assert_smallest(case, "dense", "tanh")
    assert np.all(np.asarray(case.theta) == 1.0)


def test_a_dropped_leaky_slope_shrinks_to_one_unit_below_its_kink():
    dropped = replace(
        ACTIVATIONS["leaky_relu"], dphi=lambda x, y, a: np.where(x > 0, 1.0 + 0 * x, 0.0 * x)
    )
    case = find(gst.cases(activations=[ACTIVATIONS["identity"], dropped]), fails, settings=SHRINK)
    assert_smallest(case, "dense", "leaky_relu")
    (pre_activation,) = (
        np.asarray(case.theta)[0, 0] * np.asarray(case.z)[0, 0] + np.asarray(case.theta)[0, 1],
    )
    assert pre_activation < 0  # the bug only shows on the negative side


KINKED = ["relu", "abs", "leaky_relu", "hard_tanh", "relu6", "hard_sigmoid", "elu", "selu"]


@settings(max_examples=150, deadline=None)
@given(gst.cases(activations=KINKED, max_inputs=5, max_units=5, max_batch=5))
def test_kinks_are_avoided_by_construction(case):
    assert check(case).verdict is Verdict.PASS


@settings(max_examples=60, deadline=None)
@given(gst.cases(coupled=True))
def test_coupled_controls_are_drawn_on_request(case):
    assert check(case).verdict is Verdict.COUPLED


@settings(max_examples=100, deadline=None)
@given(gst.cases(activations=KINKED, kinks="allow", max_inputs=2, max_units=2, max_batch=2))
def test_subgradient_mode_accepts_correct_layers_at_their_kinks(case):
    assert check(case, kinks="subgradient").verdict is Verdict.PASS


def test_the_draws_expose_bugs():
    seen = []

    @settings(max_examples=300, deadline=None, database=None)
    @given(gst.cases(activations=["leaky_relu"], layer_types=["dense"]))
    def collect(case):
        seen.append(case)

    collect()
    delta = [np.asarray(c.delta) for c in seen]
    theta = [np.asarray(c.theta) for c in seen]
    batch = np.array([np.asarray(c.z).shape[0] for c in seen])
    slopes = np.array([c.activation.parameter for c in seen])
    assert np.mean([d.size > 1 and np.unique(d).size > 1 for d in delta]) > 0.5  # δ is random
    assert np.mean(batch > 1) > 0.5  # bias-gradient bugs need N > 1
    inputs = [np.asarray(c.z).shape[1] for c in seen]
    square = [t.shape[0] in (t.shape[1], i) for t, i in zip(theta, inputs, strict=True)]
    assert np.mean(square) < 0.1  # square W or θ hides transposition bugs
    assert (slopes < 0).any() and (slopes > 0).any()  # leaky slopes of both signs
    assert np.mean([np.any(np.abs(t) != 1.0) for t in theta]) > 0.5  # scales away from 1
    assert all(
        np.isfinite(d).all() and np.isfinite(t).all() for d, t in zip(delta, theta, strict=True)
    )


def test_the_draws_cover_the_default_domain():
    # Issue 16: z and θ spread over every order of magnitude of (-64, 64), reach its
    # edges and hold near-ties, while about half of all arrays stay in the small table's
    # range (|v| <= 8 · 4) where shrinking ends.
    seen = []

    @settings(max_examples=400, deadline=None, database=None)
    @given(gst.cases(layer_types=["dense"], activations=["identity"], max_inputs=3))
    def collect(case):
        seen.append(case)

    collect()
    for name in ("z", "theta"):
        arrays = [np.abs(np.asarray(getattr(c, name), dtype=np.float64)) for c in seen]
        magnitudes = np.concatenate([a.ravel() for a in arrays])
        assert np.isfinite(magnitudes).all() and magnitudes.max() < 64.0
        assert 0.3 < np.mean([a.max() <= 32.0 for a in arrays]) < 0.9, name
        assert np.mean(magnitudes < 2.0**-7) > 0.01, name  # below the table's smallest
        assert np.mean(magnitudes > 48.0) > 0.02, name  # above its largest
        assert (magnitudes >= 63.0).any(), name  # at the domain's edge

        def near_tie(a):
            row = np.sort(a.ravel())
            gaps = np.diff(row)
            return bool(np.any((gaps > 0) & (gaps <= 1e-4 * row[1:])))

        assert any(near_tie(a) for a in arrays), name


def test_every_example_of_a_checking_test_is_a_fresh_case():
    # assert_gradients_correct once target()ed the error/bound ratio, and hypothesis's
    # target phase then re-ran one case (moving only the blob's last bytes) for the second
    # half of the budget: 50 distinct cases in 100.
    seen = []

    @settings(max_examples=100, deadline=None, database=None)
    @given(gst.cases())
    def checking(case):
        seen.append(case.z.tobytes() + case.theta.tobytes() + case.delta.tobytes())
        gst.assert_gradients_correct(case)

    checking()
    assert len(seen) == 100 and len(set(seen)) >= 95


def test_stacks_share_a_shape_and_shrink_to_the_failing_case():
    flipped = replace(
        LAYER_TYPES["dense"], parameter_gradient=lambda d, b: -compact.compact_gradient(d, b)
    )

    def any_fails(stack):
        shapes = {(np.shape(c.z), np.shape(c.theta), c.activation) for c in stack}
        assert len(shapes) == 1
        return any(fails(c) for c in stack)

    stack = find(gst.case_stacks(layer_types=[flipped], min_size=1), any_fails, settings=SHRINK)
    assert len(stack) == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"min_inputs": 3, "max_inputs": 2}, "max_inputs=2 must be at least min_inputs=3"),
        ({"min_batch": 0}, "min_batch=0 must be at least 1"),
        ({"max_units": 2.5}, "max_units=2.5 must be an integer"),
        ({"layer_types": ["dens"]}, "unknown layer type 'dens'"),
        ({"activations": "tanh"}, "must be a sequence of names"),
        ({"activations": []}, "must not be empty"),
        ({"dtypes": ("float16",)}, "dtype 'float16' is not supported"),
        ({"kinks": "ignore"}, "kinks must be one of"),
        ({"layer_types": ["elementwise"], "min_inputs": 3, "max_units": 2}, "no layer type fits"),
    ],
)
def test_bad_arguments_raise_invalid_argument(arguments, message):
    with pytest.raises(InvalidArgument, match=message):
        gst.cases(**arguments)


def test_catalogue_strategies_start_simple():
    assert find(gst.activations(), lambda a: True).name == "identity"
    assert find(gst.layer_types(), lambda layer: True).name == "dense"
    assert find(gst.dtypes(), lambda d: True) == np.float64
    assert all(
        not layer.coupled
        for layer in [find(gst.layer_types(), lambda layer: layer.coupled is False)]
    )
    assert find(gst.layer_types(coupled=True), lambda layer: True).coupled
    assert not find(gst.activations(smooth=True), lambda a: a.name != "identity").kinks
    with pytest.raises(InvalidArgument):
        gst.layer_types(coupled="yes")


def test_a_failure_is_saved_and_replayed_first():
    database = InMemoryExampleDatabase()
    flipped = replace(
        LAYER_TYPES["dense"], parameter_gradient=lambda d, b: -compact.compact_gradient(d, b)
    )
    calls = []

    @settings(database=database, max_examples=50, deadline=None, derandomize=False)
    @given(gst.cases(layer_types=[flipped], activations=["tanh"]))
    def prop(case):
        calls.append(case)
        gst.assert_gradients_correct(case)

    with pytest.raises(GradientMismatch):
        prop()
    assert list(database.data)  # the shrunk counterexample was stored
    calls.clear()
    with pytest.raises(GradientMismatch):
        prop()
    assert fails(calls[0])  # ... and replayed first (then once more, to report it)
    assert len(calls) <= 2


def test_a_failure_says_how_to_reproduce_it():
    flipped = replace(
        LAYER_TYPES["dense"], parameter_gradient=lambda d, b: -compact.compact_gradient(d, b)
    )
    case = find(gst.cases(layer_types=[flipped]), fails, settings=SHRINK)
    with pytest.raises(GradientMismatch, match="reproduce with") as raised:
        gst.assert_gradients_correct(case)
    assert raised.value.result.verdict is Verdict.MISMATCH
    assert "gradcheck.Case(" in raised.value.reproduction


@settings(max_examples=40, deadline=None)
@given(gst.cases(activations=["leaky_relu", "tanh", "elu"], dtypes=("float32", "float64")))
def test_reproduction_rebuilds_the_case_bit_for_bit(case):
    namespace: dict = {}
    exec(reproduction(case).replace("print(gradcheck.check(case).message)", ""), namespace)
    rebuilt = namespace["case"]
    for name in ("z", "theta", "delta"):
        original, copy = np.asarray(getattr(case, name)), getattr(rebuilt, name)
        assert copy.dtype == original.dtype and np.array_equal(copy, original)
    assert check(rebuilt).verdict == check(case).verdict


def test_profiles_are_registered_not_loaded():
    before = settings.default
    import gradcheck.profiles

    gradcheck.profiles.register()
    assert (
        settings.get_profile("gradcheck-ci").max_examples
        < settings.get_profile("gradcheck-thorough").max_examples
    )
    assert settings.default is before


def test_importing_gradcheck_is_cheap():
    code = "import sys, gradcheck; print(sorted(m for m in ('numpy', 'autograd', 'hypothesis', 'scipy') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
