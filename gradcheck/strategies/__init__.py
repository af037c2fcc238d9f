"""Hypothesis strategies for gradcheck's cases, built to shrink to readable counterexamples.

Compose them in your own tests::

    from hypothesis import given
    from gradcheck import strategies as gst

    @given(gst.cases(layer_types=["dense"], activations=["tanh", "gelu"]))
    def test_my_catalogue_row(case):
        gst.assert_gradients_correct(case)

Every strategy shrinks towards the simplest case: the first layer type (dense), the first
activation (identity), I = J = N = 1, float64, and values of 1. Values come from one byte
each: in the table (`VALUES`) byte 0 is 1.0, small bytes are small integers and halves of
either sign, the rest irregular magnitudes in [1/8, 8], so a shrunk counterexample reads
like a textbook example while a random draw has non-symmetric weights, random δ and
scales away from 1; half of the z and θ arrays are drawn instead over every octave of
(-64, 64), near its edges or near-tied (`gradcheck.core.values.domain_values`), where
overflow and cancellation live. Pre-activations are placed clear of kinks by construction (see
`LayerType.clear_of_kinks`), never by rejection.

What lives here (every public name is re-exported from this package):

- `rows`: `activations`, `layer_types`, `dtypes`, and the argument checks all share;
- `layer_cases`: `cases` and `case_stacks` of one layer, decoded from bytes;
- `network_cases`: `networks` and `network_stacks`, whole networks with a loss;
- `steering`: `assert_gradients_correct`, checking inside a hypothesis test.

Its modules may import errors, core, catalogue and profiles (and hypothesis and numpy);
nothing of user, diagnosis, report, campaign or cli.
"""

from __future__ import annotations

from gradcheck import profiles
from gradcheck.core.values import VALUES
from gradcheck.strategies.layer_cases import case_stacks, cases
from gradcheck.strategies.network_cases import network_stacks, networks
from gradcheck.strategies.rows import activations, dtypes, layer_types
from gradcheck.strategies.steering import assert_gradients_correct

__all__ = [
    "VALUES",
    "activations",
    "assert_gradients_correct",
    "case_stacks",
    "cases",
    "dtypes",
    "layer_types",
    "network_stacks",
    "networks",
]

profiles.register()
