"""Whole networks: the recursion δ^(ℓ-1) = δ^ℓ · ∂f/∂z, A^ℓ = δ^ℓ ⊙ B^ℓ checked at every
layer, bugs blamed on the layer that has them, and the generator that shrinks networks.

The no-false-alarm tests check about 2600 generated networks: 4 × 60 stacks of 8 to 16
networks of one architecture (checked in one vectorised pass each) and 200 networks of
independently drawn architectures. GRADCHECK_NETWORK_EXAMPLES multiplies both counts
(say 10 for a long hunt); benchmarks/networks.py reports rates and margins.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import Counter
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from mutants import MUTANTS

from gradcheck import (
    ACTIVATIONS,
    LAYER_TYPES,
    LOSSES,
    GradcheckError,
    Network,
    NetworkLayer,
    Verdict,
    backpropagate,
    check_network,
    check_networks,
)
from gradcheck import strategies as gst
from gradcheck.catalogue import network_comparisons
from gradcheck.catalogue.network import InvalidNetworkError, StackedNetworks
from gradcheck.catalogue.network_comparisons import NetworkCheck
from gradcheck.core import compact
from gradcheck.core.oracles import reverse_mode, step_sizes
from gradcheck.core.probes import projections
from gradcheck.core.tolerance import recording, track
from gradcheck.errors import UnknownNameError
from gradcheck.strategies import network_cases

SCALE = int(os.environ.get("GRADCHECK_NETWORK_EXAMPLES", "1"))
STACKS, SINGLES = 60 * SCALE, 200 * SCALE
SHRINK = settings(
    database=None, max_examples=300, deadline=None, suppress_health_check=list(HealthCheck)
)
dense = LAYER_TYPES["dense"]


def random_network(
    layers: list[tuple[str, str | None, int]],
    *,
    inputs: int = 3,
    batch: int = 3,
    loss: str = "squared_error",
    dtype: type = np.float64,
    seed: int = 0,
) -> Network:
    """A network of (layer type, activation, units) rows with weights of scale ~1/√fan-in
    (so that nothing saturates) and random inputs and targets."""
    rng = np.random.default_rng(seed)
    width, built = inputs, []
    for name, activation, units in layers:
        layer = LAYER_TYPES[name]
        units = width if layer.square else units
        theta = rng.normal(size=(units, layer.parameters_per_unit(width))) / np.sqrt(width)
        for column in layer.positive_columns:
            theta[:, column] = np.abs(theta[:, column]) + 0.1
        built.append(NetworkLayer(name, activation, theta.astype(dtype)))
        width = units
    z = (rng.normal(size=(batch, inputs)) * 1.5).astype(dtype)
    return Network(
        layers=tuple(built), loss=loss, z=z, targets=targets_for(loss, batch, width, rng, dtype)
    )


def targets_for(loss: str, batch: int, width: int, rng, dtype) -> np.ndarray:
    if loss == "softmax_cross_entropy":
        return rng.integers(0, width, size=batch)
    if loss == "logistic":
        return rng.integers(0, 2, size=(batch, width)).astype(dtype)
    return rng.normal(size=(batch, width)).astype(dtype)


MIXED = [("dense", "tanh", 4), ("gated", "softplus", 2), ("rbf", None, 3),
         ("elementwise", "sigmoid", 0), ("weightnorm", "gelu", 2)]  # fmt: skip


# ---- losses ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", list(LOSSES.values()), ids=lambda loss: loss.name)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_each_loss_hand_written_gradient_agrees_with_autograd(loss, dtype, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    batch, width = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    scale = data.draw(st.sampled_from([0.1, 1.0, 30.0, 300.0]), label="scale")
    f = (rng.normal(size=(batch, width)) * scale).astype(dtype)
    y = targets_for(loss.name, batch, width, rng, dtype)
    if loss.name == "softmax_cross_entropy":
        y = np.eye(width, dtype=dtype)[y]
    with recording():
        hand = loss.gradient(track(f), track(y))
        reference = reverse_mode(lambda f64: np.sum(loss.forward(f64, track(y.astype(np.float64)))),
                              track(f.astype(np.float64)))  # fmt: skip
    error = np.abs(hand.value.astype(np.float64) - reference.value)
    assert np.all(error <= hand.error + reference.error), (error, hand.error + reference.error)
    assert hand.value.dtype == dtype


def test_a_wrong_loss_rule_is_blamed_on_the_loss():
    doubled = replace(LOSSES["squared_error"], gradient=lambda f, y: 2.0 * (f - y))
    network = random_network(MIXED[:3], loss=doubled)
    result = check_network(network)
    assert result.verdict is Verdict.MISMATCH, result.message
    assert (result.blamed_layer, result.blamed_part) == (None, "loss rule")
    assert "the loss rule" in result.message
    assert all(not layer.wrong for layer in result.layers)  # every layer's own rules hold
    assert all(layer.status == "inherits a wrong δ" for layer in result.layers)


# ---- correct networks --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", list(LOSSES))
def test_a_correct_mixed_network_passes_with_every_comparison(loss, dtype):
    network = random_network(MIXED, loss=loss, dtype=dtype, batch=4)
    result = check_network(network)
    assert result.verdict is Verdict.PASS, result.message
    assert result.dtype == np.dtype(dtype).name and result.widths == (3, 4, 2, 3, 3, 2)
    assert len(result.loss_comparisons) == 1
    for layer in result.layers:
        kinds = {(c.oracle, c.target) for c in layer.comparisons}
        assert {("dense", "parameters"), ("autograd", "parameters"),
                ("finite-differences", "parameters"), ("autograd", "inputs")} <= kinds  # fmt: skip
        assert {c.target for c in layer.own} == {"parameters", "inputs"}  # δ^(ℓ-1) for every ℓ
        assert layer.status == "pass" and layer.wrong == ()
    first = {(c.oracle, c.target) for c in result.layers[0].comparisons}
    assert ("finite-differences", "inputs") in first  # δ⁰ by differences of the whole E


@pytest.mark.parametrize("depths", [(1, 3), (4, 6)], ids=["depth 1-3", "depth 4-6"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_correct_networks_raise_no_false_alarm(dtype, depths):
    verdicts, seen_depths = Counter(), Counter()

    @settings(max_examples=STACKS, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(gst.network_stacks(min_layers=depths[0], max_layers=depths[1], dtypes=(dtype,),
                              min_size=8, max_size=16))  # fmt: skip
    def run(stack):
        for network, result in zip(stack, check_networks(stack), strict=True):
            assert result.verdict is not Verdict.MISMATCH, f"{result.message}\n{network!r}"
            verdicts[result.verdict] += 1
            seen_depths[len(network.layers)] += 1
            assert result.dtype == dtype

    run()
    total = sum(verdicts.values())
    assert total >= 8 * STACKS
    assert verdicts[Verdict.PASS] >= 0.85 * total, verdicts  # most draws are real checks
    assert set(seen_depths) == set(range(depths[0], depths[1] + 1))


def test_correct_networks_of_any_architecture_raise_no_false_alarm():
    verdicts, shapes = Counter(), Counter()

    @settings(max_examples=SINGLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(gst.networks(max_layers=6))
    def run(network):
        result = check_network(network)
        assert result.verdict is not Verdict.MISMATCH, f"{result.message}\n{network!r}"
        verdicts[result.verdict] += 1
        shapes[(len(network.layers), result.dtype, result.loss)] += 1

    run()
    assert verdicts[Verdict.PASS] >= 0.85 * SINGLES, verdicts
    assert {depth for depth, _, _ in shapes} == set(range(1, 7))
    assert {dtype for _, dtype, _ in shapes} == {"float32", "float64"}
    assert {loss for _, _, loss in shapes} == set(LOSSES)


def test_networks_of_one_architecture_are_checked_in_one_pass_with_the_same_results():
    networks = [random_network(MIXED[:3], seed=seed) for seed in range(3)]
    other = random_network(MIXED[3:], seed=7)
    together = check_networks([networks[0], other, networks[1], networks[2]])
    alone = [check_network(network) for network in (networks[0], other, *networks[1:])]
    for stacked, single in zip(together, alone, strict=True):
        assert stacked.verdict is single.verdict is Verdict.PASS
        assert [(c.oracle, c.method, c.worst_error, c.worst_bound) for c in stacked.comparisons] \
            == [(c.oracle, c.method, c.worst_error, c.worst_bound) for c in single.comparisons]  # fmt: skip


def test_backpropagate_returns_the_recursion_in_the_dtype():
    network = random_network(MIXED, dtype=np.float32)
    result = backpropagate(network)
    assert len(result.outputs) == len(result.deltas) == len(network.layers) + 1
    assert [a.shape for a in result.gradients] == [
        np.shape(layer.theta) for layer in network.layers
    ]
    assert all(d.dtype == np.float32 for d in result.deltas)
    # The recursion by hand: δ^(ℓ-1) = δ^ℓ · ∂f/∂z and A^ℓ = δ^ℓ ⊙ B^ℓ at layer 1.
    layer, z = network.layers[0], result.outputs[0]
    jacobian = LAYER_TYPES[layer.layer_type].input_jacobian(z, layer.theta, _tanh())
    assert np.array_equal(result.deltas[0], compact.input_gradient(result.deltas[1], jacobian))


def _tanh():
    return ACTIVATIONS["tanh"]


def test_large_layers_get_probes_and_pass():
    network = random_network([("dense", "tanh", 9), ("dense", "sigmoid", 2)], inputs=8)
    result = check_network(network)
    assert result.verdict is Verdict.PASS, result.message
    methods = [c.method for c in result.layers[0].comparisons if c.oracle == "finite-differences"]
    assert "finite differences (16 probes)" in methods  # 9 × 9 = 81 entries: too many alone
    assert "finite differences (full)" in {
        c.method for c in result.layers[1].comparisons if c.oracle == "finite-differences"
    }


def test_a_coupled_layer_is_reported_coupled_with_formula_1_checked():
    network = random_network([("dense", "tanh", 3), ("dense", None, 2)])
    softmax = NetworkLayer("softmax_dense", None, network.layers[0].theta)
    result = check_network(replace(network, layers=(softmax, network.layers[1])))
    assert result.verdict is Verdict.COUPLED, result.message
    coupled = result.layers[0]
    assert coupled.status == "coupled"
    assert {c.target for c in coupled.own} == {"inputs"}  # its A is not its gradient
    assert all(c.passed for c in coupled.comparisons + coupled.own)


# ---- planted bugs ------------------------------------------------------------------------


def place(mutant, position: int, dtype, depth: int = 3) -> Network:
    """The mutant's layer (and its θ) at `position` of a `depth`-layer network."""
    case = mutant.case(dtype)
    z, theta = np.asarray(case.z), np.array(case.theta)
    layer_type = case.layer_type
    for column in layer_type.positive_columns:  # e.g. rbf widths γ > 0
        theta[:, column] = np.abs(theta[:, column])
    batch, inputs = z.shape
    units = theta.shape[0]
    rng = np.random.default_rng(position)
    width = inputs if position == 1 else 3
    z0 = (rng.normal(size=(batch, width)) * 1.5).astype(dtype)
    layers = []
    for index in range(1, depth + 1):
        if index == position:
            layers.append(NetworkLayer(layer_type, case.activation, theta))
            width = units
            continue
        out = inputs if index == position - 1 else (2 if index == depth else 3)
        weights = rng.normal(size=(out, width + 1)) / np.sqrt(width)
        layers.append(NetworkLayer("dense", "tanh", weights.astype(dtype)))
        width = out
    loss = list(LOSSES)[position % len(LOSSES)]
    return Network(layers=tuple(layers), loss=loss, z=z0,
                   targets=targets_for(loss, batch, width, rng, dtype))  # fmt: skip


