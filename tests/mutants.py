"""Test-only mutants: layer types with one planted gradient bug each.

Each mutant names the oracles that must catch it. Like the catalogue's rows, the
mutated functions broadcast over leading axes (the checker stacks cases). A bug in B itself (or in φ') cannot be
seen by the dense oracle, which multiplies the same B into the block-diagonal matrix: it
checks the compaction A = δ ⊙ B, not the calculus. Bugs in the compaction are seen by
all three oracles; bugs in the input Jacobian by autograd and finite differences on ∂E/∂z.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from cases import random_case

from gradcheck import Case
from gradcheck.catalogue.activations import ACTIVATIONS
from gradcheck.catalogue.layers import LAYER_TYPES, LayerType
from gradcheck.core import compact

ALL = ("dense", "autograd", "finite-differences")
CALCULUS = ("autograd", "finite-differences")


@dataclass(frozen=True)
class Mutant:
    name: str
    case: Callable[[type], Case]
    caught_by: tuple[str, ...]
    target: str  # "parameters" or "inputs": where the mismatch must show
    diagnosis: str  # the class of gradcheck.diagnosis.classes it was planted as
    # False for bugs that show only at the magnitudes of their own case (an overflow), so
    # that a network, which feeds the layer its own values, need not show them.
    anywhere: bool = True


def _layer(base: str, **changes) -> LayerType:
    return replace(LAYER_TYPES[base], name=f"{base} (mutant)", **changes)


def _with(layer: LayerType, activation=None, **kwargs) -> Callable[[type], Case]:
    def build(dtype: type) -> Case:
        return random_case(layer, activation, dtype=dtype, **kwargs)

    return build


dense = LAYER_TYPES["dense"]


def _compact_then(change):
    return lambda delta, unit_jacobian: change(
        delta, unit_jacobian, compact.compact_gradient(delta, unit_jacobian)
    )


def _bias_mean(delta, unit_jacobian, gradient):
    bias = gradient[..., -1:] / delta.shape[-2]
    return np.concatenate([gradient[..., :-1], bias], axis=-1)


def _rbf_half_centre(z, theta, phi):
    full = LAYER_TYPES["rbf"].unit_jacobian(z, theta, phi)
    return np.concatenate([full[..., :-1] * 0.5, full[..., -1:]], axis=-1)


def _weightnorm_without_projection(z, theta, phi):
    # ∂a/∂v taken as (g/‖v‖) z: the term through ‖v‖ is dropped (treated as a constant).
    full = LAYER_TYPES["weightnorm"].unit_jacobian(z, theta, phi)
    direction = theta[..., :-2]
    norm = np.sqrt(np.sum(direction * direction, axis=-1))[..., None, :]
    slope = full[..., -1]  # ∂f/∂b = φ'(a)
    d_direction = (slope * theta[..., None, :, -2] / norm)[..., None] * z[..., :, None, :]
    return np.concatenate([d_direction, full[..., -2:]], axis=-1)


def _gated_without_gate(z, theta, phi):
    full = LAYER_TYPES["gated"].unit_jacobian(z, theta, phi)
    half = full.shape[-1] // 2
    return np.concatenate([full[..., :half], 0.0 * full[..., half:]], axis=-1)


def _softmax_sigmoid_style(z, theta, phi):
    # The sigmoid derivative used for softmax: ∂s_j/∂z = s_j (1 - s_j) wʲ, no cross terms.
    unit = LAYER_TYPES["softmax_dense"].unit_jacobian(z, theta, phi)  # s(1 - s) [z, 1]
    return unit[..., -1:] * theta[..., None, :, :-1]


def _softmax_unshifted(z, theta, phi):
    # ∂s_j/∂z with s = e^a / Σ e^a computed without subtracting max(a): inf / inf overflows.
    a = np.einsum("...ni,...ji->...nj", z, theta[..., :-1]) + theta[..., None, :, -1]
    e = np.exp(a)
    s = e / np.sum(e, axis=-1, keepdims=True)
    weights = theta[..., :-1]
    mean_weight = np.einsum("...nk,...ki->...ni", s, weights)
    return s[..., None] * (weights[..., None, :, :] - mean_weight[..., :, None, :])


def _bias_without_slope(delta, unit_jacobian):
    # The bias column as Σ_n δ_nj, forgetting φ'(a_nj).
    gradient = compact.compact_gradient(delta, unit_jacobian)
    bias = np.sum(delta, axis=-2)[..., None]
    return np.concatenate([gradient[..., :-1], bias], axis=-1)


MUTANTS = [
    # -- the compaction A = δ ⊙ B ------------------------------------------------------
    Mutant(
        "bias gradient averaged over the batch instead of summed",
        _with(_layer("dense", parameter_gradient=_compact_then(_bias_mean)), "tanh", batch=4),
        ALL,
        "parameters",
        "batch-mean-vs-sum",
    ),
    Mutant(
        "whole gradient averaged over the batch",
        _with(
            _layer(
                "dense",
                parameter_gradient=lambda d, b: compact.compact_gradient(d, b) / d.shape[-2],
            ),
            "tanh",
            batch=3,
        ),
        ALL,
        "parameters",
        "batch-mean-vs-sum",
    ),
    Mutant(
        "compaction sign flipped",
        _with(
            _layer("dense", parameter_gradient=lambda d, b: -compact.compact_gradient(d, b)),
            "sigmoid",
        ),
        ALL,
        "parameters",
        "sign",
    ),
    Mutant(
        "parameter gradient transposed (J = P)",
        _with(
            _layer(
                "dense",
                parameter_gradient=lambda d, b: np.swapaxes(compact.compact_gradient(d, b), -2, -1),
            ),
            "tanh",
            inputs=2,
            units=3,
        ),
        ALL,
        "parameters",
        "transpose",
    ),
    Mutant(
        "bias gradient without φ'",
        _with(_layer("dense", parameter_gradient=_bias_without_slope), "tanh", batch=3),
        ALL,
        "parameters",
        "bias-only",
    ),
    Mutant(
        "δ of the wrong unit",
        _with(
            _layer(
                "dense",
                parameter_gradient=lambda d, b: compact.compact_gradient(np.roll(d, 1, axis=-1), b),
            ),
            "tanh",
        ),
        ALL,
        "parameters",
        "unknown",
    ),
    # -- B or φ' --------------------------------------------------------------------------
    Mutant(
        "tanh' written as 1 + tanh²",
        _with(dense, replace(ACTIVATIONS["tanh"], dphi=lambda x, y: 1.0 + y * y)),
        CALCULUS,
        "parameters",
        "wrong-activation-derivative",
    ),
    Mutant(
        "leaky relu slope dropped",
        _with(
            dense,
            replace(
                ACTIVATIONS["leaky_relu"],
                dphi=lambda x, y, a: np.where(x > 0, 1.0 + 0 * x, 0.0 * x),
            ).with_parameter(0.2),
        ),
        CALCULUS,
        "parameters",
        "wrong-activation-derivative",
    ),
    Mutant(
        "sigmoid' written as σ instead of σ(1 - σ)",
        _with(dense, replace(ACTIVATIONS["sigmoid"], dphi=lambda x, y: y)),
        CALCULUS,
        "parameters",
        "wrong-activation-derivative",
    ),
    Mutant(
        "B sign flipped",
        _with(
            _layer("dense", unit_jacobian=lambda z, t, phi: -dense.unit_jacobian(z, t, phi)), "tanh"
        ),
        CALCULUS,
        "parameters",
        "sign",
    ),
    Mutant(
        "rbf factor 2 missing in ∂f/∂c",
        _with(_layer("rbf", unit_jacobian=_rbf_half_centre)),
        CALCULUS,
        "parameters",
        "scale-constant",
    ),
    Mutant(
        "B scaled by 1.0001 (a subtle bug)",
        _with(
            _layer(
                "dense", unit_jacobian=lambda z, t, phi: dense.unit_jacobian(z, t, phi) * 1.0001
            ),
            "tanh",
        ),
        CALCULUS,
        "parameters",
        "scale-constant",
    ),
    Mutant(
        "B transposed (square B: I + 1 = J)",
        _with(
            _layer(
                "dense",
                unit_jacobian=lambda z, t, phi: np.swapaxes(dense.unit_jacobian(z, t, phi), -2, -1),
            ),
            "tanh",
            inputs=2,
            units=3,
        ),
        CALCULUS,
        "parameters",
        "unknown",
    ),
    Mutant(
        "weight norm: the term through ‖v‖ missing",
        _with(_layer("weightnorm", unit_jacobian=_weightnorm_without_projection), "tanh"),
        CALCULUS,
        "parameters",
        "missing-term",
    ),
    Mutant(
        "gated: the gate's derivative missing",
        _with(_layer("gated", unit_jacobian=_gated_without_gate), "tanh"),
        CALCULUS,
        "parameters",
        "missing-term",
    ),
    # -- the input Jacobian ------------------------------------------------------------------
    Mutant(
        "the sigmoid derivative used for softmax",
        _with(_layer("softmax_dense", input_jacobian=_softmax_sigmoid_style)),
        CALCULUS,
        "inputs",
        "input-gradient-only",
    ),
    Mutant(
        "input Jacobian transposed (I = J)",
        _with(
            _layer(
                "dense",
                input_jacobian=lambda z, t, phi: np.swapaxes(
                    dense.input_jacobian(z, t, phi), -2, -1
                ),
            ),
            "tanh",
            inputs=3,
            units=3,
        ),
        CALCULUS,
        "inputs",
        "transpose",
    ),
    Mutant(
        "softmax with an unshifted exp, overflowing",
        _with(_layer("softmax_dense", input_jacobian=_softmax_unshifted), scale=20.0),
        CALCULUS,
        "inputs",
        "non-finite",
        anywhere=False,
    ),
    Mutant(
        "input Jacobian without φ'",
        _with(
            _layer(
                "dense",
                input_jacobian=lambda z, t, phi: (
                    np.ones(z.shape[:-1] + (1, 1)) * t[..., None, :, :-1]
                ),
            ),
            "tanh",
        ),
        CALCULUS,
        "inputs",
        "input-gradient-only",
    ),
]
