"""gradcheck: prove hand-written neural-network gradients right, or shrink the proof that
they are wrong to a case small enough to read.

The package, bottom to top (each layer imports only those below it; each subpackage's
docstring says what lives there and what it may import):

- `errors`: the exception classes; imports nothing of the package.
- `core/`: the error model (Tracked and its rules), the compact product, comparisons and
  result types; no hypothesis, no pytest, no I/O.
- `diagnosis/`: the diagnosis classes and the evidence for both engines.
- `report/`: report.json (the source of truth), Markdown, HTML with figures.
- `catalogue/`: activations, layer types, losses, networks and the catalogue's checker.
- `user/`: check_backward and friends, the engine that checks a user's own layer.
- entry points: `strategies/` (public hypothesis strategies), `campaign` and `cli/` (the
  gradcheck command; `__main__` for python -m), `pytest_plugin` (the pytest11 plugin),
  `profiles` (hypothesis settings profiles).

Importing this package is cheap: numpy, autograd and hypothesis load only when a name
that needs them is first used (the pytest plugin imports gradcheck in every test run of
every project that installs it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Every exception class the README names (errors.py imports nothing: cheap).
from gradcheck.errors import (
    AliasedOutputError,
    CoupledLayerError,
    GradcheckError,
    GradientMismatch,
    InputMutationError,
    NondeterministicError,
    NonFiniteOutputError,
    SignatureError,
    UnknownNameError,
    UsageError,
    UserCodeError,
    UserOutputError,
    UserTimeoutError,
)

__version__ = "0.1.0"

#: public name -> module that defines it, imported on first use
_LAZY = {
    "check": "gradcheck.catalogue.checker",
    "check_many": "gradcheck.catalogue.checker",
    "Case": "gradcheck.catalogue.checker",
    "CheckResult": "gradcheck.catalogue.checker",
    "Comparison": "gradcheck.catalogue.checker",
    "Verdict": "gradcheck.catalogue.checker",
    "ACTIVATIONS": "gradcheck.catalogue.activations",
    "Activation": "gradcheck.catalogue.activations",
    "LAYER_TYPES": "gradcheck.catalogue.layers",
    "LayerType": "gradcheck.catalogue.layers",
    "check_backward": "gradcheck.user.api",
    "check_backward_cached": "gradcheck.user.api",
    "check_layer_object": "gradcheck.user.api",
    "check_unit_jacobian": "gradcheck.user.api",
    "LayerCheck": "gradcheck.user.summary",
    "ObjectLayer": "gradcheck.user.adapters",
    "LOSSES": "gradcheck.catalogue.losses",
    "Loss": "gradcheck.catalogue.losses",
    "Network": "gradcheck.catalogue.network",
    "NetworkLayer": "gradcheck.catalogue.network",
    "backpropagate": "gradcheck.catalogue.network",
    "check_network": "gradcheck.catalogue.network_checker",
    "check_networks": "gradcheck.catalogue.network_checker",
    "NetworkResult": "gradcheck.catalogue.network_checker",
    "LayerResult": "gradcheck.catalogue.network_checker",
    "DIAGNOSIS_CLASSES": "gradcheck.diagnosis.names",
}

__all__ = [
    "ACTIVATIONS",
    "DIAGNOSIS_CLASSES",
    "LAYER_TYPES",
    "LOSSES",
    "Activation",
    "AliasedOutputError",
    "Case",
    "CheckResult",
    "Comparison",
    "CoupledLayerError",
    "GradcheckError",
    "GradientMismatch",
    "InputMutationError",
    "LayerCheck",
    "LayerResult",
    "LayerType",
    "Loss",
    "Network",
    "NetworkLayer",
    "NetworkResult",
    "NonFiniteOutputError",
    "NondeterministicError",
    "ObjectLayer",
    "SignatureError",
    "UnknownNameError",
    "UsageError",
    "UserCodeError",
    "UserOutputError",
    "UserTimeoutError",
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
    from gradcheck.catalogue.activations import ACTIVATIONS, Activation
    from gradcheck.catalogue.checker import (
        Case,
        CheckResult,
        Comparison,
        Verdict,
        check,
        check_many,
    )
    from gradcheck.catalogue.layers import LAYER_TYPES, LayerType
    from gradcheck.catalogue.losses import LOSSES, Loss
    from gradcheck.catalogue.network import Network, NetworkLayer, backpropagate
    from gradcheck.catalogue.network_checker import (
        LayerResult,
        NetworkResult,
        check_network,
        check_networks,
    )
    from gradcheck.diagnosis.names import DIAGNOSIS_CLASSES
    from gradcheck.user.adapters import ObjectLayer
    from gradcheck.user.api import (
        check_backward,
        check_backward_cached,
        check_layer_object,
        check_unit_jacobian,
    )
    from gradcheck.user.summary import LayerCheck


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gradcheck' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