PLACED = [(m, p) for m in MUTANTS if m.anywhere for p in (1, 2, 3)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("mutant", "position"), PLACED, ids=[f"{m.name} @ {p}" for m, p in PLACED])
def test_a_planted_bug_is_caught_and_blamed_on_its_layer(mutant, position, dtype):
    result = check_network(place(mutant, position, dtype))
    assert result.verdict is Verdict.MISMATCH, result.message
    assert result.blamed_layer == position, result.message
    culprit = result.layers[position - 1]
    assert culprit.status == "wrong"
    if mutant.target == "inputs":
        expected = "input Jacobian"
    else:
        expected = "compaction" if "dense" in mutant.caught_by else "unit Jacobian B"
    assert expected in culprit.wrong, culprit.wrong
    assert any(not c.passed and c.target == mutant.target for c in culprit.own)
    for layer in result.layers:
        if layer.index > position:
            assert layer.status == "pass", layer
        elif layer.index < position:
            assert layer.wrong == (), layer  # its own rules hold: it only inherits
            if mutant.target == "inputs":
                assert layer.status == "inherits a wrong δ"
    assert all(c.passed for c in result.loss_comparisons)


def test_a_subtle_bug_deep_in_a_float32_network_is_seen_through_the_recursion():
    # B scaled by 1.0001 at layer 1 of 6: the propagated δ¹ went through five layers of
    # float32 rounding, and its bound grew with them, but not so much as to hide 1e-4.
    (mutant,) = [m for m in MUTANTS if m.name == "B scaled by 1.0001 (a subtle bug)"]
    network = random_network([("dense", "tanh", 3)] * 6, dtype=np.float32, seed=3)
    bottom = network.layers[0]
    network = replace(network, layers=(replace(bottom, layer_type=mutant.case(np.float32).layer_type),
                                       *network.layers[1:]))  # fmt: skip
    result = check_network(network)
    assert result.blamed_layer == 1, result.message
    propagated = [c for c in result.layers[0].comparisons
                  if c.method == "reverse mode" and c.target == "parameters"]  # fmt: skip
    assert len(propagated) == 1 and not propagated[0].passed


