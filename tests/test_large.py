"""The large-layer path: block by block, O(n) memory, the same verdicts as the stacked path.

Layers here are moderate: the path is exercised by giving it small blocks (block_units),
not by making layers huge; the 4096 x 4096 runs live in benchmarks/scale.py.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import replace

import numpy as np
import pytest
from cases import random_case
from mutants import MUTANTS

from gradcheck import LAYER_TYPES, Case, Verdict, check
from gradcheck.catalogue import large as large_module
from gradcheck.catalogue.checker import check_large, check_many
from gradcheck.catalogue.large import make_plan
from gradcheck.core.probes import signed_steps

PARTITIONED = [
    ("dense", "tanh"), ("linear", None), ("rbf", None), ("gated", "sigmoid"),
    ("cosine", "tanh"), ("weightnorm", "gelu"), ("maxout", None), ("elementwise", "tanh"),
]  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["columns", "probes"])
@pytest.mark.parametrize(("layer", "activation"), PARTITIONED)
def test_correct_layers_pass_block_by_block_as_they_do_stacked(layer, activation, layout, dtype):
    for seed in range(3):
        case = random_case(layer, activation, dtype=dtype, batch=4, inputs=9, units=11, seed=seed)
        result = check_large(case, block_units=4, finite_differences=layout)
        assert result.verdict is check(case).verdict
        assert result.verdict is Verdict.PASS, result.message
        assert result.off_diagonal_mass == 0.0
        oracles = {(c.oracle, c.target) for c in result.comparisons}
        assert {("autograd", "parameters"), ("autograd", "inputs"), ("dense", "parameters"),
                ("finite-differences", "parameters"), ("finite-differences", "inputs")} <= oracles  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_layer_above_the_threshold_takes_the_large_path_and_passes(dtype):
    # 256 units of 385 parameters: n = 98 560 > LARGE_PARAMETERS, and probes under "auto".
    case = random_case("dense", "tanh", dtype=dtype, batch=4, inputs=384, units=256, scale=0.3)
    result = check(case)
    assert result.verdict is Verdict.PASS, result.message
    assert "blocks of" in result.message
    methods = {c.method for c in result.comparisons}
    assert f"finite differences ({large_module.LARGE_PROBES} probes)" in methods
    assert any(
        "block by block" in m or "explicit" in m for m in methods
    )  # the block-diagonal product


def test_check_many_sends_large_cases_one_way_and_small_ones_the_other(monkeypatch):
    monkeypatch.setattr(large_module, "LARGE_PARAMETERS", 40)
    small = random_case("dense", "tanh", inputs=4, units=3)  # 15 parameters
    big = random_case("dense", "tanh", inputs=9, units=11)  # 110 parameters
    results = check_many([small, big, small])
    assert [r.verdict for r in results] == [Verdict.PASS] * 3
    assert ["blocks of" in r.message for r in results] == [False, True, False]


MUTANT_CASES = [
    (m, oracle)
    for m in MUTANTS
    if "transposed" not in m.name  # blocks of 2 units turn a square transpose into a shape error
    and not m.case(np.float64).layer_type.coupled  # coupled layers take the stacked path
    for oracle in m.caught_by
]


@pytest.mark.parametrize("layout", ["columns", "probes"])
@pytest.mark.parametrize(
    ("mutant", "oracle"), MUTANT_CASES, ids=[f"{m.name} / {o}" for m, o in MUTANT_CASES]
)
def test_mutants_are_caught_block_by_block(mutant, oracle, layout):
    result = check_large(
        mutant.case(np.float64), block_units=2, finite_differences=layout, oracles=(oracle,)
    )
    assert result.verdict is Verdict.MISMATCH, result.message
    assert (oracle, mutant.target) in {(c.oracle, c.target) for c in result.failures()}


def one_wrong_entry(theta: np.ndarray, unit: int, example: int, parameter: int, factor: float):
    """The dense layer with B[example, unit, parameter] multiplied by factor; the unit is
    found by its row of θ, so the bug follows it into whichever block holds it."""
    dense = LAYER_TYPES["dense"]
    marker = theta[unit]

    def unit_jacobian(z, t, phi):
        b = dense.unit_jacobian(z, t, phi)
        rows = np.all(np.asarray(getattr(t, "value", t)) == marker, axis=-1)
        scale = np.ones(b.shape)
        scale[..., example, rows, parameter] = factor
        return b * scale

    return replace(dense, name="dense (one wrong entry)", unit_jacobian=unit_jacobian)


def test_one_wrong_entry_of_B_in_a_1024_by_1024_layer_is_caught():
    rng = np.random.default_rng(7)
    z, delta = rng.normal(size=(4, 1024)), rng.normal(size=(4, 1024))
    theta = rng.normal(size=(1024, 1025)) / 32.0
    layer = one_wrong_entry(theta, unit=700, example=2, parameter=11, factor=1.001)
    result = check(Case(layer_type=layer, activation="tanh", z=z, theta=theta, delta=delta))
    assert result.verdict is Verdict.MISMATCH, result.message
    worst = max(result.failures(), key=lambda c: c.worst_ratio)
    assert worst.worst_entry == {"unit": 700, "parameter": 11}
    assert ("autograd", "parameters") in {(c.oracle, c.target) for c in result.failures()}


def test_a_probe_meets_a_single_wrong_entry_whatever_its_sign():
    # ⟨e, s ⊙ h⟩ = ±e_m h_m for an error on one entry: every probe sees all of it.
    case = random_case("dense", "tanh", batch=4, inputs=9, units=11, scale=0.4)  # unsaturated
    layer = one_wrong_entry(np.asarray(case.theta), unit=5, example=1, parameter=3, factor=3.0)
    result = check_large(
        replace(case, layer_type=layer), block_units=3, finite_differences="probes",
        probes=8, oracles=("finite-differences",),
    )  # fmt: skip
    (probes,) = [c for c in result.comparisons if c.target == "parameters"]
    assert not probes.passed, result.message
    excess = (
        2.0
        * np.asarray(case.delta)[1, 5]
        * LAYER_TYPES["dense"].unit_jacobian(
            np.asarray(case.z), np.asarray(case.theta), __import__("gradcheck").ACTIVATIONS["tanh"]
        )[1, 5, 3]
    )
    step = large_module.oracles.step_sizes(np.asarray(case.theta))[5, 3]
    assert abs(probes.worst_error - abs(excess) * step) <= probes.worst_bound


@pytest.mark.parametrize("name", ["softmax_dense", "layernorm_dense", "tied", "conv_shared"])
def test_undeclared_coupling_is_measured_on_a_sample_of_units(name):
    undeclared = replace(LAYER_TYPES[name], coupled=False, name=f"{name} (undeclared)")
    case = random_case(undeclared, "tanh", batch=3, inputs=8, units=8)
    result = check_large(case, block_units=3)
    assert result.verdict is Verdict.COUPLED, result.message
    assert result.off_diagonal_mass > 0.0


def test_a_declared_coupled_layer_goes_to_the_stacked_path():
    case = random_case("softmax_dense", None, batch=3, inputs=5, units=6)
    assert check_large(case, block_units=2).verdict is Verdict.COUPLED
    assert not large_module.applies(LAYER_TYPES["softmax_dense"], 10**9)


def test_a_kink_in_one_block_is_non_differentiable():
    case = random_case("dense", "relu", batch=2, inputs=3, units=9)
    theta = np.array(case.theta)
    theta[7, -1] = -float(np.asarray(case.z)[0] @ theta[7, :-1])  # unit 7 exactly on the kink
    result = check_large(replace(case, theta=theta), block_units=2)
    assert result.verdict is Verdict.NON_DIFFERENTIABLE, result.message
    assert "kink" in result.message and "units from 6" in result.message


def test_a_kink_in_a_later_block_of_a_pass_names_that_block():
    # 64 units of 4 parameters in blocks of 2: a pass (a quarter of θ) holds 4 blocks, and
    # unit 13 sits in the third block of the second pass.
    case = random_case("dense", "relu", batch=2, inputs=3, units=64, seed=3)
    theta = np.array(case.theta)
    theta[13, -1] = -float(np.asarray(case.z)[1] @ theta[13, :-1])
    plan = make_plan(batch=2, inputs=3, units=64, parameters=4, block_units=2)
    assert plan.pass_units == 8
    result = check_large(replace(case, theta=theta), block_units=2)
    assert result.verdict is Verdict.NON_DIFFERENTIABLE, result.message
    assert "units from 12" in result.message


def test_probe_directions_are_exactly_plus_or_minus_the_step():
    theta = np.random.default_rng(0).normal(size=(7, 9)) * 10.0
    steps = large_module.oracles.step_sizes(theta)
    directions = signed_steps(np.random.default_rng(1), 5, theta)
    assert directions.shape == (5, 7, 9)
    assert np.all((directions == steps) | (directions == -steps))
    positive = np.mean(directions > 0)
    assert 0.3 < positive < 0.7  # 315 fair signs: far outside this only if the bits are not random
    again = signed_steps(np.random.default_rng(1), 5, theta)
    other = signed_steps(np.random.default_rng(2), 5, theta)
    assert np.array_equal(directions, again) and not np.array_equal(directions, other)


def test_hand_written_code_that_raises_is_invalid_input():
    def broken(z, theta, phi):
        raise ZeroDivisionError("oops")

    layer = replace(LAYER_TYPES["dense"], name="broken", input_jacobian=broken)
    result = check_large(random_case(layer, "tanh", units=7), block_units=3)
    assert result.verdict is Verdict.INVALID_INPUT
    assert "broken.input_jacobian raised ZeroDivisionError: oops" in result.message


def test_the_plan_uses_columns_while_affordable_then_probes():
    small = make_plan(batch=4, inputs=256, units=256, parameters=257)
    big = make_plan(batch=4, inputs=1024, units=1024, parameters=1025)
    assert (small.layout, big.layout) == ("columns", "probes")
    assert big.probes == large_module.LARGE_PROBES
    assert (
        make_plan(batch=4, inputs=8, units=8, parameters=9, finite_differences="full").layout
        == "columns"
    )
    # blocks: N·J_b·max(P, I) within the budget, and at least one unit; passes: whole
    # blocks, within PASS_ENTRIES and a quarter of θ
    high = large_module.BLOCK_ENTRIES[1]
    assert 4 * big.block_units * 1025 <= high
    assert big.pass_units % big.block_units == 0 and big.pass_units > big.block_units
    assert 4 * big.pass_units * 1025 <= min(large_module.PASS_ENTRIES, 1024 * 1025 // 4)
    assert make_plan(batch=64, inputs=10**6, units=2, parameters=10**6 + 1).block_units == 1


def test_peak_memory_stays_within_four_times_theta():
    # 512 x 512 float64 under "auto" (probes): everything beyond θ is a block, N x I arrays,
    # or the one θ-sized gradient of the structure check.
    case = random_case("dense", "tanh", batch=4, inputs=512, units=512, scale=0.1)
    theta_bytes = np.asarray(case.theta).nbytes
    tracemalloc.start()
    try:
        result = check(case)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.verdict is Verdict.PASS, result.message
    assert peak <= 4 * theta_bytes, peak / theta_bytes


def test_more_units_than_the_coupling_sample_pass_in_the_stacked_path():
    # J = 100 > COUPLING_UNITS_BUDGET: autograd samples units, and ∂E/∂z must still be counted
    # once (the sampled units' copies read a constant z).
    case = random_case("dense", "tanh", batch=4, inputs=20, units=100, scale=0.5)
    assert not large_module.applies(LAYER_TYPES["dense"], np.asarray(case.theta).size)
    result = check(case)
    assert result.verdict is Verdict.PASS, result.message
