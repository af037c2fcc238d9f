"""A catalogue case and the checks' options: what `check` takes, validated.

`Case` names a layer type and activation of the catalogue and carries z, θ and δ;
`validated` turns one into arrays the layer accepts (or a CaseError that says why not);
`check_options` validates the options of `check` and `check_many`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from gradcheck.catalogue.activations import Activation
from gradcheck.catalogue.layers import LayerType
from gradcheck.core.comparison import CaseError, as_array
from gradcheck.core.results import ORACLES
from gradcheck.errors import GradcheckError, UnknownNameError


@dataclass(frozen=True, kw_only=True)
class Case:
    """One concrete draw: layer type, activation, inputs z (N × I), parameters θ (J × P),
    upstream gradient δ = ∂E/∂f (N × J). The dtype is the arrays' own."""

    layer_type: str | LayerType
    activation: str | Activation | None = None
    z: ArrayLike
    theta: ArrayLike
    delta: ArrayLike

    def __repr__(self) -> str:
        layer = getattr(self.layer_type, "name", self.layer_type)
        activation = getattr(self.activation, "label", self.activation)
        arrays = ", ".join(
            f"{name}={np.asarray(value).tolist()!r}"  # exact: floats repr round-trip
            for name, value in (("z", self.z), ("theta", self.theta), ("delta", self.delta))
        )
        dtype = getattr(np.asarray(self.z), "dtype", "")
        return f"Case({layer!r}, {activation!r}, {dtype}, {arrays})"


def validated(case: Case, layer: LayerType) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = as_array("z", case.z)
    theta = as_array("theta", case.theta)
    delta = as_array("delta", case.delta)
    if len({z.dtype, theta.dtype, delta.dtype}) != 1:
        raise CaseError(
            f"z, theta and delta must share one dtype, got {z.dtype}, {theta.dtype}, {delta.dtype}"
        )
    (batch, inputs), (units, parameters) = z.shape, theta.shape
    if delta.shape != (batch, units):
        raise CaseError(
            f"delta must have shape (N, J) = ({batch}, {units}) for z of shape {z.shape} and "
            f"theta of shape {theta.shape}, got {delta.shape}"
        )
    problem = layer.shape_problem(inputs, units, parameters)
    if problem is not None:
        raise CaseError(problem)
    return z, theta, delta


LAYOUTS = ("auto", "full", "columns", "probes")
KINK_MODES = ("report", "subgradient")


@dataclass(frozen=True)
class Options:
    oracles: tuple[str, ...]
    finite_differences: str
    probes: int
    kinks: str


def check_options(
    oracles: Sequence[str], finite_differences: str, probes: int, kinks: str
) -> Options:
    if isinstance(oracles, str) or not isinstance(oracles, Sequence):
        raise GradcheckError(f"oracles must be a sequence of oracle names, got {oracles!r:.80}")
    for name in oracles:
        if name not in ORACLES:
            raise UnknownNameError("oracle", name, list(ORACLES))
    if not isinstance(finite_differences, str) or finite_differences not in LAYOUTS:
        raise GradcheckError(
            "finite_differences must be 'auto', 'full', 'columns' or 'probes', "
            f"got {finite_differences!r}"
        )
    if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
        raise GradcheckError(f"probes must be a positive integer, got {probes!r}")
    if not isinstance(kinks, str) or kinks not in KINK_MODES:
        raise GradcheckError(f"kinks must be 'report' or 'subgradient', got {kinks!r}")
    return Options(tuple(oracles), finite_differences, probes, kinks)