def test_bounds_widen_with_depth():
    # δ^(ℓ-1) = δ^ℓ · ∂f/∂z inherits δ^ℓ's relative error and adds its own roundings, so
    # the smallest relative bound over the entries of δ^ℓ grows at every layer down.
    network = random_network([("dense", "tanh", 3), ("gated", "sigmoid", 2)] * 3,
                             dtype=np.float32, seed=5)  # fmt: skip
    with recording():
        hand = StackedNetworks.of(network).hand_written()
    relative = [float(np.min(d.error / np.abs(d.value.astype(np.float64)))) for d in hand.deltas]
    assert all(below > above for below, above in itertools.pairwise(relative)), relative
    assert check_network(network).verdict is Verdict.PASS  # and the errors stay inside


# ---- shrinking -----------------------------------------------------------------------------


def fails(network) -> bool:
    return check_network(network).verdict is Verdict.MISMATCH


def assert_shrunk(network, layer_name: str, widths: tuple[int, ...], batch: int) -> None:
    assert len(network.layers) == len(widths) - 1
    assert network.layers[0].layer_type.name == layer_name
    assert network.layers[0].activation.name == "identity"
    shape = [np.shape(network.z)[1]] + [np.shape(layer.theta)[0] for layer in network.layers]
    assert tuple(shape) == widths
    assert np.shape(network.z)[0] == batch
    assert np.asarray(network.z).dtype == np.float64
    assert getattr(network.loss, "name", network.loss) == "squared_error"


def mutant_layer(name: str):
    (mutant,) = [m for m in MUTANTS if m.name == name]
    return mutant.case(np.float64).layer_type


