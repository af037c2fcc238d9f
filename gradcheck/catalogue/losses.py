"""The catalogue of losses: E = Σ_n e(f_n, y_n) and its hand-written gradient δ^L = ∂E/∂f.

A loss closes a network (`gradcheck.catalogue.network`): f is the last layer's output z^L (N × J),
y the targets (N × J). Each row of `LOSSES` gives e per example, written with
autograd.numpy so that autograd can differentiate the whole network, beside the
hand-written ∂E/∂f that starts backprop, as the activation and layer tables keep a
function beside its derivative. Both broadcast over leading axes and run on `Tracked`
arrays, so the error model bounds their rounding; both are written to stay finite for
any finite f (log-sum-exp and log(1 + e^f) by shifts and logaddexp, never by branches).
The batch is summed, not averaged, as in A = Σ_n diag(δ_n) B_n.

This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import autograd.numpy as anp
import numpy as np

from gradcheck.catalogue.tables import resolve, table
from gradcheck.core.tolerance import value_of


@dataclass(frozen=True)
class Loss:
    """A loss E = Σ_n e(f_n, y_n) over outputs f (N × J) and targets y (N × J).

    forward(f, y) is e per example (…, N); gradient(f, y) the hand-written ∂E/∂f
    (…, N, J). targets says what y holds, for validation and for generators: "values"
    (any reals), "classes" (class indices, or one-hot rows), "binary" (0 or 1 per output).
    """

    name: str
    formula: str
    forward: Callable[[Any, Any], Any]
    gradient: Callable[[Any, Any], Any]
    targets: str

    def __repr__(self) -> str:
        return f"Loss({self.name!r})"


def _plain(x: Any) -> Any:
    """The bare numpy value of x, out of autograd's box and out of Tracked alike."""
    return value_of(value_of(x))


# ---- squared error: e = ½ ‖f - y‖², ∂E/∂f = f - y ---------------------------------------


def _squared_error(f: Any, y: Any) -> Any:
    difference = f - y
    return 0.5 * anp.sum(difference * difference, axis=-1)


def _squared_error_gradient(f: Any, y: Any) -> Any:
    return f - y


# ---- softmax cross-entropy: e = Σ_j y_j (log Σ_k e^f_k - f_j), ∂E/∂f = softmax(f) Σ_j y_j - y


def _log_softmax_parts(f: Any) -> tuple[Any, Any]:
    """exp(f - m) and log Σ_j exp(f_j), with m = max_j f_j: the shift cancels from both
    results, so autograd and the error model see it as the constant it is."""
    shift = np.max(_plain(f), axis=-1, keepdims=True)
    exponentials = anp.exp(f - shift)
    return exponentials, anp.log(anp.sum(exponentials, axis=-1)) + shift[..., 0]


def _softmax_cross_entropy(f: Any, y: Any) -> Any:
    _, log_total = _log_softmax_parts(f)
    return anp.sum(y, axis=-1) * log_total - anp.sum(y * f, axis=-1)


def _softmax_cross_entropy_gradient(f: Any, y: Any) -> Any:
    # Σ_j y_j is 1 for one-hot targets; kept so that the rule is right for any y.
    exponentials, _ = _log_softmax_parts(f)
    softmax = exponentials / np.sum(exponentials, axis=-1, keepdims=True)
    return softmax * np.sum(y, axis=-1, keepdims=True) - y


# ---- logistic (binary cross-entropy on logits): e = Σ_j log(1 + e^f_j) - y_j f_j ------------


def _logistic(f: Any, y: Any) -> Any:
    return anp.sum(anp.logaddexp(0.0, f) - y * f, axis=-1)


def _logistic_gradient(f: Any, y: Any) -> Any:
    return anp.exp(-anp.logaddexp(0.0, -f)) - y  # σ(f) - y, finite for every f


LOSSES: Mapping[str, Loss] = table(
    "loss",
    Loss("squared_error", "½ ‖f - y‖²", _squared_error, _squared_error_gradient, "values"),
    Loss("softmax_cross_entropy", "Σ_j y_j (log Σ_k exp f_k - f_j)",
         _softmax_cross_entropy, _softmax_cross_entropy_gradient, "classes"),
    Loss("logistic", "Σ_j log(1 + exp f_j) - y_j f_j", _logistic, _logistic_gradient, "binary"),
)  # fmt: skip


def resolve_loss(loss: str | Loss) -> Loss:
    """A Loss from a row name or a Loss."""
    return resolve("loss", LOSSES, Loss, loss)
