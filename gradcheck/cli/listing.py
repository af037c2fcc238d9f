"""`gradcheck list`: the catalogue's layer types and activations, as a table or as JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gradcheck.catalogue.activations import ACTIVATIONS
from gradcheck.catalogue.layers import LAYER_TYPES
from gradcheck.cli.exits import OK


def catalogue() -> dict[str, list[dict[str, Any]]]:
    """The catalogue as plain data."""
    layers = [
        {
            "name": layer.name,
            "formula": layer.formula,
            "coupled": layer.coupled,
            "rank_one": layer.rank_one is not None,
            "uses_activation": layer.uses_activation,
            "square": layer.square,
            "kinks": layer.kinks,
        }
        for layer in LAYER_TYPES.values()
    ]
    activations = [
        {
            "name": activation.name,
            "kinks": list(activation.kinks),
            "domain": list(activation.domain),
            "parameter": activation.parameter,
            "parameter_range": activation.parameter_range and list(activation.parameter_range),
        }
        for activation in ACTIVATIONS.values()
    ]
    return {"layer_types": layers, "activations": activations}


def command_list(arguments: argparse.Namespace) -> int:
    """`gradcheck list`: the catalogue as a table or as JSON."""
    data = catalogue()
    if arguments.format == "json":
        print(json.dumps(data, indent=2))
        return OK
    print("layer types")
    print(f"  {'name':<16} {'coupled':<8} {'rank-one':<9} {'kinks':<28} formula")
    for layer in data["layer_types"]:
        coupled = "yes" if layer["coupled"] else "no"
        rank_one = "yes" if layer["rank_one"] else "no"
        name, kinks = layer["name"], layer["kinks"]
        print(f"  {name:<16} {coupled:<8} {rank_one:<9} {kinks:<28} {layer['formula']}")
    print("\nactivations")
    print(f"  {'name':<14} {'kinks':<14} {'domain':<22} parameter")
    for activation in data["activations"]:
        kinks = ", ".join(f"{k:g}" for k in activation["kinks"]) or "none"
        domain = "[{:g}, {:g}]".format(*activation["domain"])
        parameter = (
            ""
            if activation["parameter"] is None
            else (
                f"{activation['parameter']:g} (drawn from [{activation['parameter_range'][0]:g}, "
                f"{activation['parameter_range'][1]:g}])"
            )
        )
        print(f"  {activation['name']:<14} {kinks:<14} {domain:<22} {parameter}")
    return OK