def test_a_planted_bug_shrinks_to_one_layer_of_one_unit():
    scaled = mutant_layer("B scaled by 1.0001 (a subtle bug)")
    network = find(gst.networks(layer_types=[dense, LAYER_TYPES["rbf"], scaled], max_layers=4),
                   fails, settings=SHRINK)  # fmt: skip
    assert_shrunk(network, scaled.name, (1, 1), 1)


def test_a_batch_bug_shrinks_to_two_examples():
    averaged = mutant_layer("bias gradient averaged over the batch instead of summed")
    network = find(gst.networks(layer_types=[dense, averaged], max_layers=4), fails,
                   settings=SHRINK)  # fmt: skip
    assert_shrunk(network, averaged.name, (1, 1), 2)  # N = 1 hides a mean for a sum


def test_a_unit_bug_shrinks_to_two_units():
    rolled = mutant_layer("δ of the wrong unit")
    network = find(gst.networks(layer_types=[dense, rolled], max_layers=4), fails,
                   settings=SHRINK)  # fmt: skip
    assert_shrunk(network, rolled.name, (1, 2), 1)  # J = 1 has no other unit to take δ from


def test_a_bug_below_a_correct_layer_shrinks_away_the_layers_above():
    # Only the input Jacobian is wrong; the smallest network that shows it is the layer
    # alone, whose δ⁰ is checked too.
    wrong_input = mutant_layer("input Jacobian without φ'")
    network = find(gst.networks(layer_types=[dense, wrong_input], min_layers=1, max_layers=5,
                                activations=["identity", "tanh"]),
                   fails, settings=SHRINK)  # fmt: skip
    assert len(network.layers) == 1 and network.layers[0].layer_type.name == wrong_input.name
    assert network.layers[0].activation.name == "tanh"  # identity has φ' = 1: no bug to see


# ---- the generator -------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(gst.networks(min_width=2, max_width=3, min_batch=2, max_batch=3, min_layers=2,
                    max_layers=3, losses=["softmax_cross_entropy"]))  # fmt: skip
def test_drawn_networks_respect_their_bounds_and_chain(network):
    assert 2 <= len(network.layers) <= 3
    width = np.shape(network.z)[1]
    assert 2 <= np.shape(network.z)[0] <= 3
    for layer in network.layers:
        theta = np.asarray(layer.theta)
        assert layer.layer_type.shape_problem(width, *theta.shape) is None
        assert not layer.layer_type.coupled
        width = theta.shape[0]
        assert 2 <= width <= 3
    targets = np.asarray(network.targets)
    assert targets.dtype.kind == "i" and np.all((targets >= 0) & (targets < width))


KINKED = ["relu", "abs", "leaky_relu", "hard_tanh", "relu6", "hard_sigmoid", "elu", "selu"]


def closeness_to_a_kink(network) -> float:
    """The largest reach / distance to the nearest kink over every pre-activation: the
    reach is what check_network measures kinks against (2h on every entry of z⁰ and θ,
    carried up the layers); it flags a network whose closeness reaches 1. For layer types
    whose forward with the identity activation is the pre-activation."""
    z = np.asarray(network.z, dtype=np.float64)
    reach = track(z, 2.0 * step_sizes(z))
    closest = 0.0
    for layer in network.layers:
        theta = np.asarray(layer.theta, dtype=np.float64)
        moved = track(theta, 2.0 * step_sizes(theta))
        pre = layer.layer_type.forward(reach, moved, ACTIVATIONS["identity"])
        for kink in layer.activation.kinks:
            distance = np.maximum(np.abs(pre.value - kink), 1e-300)
            closest = max(closest, float(np.max(pre.error / distance)))
        reach = layer.layer_type.forward(reach, moved, layer.activation)
    return closest


def test_a_layer_drawn_onto_a_kink_is_moved_clear_with_the_reach_from_below():
    # Random bytes seldom land on a kink, so hand the generator bytes that do: z⁰ = 1,
    # layer 1 (identity) θ = [8, -6] gives z¹ = 2 by cancellation, so z¹ carries a reach of
    # about 22 steps relative to its size; layer 2 (relu) θ = [1, -2] puts its
    # pre-activation exactly on the kink. Clearing it by the reach of its own θ alone
    # (8 steps) would leave it inside what the differences touch.
    plan = network_cases._NetworkPlan.of(
        1, 2, 1, 1, 1, 1, ["dense"], ["identity", "relu"], None, ("float64",)
    )
    head = bytes(5 + 2)  # squared error, float64, N = I = 1, scale 1; z⁰ = 1, target 1
    cancelling = bytes([0, 0, 0, 0, 0, 30, 23])  # dense, identity, J = 1; θ = [8, -6]
    on_the_kink = bytes([0, 1, 0, 0, 0, 0, 3])  # dense, relu, J = 1; θ = [1, -2]
    (network,) = plan.build([(head, [cancelling, on_the_kink])])
    assert [layer.activation.name for layer in network.layers] == ["identity", "relu"]
    assert np.array_equal(network.layers[0].theta, [[8.0, -6.0]])
    assert 0.0 < closeness_to_a_kink(network) < 1.0
    assert check_network(network).verdict is Verdict.PASS
    raw = replace(network.layers[1], theta=np.array([[1.0, -2.0]]))
    unmoved = check_network(replace(network, layers=(network.layers[0], raw)))
    assert unmoved.verdict is Verdict.NON_DIFFERENTIABLE  # what the bytes alone give


