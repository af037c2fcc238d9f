"""Every layer type's hand-written B and input Jacobian agree with autograd; coupled
controls are reported as coupled, with the mass that crosses between units."""

from __future__ import annotations

import numpy as np
import pytest
from cases import random_case

from gradcheck import LAYER_TYPES, Verdict, check
from gradcheck.catalogue.layers import resolve_layer_type
from gradcheck.errors import UnknownNameError

PARTITIONED = [name for name, layer in LAYER_TYPES.items() if not layer.coupled]
COUPLED = [name for name, layer in LAYER_TYPES.items() if layer.coupled]
ACTIVATIONS_SAMPLE = ["identity", "tanh", "gelu", "softplus", "leaky_relu", "cube", "sin", "silu"]


def test_catalogue_sizes():
    assert len(PARTITIONED) >= 8
    assert len(COUPLED) >= 3
    assert {
        "dense",
        "linear",
        "rbf",
        "elementwise",
        "weightnorm",
        "cosine",
        "maxout",
        "gated",
    } <= set(PARTITIONED)
    assert {"softmax_dense", "layernorm_dense", "conv_shared", "tied"} <= set(COUPLED)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ACTIVATIONS_SAMPLE)
@pytest.mark.parametrize("layer_type", PARTITIONED)
def test_unit_jacobian_and_input_jacobian_agree_with_autograd(layer_type, activation, dtype):
    for seed in range(4):
        result = check(
            random_case(layer_type, activation, dtype=dtype, seed=seed), oracles=("autograd",)
        )
        assert result.verdict is Verdict.PASS, result.message
        targets = {c.target for c in result.comparisons}
        assert targets == {"parameters", "inputs"}  # formula 2 and formula 1 were both checked
        assert result.off_diagonal_mass == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["identity", "tanh", "elu"])
@pytest.mark.parametrize("layer_type", COUPLED)
def test_coupled_controls_come_out_coupled(layer_type, activation, dtype):
    for seed in range(4):
        result = check(random_case(layer_type, activation, dtype=dtype, seed=seed))
        assert result.verdict is Verdict.COUPLED, result.message
        assert 0.0 < result.off_diagonal_mass < 1.0
        by_method = {(c.oracle, c.target, c.method): c for c in result.comparisons}
        # B is right about the diagonal blocks, and formula 1 holds for coupled layers too ...
        assert by_method[("autograd", "parameters", "diagonal blocks")].passed
        assert by_method[("autograd", "inputs", "reverse mode")].passed
        assert by_method[("finite-differences", "inputs", "finite differences (full)")].passed
        # ... but A = δ ⊙ B is not the gradient: both references see the cross-unit terms.
        assert not by_method[("autograd", "parameters", "reverse mode")].passed
        assert not by_method[
            ("finite-differences", "parameters", "finite differences (full)")
        ].passed


@pytest.mark.parametrize("layer_type", PARTITIONED + COUPLED)
def test_all_three_oracles_pass_in_both_dtypes(layer_type):
    for dtype in (np.float64, np.float32):
        for seed in range(3):
            result = check(random_case(layer_type, "tanh", dtype=dtype, seed=seed, batch=5))
            expected = Verdict.COUPLED if LAYER_TYPES[layer_type].coupled else Verdict.PASS
            assert result.verdict is expected, result.message
            assert {c.oracle for c in result.comparisons} == {
                "dense",
                "autograd",
                "finite-differences",
            }


def test_rank_one_flag_matches_the_seed_special_case():
    for name, layer in LAYER_TYPES.items():
        result = check(random_case(name, "tanh", seed=1), oracles=("dense",))
        if layer.rank_one is None:
            assert result.rank_one == "not applicable"
        else:
            assert result.rank_one == "holds", result.message
    assert LAYER_TYPES["rbf"].rank_one is None and LAYER_TYPES["cosine"].rank_one is None


def test_maxout_takes_any_number_of_pieces():
    layer = LAYER_TYPES["maxout"]
    assert layer.shape_problem(3, 2, 12) is None  # three pieces of (3 weights + bias)
    assert "must have 8 columns" in layer.shape_problem(3, 2, 7)


def test_unknown_layer_type():
    with pytest.raises(UnknownNameError, match="unknown layer type 'dens'"):
        resolve_layer_type("dens")
