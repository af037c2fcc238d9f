"""Test-only construction of concrete cases from a numpy random generator.

Values are scaled away from 1 and δ is random, so that transposition, sign and scale bugs
cannot hide behind symmetric or unit data.
"""

from __future__ import annotations

import numpy as np

from gradcheck import Case
from gradcheck.catalogue.layers import LAYER_TYPES, LayerType


def random_case(
    layer_type: str | LayerType,
    activation: str | None = None,
    *,
    dtype: type = np.float64,
    batch: int = 3,
    inputs: int = 4,
    units: int = 3,
    scale: float = 1.5,
    seed: int = 0,
) -> Case:
    layer = LAYER_TYPES[layer_type] if isinstance(layer_type, str) else layer_type
    rng = np.random.default_rng(seed)
    if layer.square:
        units = inputs
    parameters = layer.parameters_per_unit(inputs)
    z = rng.normal(size=(batch, inputs)) * scale
    theta = rng.normal(size=(units, parameters)) * scale
    if layer.name == "rbf":
        theta[:, -1] = rng.uniform(0.2, 1.0, size=units)  # widths γ > 0
    delta = rng.normal(size=(batch, units))
    return Case(
        layer_type=layer,
        activation=activation,
        z=z.astype(dtype),
        theta=theta.astype(dtype),
        delta=delta.astype(dtype),
    )