@settings(max_examples=100, deadline=None)
@given(gst.networks(layer_types=["dense", "elementwise", "weightnorm"], activations=KINKED,
                    max_layers=4))  # fmt: skip
def test_drawn_pre_activations_stay_clear_of_kinks(network):
    assert closeness_to_a_kink(network) < 1.0, network


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"min_layers": 0}, "min_layers=0 must be at least 1"),
        ({"min_layers": 3, "max_layers": 2}, "max_layers=2 must be at least min_layers=3"),
        ({"max_width": 0}, "max_width=0 must be at least min_width=1"),
        ({"losses": ["hinge"]}, "unknown loss 'hinge'"),
        ({"losses": "logistic"}, "must be a sequence of names"),
        ({"layer_types": ["tied"], "max_width": 1}, "no layer type fits"),
        ({"dtypes": ("float16",)}, "float16"),
    ],
)
def test_networks_validates_its_arguments(arguments, match):
    with pytest.raises(InvalidArgument, match=match):
        gst.networks(**arguments).example()


# ---- bad networks and options ------------------------------------------------------------


def _bad(network: Network, **changes) -> Network:
    return replace(network, **changes)


BASE = random_network(MIXED[:2])
BAD_NETWORKS = [
    ("widths do not chain", _bad(BASE, layers=(BASE.layers[0], BASE.layers[0])),
     "layer 2 (dense) gets 4 inputs from layer 1"),
    ("no layers", _bad(BASE, layers=()), "at least one layer"),
    ("NaN in θ", _bad(BASE, layers=(replace(BASE.layers[0], theta=np.full((4, 4), np.nan)),
                                    BASE.layers[1])), "theta of layer 1 contains nan"),
    ("mixed dtypes", _bad(BASE, z=np.asarray(BASE.z, dtype=np.float32)), "one dtype"),
    ("class out of range", _bad(BASE, loss="softmax_cross_entropy", targets=np.array([0, 1, 2])),
     "class indices must lie in [0, 2)"),
    ("targets misshapen", _bad(BASE, targets=np.zeros((3, 5))), "targets must have shape (N, J) = (3, 2)"),
    ("integer z", _bad(BASE, z=np.ones((3, 3), dtype=int)), "z has integer dtype int"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "network", "message"), BAD_NETWORKS, ids=[b[0] for b in BAD_NETWORKS]
)
def test_a_malformed_network_is_invalid_input(what, network, message):
    result = check_network(network)
    assert result.verdict is Verdict.INVALID_INPUT
    assert message in result.message
    with pytest.raises(InvalidNetworkError, match=re.escape(message)):
        backpropagate(network)


def test_hand_written_code_that_raises_is_invalid_input():
    def broken(z, theta, phi):
        raise ValueError("not implemented")

    layer = replace(BASE.layers[1], layer_type=replace(LAYER_TYPES["gated"], input_jacobian=broken))
    result = check_network(replace(BASE, layers=(BASE.layers[0], layer)))
    assert result.verdict is Verdict.INVALID_INPUT
    assert "layer 2 (gated).input_jacobian raised ValueError: not implemented" in result.message


def test_a_kink_within_the_reach_of_the_steps_is_non_differentiable():
    # Layer 2's pre-activation is 0 exactly: relu's kink, within any step.
    first = NetworkLayer("dense", "identity", np.array([[1.0, -1.0, 0.0]]))
    second = NetworkLayer("dense", "relu", np.array([[1.0, -2.0]]))
    network = Network(layers=(first, second), loss="squared_error", z=np.array([[3.0, 1.0]]),
                      targets=np.array([[0.5]]))  # fmt: skip
    result = check_network(network)
    assert result.verdict is Verdict.NON_DIFFERENTIABLE
    assert "layer 2 (dense)" in result.message and "kink" in result.message


def test_options_are_validated():
    with pytest.raises(GradcheckError, match="column"):
        check_network(BASE, finite_differences="columns")
    with pytest.raises(UnknownNameError, match="unknown oracle"):
        check_network(BASE, oracles=("symbolic",))
    with pytest.raises(GradcheckError, match="probes"):
        check_network(BASE, probes=0)
    only = check_network(BASE, oracles=("dense",))
    assert {c.oracle for c in only.comparisons} == {"dense"} and only.verdict is Verdict.PASS


def test_a_networks_repr_rebuilds_it_exactly():
    network = random_network(MIXED, dtype=np.float32, loss="softmax_cross_entropy")
    leaky = ACTIVATIONS["leaky_relu"].with_parameter(-0.3)
    network = replace(network, layers=(replace(network.layers[0], activation=leaky),
                                       *network.layers[1:]))  # fmt: skip
    rebuilt = eval(repr(network), {"np": np, "ACTIVATIONS": ACTIVATIONS, "Network": Network,
                                   "NetworkLayer": NetworkLayer})  # fmt: skip
    assert rebuilt.layers[0].activation == leaky
    for before, after in zip(network.layers, rebuilt.layers, strict=True):
        assert np.array_equal(before.theta, after.theta) and after.theta.dtype == np.float32
    assert np.array_equal(network.z, rebuilt.z) and np.array_equal(network.targets, rebuilt.targets)
    timeless = [[replace(c, seconds=0.0) for c in check_network(n).comparisons]
                for n in (network, rebuilt)]  # fmt: skip
    assert timeless[0] == timeless[1]


