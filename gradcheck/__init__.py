"""gradcheck: prove hand-written neural-network gradients right, or shrink the proof that
they are wrong to a case small enough to read.

Importing this package is cheap: numpy, autograd and hypothesis load only when a name
that needs them is first used (the pytest plugin imports gradcheck in every test run of
every project that installs it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gradcheck.errors import (
    GradcheckError,
    GradientMismatch,
    UnknownNameError,
    UsageError,
    UserCodeError,
)

__version__ = "0.1.0"

#: public name -> module that defines it, imported on first use
_LAZY = {
    "check": "gradcheck.checker",
    "check_many": "gradcheck.checker",
    "Case": "gradcheck.checker",
    "CheckResult": "gradcheck.checker",
    "Comparison": "gradcheck.checker",
    "Verdict": "gradcheck.checker",
    "ACTIVATIONS": "gradcheck.activations",
    "Activation": "gradcheck.activations",
    "LAYER_TYPES": "gradcheck.layers",
    "LayerType": "gradcheck.layers",
    "check_backward": "gradcheck.user",
    "check_backward_cached": "gradcheck.user",
    "check_layer_object": "gradcheck.user",
    "check_unit_jacobian": "gradcheck.user",
    "LayerCheck": "gradcheck.summary",
    "ObjectLayer": "gradcheck.adapters",
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
    "GradientMismatch",
    "LayerCheck",
    "LayerResult",
    "LayerType",
    "Loss",
    "Network",
    "NetworkLayer",
    "NetworkResult",
    "ObjectLayer",
    "UnknownNameError",
    "UsageError",
    "UserCodeError",
    "Verdict",
    "__version__",
    "backpropagate",
    "check",
    "check_backward",
    "check_backward_cached",
    "check_layer_object",
    "check_many",
    "check_network",
    "check_networks",
    "check_unit_jacobian",
]

if TYPE_CHECKING:
    from gradcheck.activations import ACTIVATIONS, Activation
    from gradcheck.adapters import ObjectLayer
    from gradcheck.checker import Case, CheckResult, Comparison, Verdict, check, check_many
    from gradcheck.layers import LAYER_TYPES, LayerType
    from gradcheck.losses import LOSSES, Loss
    from gradcheck.network import Network, NetworkLayer, backpropagate
    from gradcheck.network_checker import (
        LayerResult,
        NetworkResult,
        check_network,
        check_networks,
    )
    from gradcheck.summary import LayerCheck
    from gradcheck.user import (
        check_backward,
        check_backward_cached,
        check_layer_object,
        check_unit_jacobian,
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
