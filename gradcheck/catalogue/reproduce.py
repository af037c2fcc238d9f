"""Reproduction snippets: a few lines of Python that rebuild a case exactly and check it."""

from __future__ import annotations

from typing import Any

import numpy as np

from gradcheck.catalogue.activations import ACTIVATIONS, resolve_activation
from gradcheck.catalogue.cases import Case
from gradcheck.catalogue.layers import LAYER_TYPES, resolve_layer_type


def _array(values: np.ndarray) -> str:
    # repr of a float64 round-trips exactly, and float32 values are exact in float64.
    rows = ", ".join("[" + ", ".join(repr(float(x)) for x in row) + "]" for row in values)
    return f"np.array([{rows}], dtype=np.{values.dtype.name})"


def reproduction(case: Case, diagnosis: Any = None) -> str:
    """Python source that rebuilds `case` bit for bit and prints the check's verdict.

    diagnosis, the failure's `Diagnosis` (or its class name), is stated in a comment: the
    diagnosis of a catalogue case reads that case alone, so checking it again names the
    same class (the printed message ends with it)."""
    layer = resolve_layer_type(case.layer_type)
    activation = resolve_activation(case.activation)
    lines = ["import numpy as np", "import gradcheck", ""]
    if diagnosis is not None:
        kind = getattr(diagnosis, "kind", diagnosis)
        lines.insert(0, f"# gradcheck's diagnosis: {kind} (the check below names it again)")
    if LAYER_TYPES.get(layer.name) is layer:
        layer_source = repr(layer.name)
    else:
        lines.insert(0, f"# layer type {layer.name!r} is not in the catalogue: pass your LayerType")
        layer_source = "my_layer_type"
    if ACTIVATIONS.get(activation.name) == activation:
        activation_source = repr(activation.name)
    elif (
        activation.name in ACTIVATIONS
        and activation.parameter is not None
        and ACTIVATIONS[activation.name].with_parameter(activation.parameter) == activation
    ):
        activation_source = (
            f"gradcheck.ACTIVATIONS[{activation.name!r}].with_parameter({activation.parameter!r})"
        )
    else:
        lines.insert(0, f"# activation {activation.label!r} is not in the catalogue: pass yours")
        activation_source = "my_activation"
    lines += [
        "case = gradcheck.Case(",
        f"    layer_type={layer_source},",
        f"    activation={activation_source},",
        f"    z={_array(np.asarray(case.z))},",
        f"    theta={_array(np.asarray(case.theta))},",
        f"    delta={_array(np.asarray(case.delta))},",
        ")",
        "print(gradcheck.check(case).message)",
    ]
    return "\n".join(lines)