def test_a_backward_that_overflows_in_its_dtype_is_invalid_input():
    # rbf's output underflows to 3e-21; the cosine layer's ∂f/∂z divides by ‖z‖² = 1e-41,
    # which overflows in float32 while its forward stays finite: nothing can be bounded.
    rbf = NetworkLayer("rbf", None, np.array([[0.5, 0.5, 0.5, 3.5393853, 0.9426898]], np.float32))
    cosine = NetworkLayer("cosine", None, np.array([[1.0]], np.float32))
    network = Network(layers=(rbf, cosine), loss="squared_error",
                      z=np.array([[1.0, -4.865133, 3.0604465, -0.2646284]], np.float32),
                      targets=np.array([[1.0]], np.float32))  # fmt: skip
    result = check_network(network)
    assert result.verdict is Verdict.INVALID_INPUT, result.message
    assert "hand-written rules in float32 overflow: ∂f^2/∂z is" in result.message


def test_a_saturated_float32_network_passes_with_second_order_cross_terms():
    # tanh saturates to ±1 in float32, so tanh' = 1 - y² and the δ through it are both 0
    # with errors e_J and e_δ: δ · ∂f/∂z then has first-order error 0 but true error up
    # to e_δ e_J, the term the network adds to Tracked's first-order einsum rule.
    f32 = np.float32
    weightnorm = NetworkLayer("weightnorm", "sin", np.array(
        [[-0.45665514, 0.049145699, -0.050835941, -0.375, -0.36218745],
         [0.1875, -0.073966324, -0.66443348, 0.16539476, 0.041706264]], f32))  # fmt: skip
    saturating = NetworkLayer("elementwise", "tanh", np.array([[-12.241786, 4.5863113],
                                                               [16.0, -0.57700318]], f32))  # fmt: skip
    network = Network(layers=(weightnorm, saturating, saturating, saturating),
                      loss="softmax_cross_entropy",
                      z=np.array([[-12.0, -4.0, 2.2931557], [-8.4317265, -4.5961947, 5.0216355]], f32),
                      targets=np.array([1, 1]))  # fmt: skip
    result = check_network(network)
    assert result.verdict is Verdict.PASS, result.message
    exact_zeros = backpropagate(network).deltas[1] == 0
    assert exact_zeros.any()  # the δ really underflowed: the case is the one described


# ---- the second look of the whole-E differences ----------------------------------------------

# maxout(identity) → gated(cube) with every gated unit alike: the four logits of example 3 tie
# at ~3.9e5, and θ²[0, 2] moves logit 0 by ~4.6 per finite-difference step h, so the
# log-sum-exp is far from its h² regime at h and the first look's truncation |D₁ - D₂|
# (5.4e4) misses the true error of R (1.1e5).
TIED = Network(
    layers=(
        NetworkLayer("maxout", "identity", np.array(
            [[1.4005803092886067, -0.16127828999036692, -0.08323316136963384, -0.06381989266433574],
             [-0.1703481113465906, -2.432566436608565, -0.44528957151152665, -0.09285797661138807],
             [-2.51622846502606, -0.9426898207881175, 0.1703481113465906, 0.8628236566071841]])),
        NetworkLayer("gated", "cube", np.ones((4, 8))),
    ),
    loss="softmax_cross_entropy",
    z=np.array([[-0.5891884747743803], [5.183172442384026], [-24.0]]),
    targets=np.array([0, 3, 0]),
)  # fmt: skip


def tied_energy(t: np.longdouble) -> tuple[np.longdouble, np.longdouble]:
    """TIED's E with θ²[0, 2] = t, written out in np.longdouble (maxout of two lines,
    f_j = a_j³ σ(c_j), log-sum-exp): independent of the library's forward. Also returns
    Σ_n (|lse_n| + Σ_j |f_nj|), the size of what E's rounding is relative to."""
    ld = np.longdouble
    maxout, theta = TIED.layers[0].theta.astype(ld), TIED.layers[1].theta.astype(ld)
    theta[0, 2] = t
    total, size = ld(0), ld(0)
    for x, target in zip(TIED.z[:, 0].astype(ld), TIED.targets, strict=True):
        h = np.maximum(maxout[:, 0] * x + maxout[:, 1], maxout[:, 2] * x + maxout[:, 3])
        a, c = theta[:, :3] @ h + theta[:, 3], theta[:, 4:7] @ h + theta[:, 7]
        f = a**3 / (1 + np.exp(-c))
        top = np.max(f)
        lse = top + np.log(np.sum(np.exp(f - top)))
        total += lse - f[target]
        size += abs(lse) + np.sum(np.abs(f))
    return total, size


