"""The row of the layer table: `LayerType`, what a layer type declares, and the shape check.

A layer maps a batch of inputs z (N × I) to outputs f (N × J) with parameters θ (J × P),
row j = θʲ the parameters of output unit j. A `LayerType` names the layer's forward and
hand-written Jacobians and declares its partition of θ, its coupling and the shapes it
accepts; `gradcheck.catalogue.layers` holds the table of them. The record lives apart from
the table so that the table's module is the rules and the rows, and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.catalogue.activations import Activation

Forward = Callable[[Any, Any, Activation], Any]
RankOne = Callable[[Any, Any, Activation], tuple[Any, Any]]


@dataclass(frozen=True)
class LayerType:
    """A family f(z; θ) with its per-unit parameter partition and hand-written Jacobians.

    parameters_per_unit(I) is P for I inputs; accepts_parameters(I, P), when given,
    widens that to a family of valid P (maxout's number of pieces). square layers need
    I = J. coupled layers break the block-diagonal precondition; min_units is the
    smallest J at which they do. parameter_gradient(δ, B), when given, is a hand-written
    way of forming A from δ and B in place of `gradcheck.core.compact.compact_gradient`.

    Two fields serve the generators. clear_of_kinks(z, θ, φ) gets z and θ as Tracked
    arrays whose error is the finite-difference step and returns θ moved so that no
    pre-activation lies within twice its uncertainty of a kink (None: the layer cannot,
    so generators pair it only with smooth activations). positive_columns are columns of
    θ that must be positive (rbf widths).

    Two fields serve explanations of failures: preactivation(z, θ), the argument of the
    activation (N × J), and bias_columns(I, P), the columns of θ that hold biases.
    """

    name: str
    formula: str
    forward: Forward
    unit_jacobian: Forward
    input_jacobian: Forward
    parameters_per_unit: Callable[[int], int]
    rank_one: RankOne | None = None
    coupled: bool = False
    uses_activation: bool = True
    square: bool = False
    min_units: int = 1
    accepts_parameters: Callable[[int, int], bool] | None = None
    kinks: str = "the activation's"
    parameter_gradient: Callable[[Any, Any], Any] | None = None
    clear_of_kinks: Callable[[Any, Any, Activation], np.ndarray] | None = None
    positive_columns: tuple[int, ...] = ()
    preactivation: Callable[[Any, Any], Any] | None = None
    bias_columns: Callable[[int, int], tuple[int, ...]] = lambda inputs, parameters: ()

    def __repr__(self) -> str:
        return f"LayerType({self.name!r})"

    def shape_problem(self, inputs: int, units: int, parameters: int) -> str | None:
        """Why (I, J, P) is not a valid shape for this layer type, or None."""
        if self.square and inputs != units:
            return f"{self.name} needs as many inputs as units, got I={inputs}, J={units}"
        if units < self.min_units:
            return f"{self.name} needs at least {self.min_units} units, got J={units}"
        expected = self.parameters_per_unit(inputs)
        ok = (
            self.accepts_parameters(inputs, parameters)
            if self.accepts_parameters is not None
            else parameters == expected
        )
        if not ok:
            return (
                f"theta must have {expected} columns for {self.name} with I={inputs} "
                f"(one row of per-unit parameters θʲ per unit), got {parameters}"
            )
        return None
