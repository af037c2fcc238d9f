"""gradcheck: prove hand-written neural-network gradients right, or shrink the proof that
they are wrong to a case small enough to read.

Importing this package is cheap: numpy, autograd and hypothesis load only when a name
that needs them is first used (the pytest plugin imports gradcheck in every test run of
every project that installs it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gradcheck.errors import GradcheckError, UnknownNameError

__version__ = "0.1.0"

#: public name -> module that defines it, imported on first use
_LAZY = {
    "check": "gradcheck.checker",
    "Case": "gradcheck.checker",
    "CheckResult": "gradcheck.checker",
    "Comparison": "gradcheck.checker",
    "Verdict": "gradcheck.checker",
    "ACTIVATIONS": "gradcheck.activations",
    "Activation": "gradcheck.activations",
    "LAYER_TYPES": "gradcheck.layers",
    "LayerType": "gradcheck.layers",
    "LOSSES": "gradcheck.losses",
    "Loss": "gradcheck.losses",
    "Network": "gradcheck.network",
    "NetworkLayer": "gradcheck.network",
    "backpropagate": "gradcheck.network",
    "check_network": "gradcheck.network_checker",
    "check_networks": "gradcheck.network_checker",
    "NetworkResult": "gradcheck.network_checker",
    "LayerResult": "gradcheck.network_checker",
}

__all__ = [
    "ACTIVATIONS",
    "LAYER_TYPES",
    "LOSSES",
    "Activation",
    "Case",
    "CheckResult",
    "Comparison",
    "GradcheckError",
    "LayerResult",
    "LayerType",
    "Loss",
    "Network",
    "NetworkLayer",
    "NetworkResult",
    "UnknownNameError",
    "Verdict",
    "__version__",
    "backpropagate",
    "check",
    "check_network",
    "check_networks",
]

if TYPE_CHECKING:
    from gradcheck.activations import ACTIVATIONS, Activation
    from gradcheck.checker import Case, CheckResult, Comparison, Verdict, check
    from gradcheck.layers import LAYER_TYPES, LayerType
    from gradcheck.losses import LOSSES, Loss
    from gradcheck.network import Network, NetworkLayer, backpropagate
    from gradcheck.network_checker import (
        LayerResult,
        NetworkResult,
        check_network,
        check_networks,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gradcheck' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