def test_tied_logits_pass_on_the_second_look_and_the_hand_written_value_is_right():
    result = check_network(TIED, finite_differences="full")
    assert result.verdict is Verdict.PASS, result.message
    differenced = [c for c in result.comparisons if c.oracle == "finite-differences"]
    assert len(differenced) == 3 and all(c.passed for c in differenced)

    # ∂E/∂θ²[0, 2] independently: central differences in longdouble at a step where the
    # logit moves by a·2h ≈ 7e-3 (a ≈ 9.5e5 per unit of θ), well inside the h² regime, so
    # Richardson's truncation is within |D₁ - D₂|. Rounding: each E is a few dozen longdouble
    # operations of relative error eps/2 and condition <= 3 (the cube) on values within
    # `size`; 1000 eps · size bounds it with room, and a difference quotient carries twice
    # that over its step.
    ld, eps = np.longdouble, np.finfo(np.longdouble).eps
    t, h = ld(1), ld(2.0) ** -28
    values = {k: tied_energy(t + k * h) for k in (1, -1, 2, -2)}
    d1 = (values[1][0] - values[-1][0]) / (2 * h)
    d2 = (values[2][0] - values[-2][0]) / (4 * h)
    estimate = d1 + (d1 - d2) / 3
    size = max(v[1] for v in values.values())
    bound = abs(d1 - d2) + 2 * (1000 * eps * size) / h
    hand = backpropagate(TIED).gradients[1][0, 2]
    assert abs(hand - estimate) <= bound, (hand, estimate, bound)

    # The float64 first look really is off by more than its own bound there, and the
    # second look finds its differences diverging (T(2h) ≈ 0.53 T(h)) and leaves the entry
    # to the other oracles rather than bound it.
    check = NetworkCheck(StackedNetworks.of(TIED))
    with np.errstate(all="ignore"):
        rounding = np.asarray(np.sum(check.reference_forward(), axis=-1).error)
        first, _ = check.parameter_differences(1, rounding, "full", 16)
        second, _ = check.parameter_differences(1, rounding, "full", 16, tracked=True)
    assert abs(first.value[0, 0, 2] - estimate) > first.error[0, 0, 2] + bound
    assert np.isnan(second.value[0, 0, 2]) and second.error[0, 0, 2] == np.inf


def test_tied_logits_fail_without_the_second_look(monkeypatch):
    # The same network with the second look switched off: the false alarm it fixes.
    def first_look_only(first, hand, hand_error, redo, among=None):
        return first, np.zeros(len(first.value), dtype=bool)

    monkeypatch.setattr(network_comparisons, "second_look", first_look_only)
    result = check_network(TIED, finite_differences="full")
    assert result.verdict is Verdict.MISMATCH
    assert "∂E/∂θ at unit 0, parameter 2" in result.message, result.message


def scaled_gated(factor: float):
    """gated with the value half of B (∂f/∂θᵃ) scaled by factor: a slightly wrong φ'."""
    gated = LAYER_TYPES["gated"]

    def unit_jacobian(z, theta, phi):
        full = gated.unit_jacobian(z, theta, phi)
        half = full.shape[-1] // 2
        return np.concatenate([full[..., :half] * factor, full[..., half:]], axis=-1)

    return replace(gated, name="gated (mutant)", unit_jacobian=unit_jacobian)


@pytest.mark.parametrize("layout", ["full", "probes"])
def test_a_wrong_gated_derivative_is_still_caught_by_the_differences_alone(layout):
    # Every miss goes through the second look before it counts; these must survive it.
    # On TIED, B wrong by 15% (the size of the false alarm's gap): ...
    bad = replace(TIED.layers[1], layer_type=scaled_gated(1.15))
    result = check_network(replace(TIED, layers=(TIED.layers[0], bad)),
                           oracles=("finite-differences",), finite_differences=layout)  # fmt: skip
    assert result.verdict is Verdict.MISMATCH, result.message
    assert "layer 2 of 2 (gated (mutant), cube) is wrong" in result.message
    # ... and in a network that nothing saturates, B wrong by 1e-4.
    network = random_network([("dense", "tanh", 3), ("gated", "sigmoid", 3), ("dense", "tanh", 2)],
                             seed=5)  # fmt: skip
    middle = replace(network.layers[1], layer_type=scaled_gated(1.0001))
    network = replace(network, layers=(network.layers[0], middle, network.layers[2]))
    result = check_network(network, oracles=("finite-differences",), finite_differences=layout)
    assert result.verdict is Verdict.MISMATCH, result.message
    failed = [c for c in result.layers[1].comparisons if not c.passed]
    assert failed and all(c.oracle == "finite-differences" for c in failed)


def test_a_slightly_wrong_gated_derivative_on_tied_logits_is_blamed_by_autograd():
    # 1e-4 is below what differences resolve at TIED's tie (their bound is ~16% there), but
    # autograd's reference is exact to rounding and blames the layer.
    bad = replace(TIED.layers[1], layer_type=scaled_gated(1.0001))
    result = check_network(replace(TIED, layers=(TIED.layers[0], bad)))
    assert result.verdict is Verdict.MISMATCH, result.message
    assert result.blamed_layer == 2, result.message


@pytest.mark.xfail(
    strict=True,
    reason="known false alarm: along a probe every θ²ʲ moves by ±h at once, so the tied "
    "logits move by far more than one unit per step; the probes' second look (as in "
    "gradcheck.catalogue.stacked) charges the rounding at the stencil points but has no "
    "±4w convergence charge, and even that would not cover a stencil this far outside "
    "E's h² regime",
)
def test_tied_logits_pass_along_probes():
    result = check_network(TIED, finite_differences="probes")
    assert result.verdict is Verdict.PASS, result.message


@pytest.mark.parametrize("layout", ["full", "probes"])
def test_the_second_look_of_each_layout_holds_autograd_within_its_bound(layout):
    # Every second-look path (θ^ℓ full or along probes, z⁰ by columns), on a subset of a
    # stack of networks, against autograd's reverse mode: within both bounds, case by case.
    networks = [random_network([("dense", "tanh", 3), ("gated", "softplus", 2)], seed=s)
                for s in range(3)]  # fmt: skip
    check = NetworkCheck(StackedNetworks.stacked([StackedNetworks.of(n) for n in networks]))
    cases = np.array([2, 0])
    with np.errstate(all="ignore"):
        forward = check.reference_forward()
        d_thetas, d_zs = check.reverse_mode()
        total = np.asarray(np.sum(forward, axis=-1).error)
        found = check.input_differences(np.asarray(forward.error), cases=cases, tracked=True)
        assert found.method == "finite differences (columns, second look)"
        assert np.all(np.abs(found.value - d_zs[0].value[cases])
                      <= found.error + d_zs[0].error[cases])  # fmt: skip
        for index in range(2):
            first, directions = check.parameter_differences(index, total, layout, 8)
            subset = None if directions is None else directions[:, cases]
            again, _ = check.parameter_differences(index, total, layout, 8, cases=cases,
                                                   tracked=True, directions=subset)  # fmt: skip
            autograd = d_thetas[index]
            if directions is None:
                exact, exact_error = autograd.value[cases], autograd.error[cases]
            else:  # the first look's directions, subset to the cases
                exact, exact_error = projections(directions[:, cases], autograd.value[cases],
                                                 autograd.error[cases],
                                                 check.thetas64[index][cases], cases=1)  # fmt: skip
            assert np.all(np.abs(again.value - exact) <= again.error + exact_error)
            assert np.all(np.abs(again.value - first.value[cases])
                          <= again.error + first.error[cases])  # fmt: skip


def test_a_network_mismatch_in_the_campaign_is_kept_as_a_failure(monkeypatch):
    # The campaign raises GradientMismatch on a network cell's summary, which has no
    # sizes; its message once read them and raised AttributeError, which hypothesis then
    # shrank for minutes and `gradcheck run` died of.
    from dataclasses import replace

    from gradcheck import campaign
    from gradcheck.core.results import Verdict

    real = campaign.check_networks

    def one_planted_mismatch(stack):
        results = real(stack)
        return [replace(results[0], verdict=Verdict.MISMATCH, message="mismatch: planted")] + list(
            results[1:]
        )

    monkeypatch.setattr(campaign, "check_networks", one_planted_mismatch)
    spec = next(s for s in campaign.cells() if s.layer_type == campaign.NETWORK)
    outcome = campaign.run_cell(spec, examples=4, seed=0, database=None)
    (failure,) = outcome.failures
    assert failure.verdict == "mismatch" and "planted" in failure.message


# weightnorm(cube) → maxout with four identical units: the four logits tie at 3.4e6 and one
# step of θ²[1, 4] moves logit 1 by 16, so the differences of the log-sum-exp behave as a
# jump's (found by `gradcheck run --examples 1000`, default seed, before `diverging`).
TIED_MAXOUT = Network(
    layers=(
        NetworkLayer("weightnorm", "cube", np.array([[4.0, 4.0, 4.0], [4.0, 14.612964331642027, 4.0]])),
        NetworkLayer("maxout", "identity", np.array([[1.0] * 5 + [3401.296476442973]] * 4)),
    ),
    loss="softmax_cross_entropy",
    z=np.array([[10.0]]),
    targets=np.array([0]),
)  # fmt: skip


def test_differences_that_do_not_shrink_with_the_step_are_left_to_the_other_oracles(
    monkeypatch,
):
    from gradcheck.core import differences

    # Exactly: the logits tie, so softmax gives unit 1 the weight 1/4, and the winning piece
    # reads h₁ = (g v z / |v| + b)³ through θ²[1, 4]: ∂E/∂θ²[1, 4] = h₁ / 4.
    (v, g, b), z = TIED_MAXOUT.layers[0].theta[1], TIED_MAXOUT.z[0, 0]
    exact = Fraction(g * v * z / abs(v) + b) ** 3 / 4  # g v z/|v| + b is exact in float64
    hand = backpropagate(TIED_MAXOUT).gradients[1][1, 4]
    assert abs(Fraction(hand) - exact) <= 4 * np.finfo(np.float64).eps * exact
    result = check_network(TIED_MAXOUT, finite_differences="full")
    assert result.verdict is Verdict.PASS, result.message

    monkeypatch.setattr(
        differences, "diverging", lambda coarse, *_: np.zeros(coarse.shape[1:], bool)
    )
    result = check_network(TIED_MAXOUT, finite_differences="full")
    assert result.verdict is Verdict.MISMATCH  # the false alarm `diverging` removes
