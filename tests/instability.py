"""Numerical-instability bugs (issue 16), each beside its stable twin, and how often a
seeded search catches one.

Every entry is a layer whose arithmetic breaks only in part of its declared domain: an
exponential that overflows, a shift by the wrong maximum, a power of a norm that
underflows. The forward is finite there (except `softmax_global_forward`, whose forward is
itself what breaks); the wrong backward returns NaN or inf. Written here for issue 16,
after the most reported gradient bugs of their kind (the zoo, tests/zoo/bugs.py, has the
reports).

`catch(bug, backward, seed)` runs `gradcheck.check_backward` once, derandomized under a
name that holds `seed` (hypothesis derives a derandomized run's random stream from the
test's digest, which includes the layer's name: a seed per name, each run repeatable),
with hypothesis's default number of examples and no example database, and says
what happened: "mismatch:<diagnosis>", "unstable:<diagnosis>" (the forward itself turned
non-finite: `NonFiniteOutputError`), "pass", or another exception's class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import autograd.numpy as anp
import numpy as np
from hypothesis import HealthCheck, settings

import gradcheck

#: hypothesis's default max_examples (settings.default): "within the default number".
DEFAULT_EXAMPLES = 100
WIDE = [(-2000.0, 2000.0)]


@dataclass(frozen=True)
class Instability:
    name: str
    forward: Callable[..., Any]
    wrong: Callable[..., Any]
    right: Callable[..., Any]
    signature: str
    options: Mapping[str, Any] = field(default_factory=dict)
    #: what catching it looks like: "mismatch:non-finite" or "unstable:non-finite"
    caught_as: str = "mismatch:non-finite"
    #: the stable twin's forward where the forward itself is what breaks (else forward)
    right_forward: Callable[..., Any] | None = None

    @property
    def twin_forward(self) -> Callable[..., Any]:
        return self.right_forward if self.right_forward is not None else self.forward


def sigmoid(x):
    return 0.5 * (anp.tanh(0.5 * x) + 1.0)


def sigmoid_exp_wrong(dout, x):
    """σ'(x) = e^-x / (1 + e^-x)²: e^-x overflows below x ≈ -709.8 (float64), inf/inf."""
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(-x)
        return (dout * e / (1.0 + e) ** 2,)


def sigmoid_right(dout, x):
    s = sigmoid(x)
    return (dout * s * (1.0 - s),)


def softmax_rows(x):
    e = anp.exp(x - anp.max(x, axis=1, keepdims=True))
    return e / anp.sum(e, axis=1, keepdims=True)


def softmax_global(x):
    """Shifted by the batch's maximum: a row far below it underflows to 0/0."""
    e = anp.exp(x - anp.max(x))
    return e / anp.sum(e, axis=1, keepdims=True)


def _softmax_vjp(p, dout):
    return p * (dout - np.sum(dout * p, axis=1, keepdims=True))


def softmax_global_wrong(dout, x):
    with np.errstate(all="ignore"):
        return (_softmax_vjp(softmax_global(x), dout),)


def softmax_right(dout, x):
    return (_softmax_vjp(softmax_rows(x), dout),)


def softplus(x):
    return anp.logaddexp(0.0, x)


def softplus_exp_wrong(dout, x):
    """softplus'(x) = e^x / (1 + e^x): inf/inf above x ≈ 709.8."""
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x)
        return (dout * e / (1.0 + e),)


def softplus_right(dout, x):
    return (dout * sigmoid(x),)


def tanh_layer(x):
    return anp.tanh(x)


def tanh_exp_wrong(dout, x):
    """tanh'(x) = 1 - ((e^x - e^-x) / (e^x + e^-x))²: inf/inf beyond |x| ≈ 709.8."""
    with np.errstate(over="ignore", invalid="ignore"):
        t = (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))
        return (dout * (1.0 - t * t),)


def tanh_right(dout, x):
    t = np.tanh(x)
    return (dout * (1.0 - t * t),)


def normalize(x):
    """x / ‖x‖ per row, the norm taken after scaling by the row's largest |x| so that it
    neither overflows nor underflows."""
    m = anp.max(anp.abs(x), axis=1, keepdims=True)
    y = x / m
    return y / anp.sqrt(anp.sum(y * y, axis=1, keepdims=True))


def _norm(x):
    m = np.max(np.abs(x), axis=1, keepdims=True)
    return m * np.sqrt(np.sum((x / m) ** 2, axis=1, keepdims=True))


def normalize_cubed_wrong(dout, x):
    """dx = dout/‖x‖ - x (x·dout)/‖x‖³: ‖x‖³ underflows to 0 for ‖x‖ below ~1e-103,
    which only rows of tiny values (the tiny regime) reach. There finite differences cannot
    resolve x/‖x‖ (gradcheck.user.finite.blind_below_step) and autograd's gradient of this
    forward is not finite either (it divides by m²): the NaN is caught as non-finite where
    no reference resolves the entry."""
    n = _norm(x)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return (dout / n - x * np.sum(x * dout, axis=1, keepdims=True) / n**3,)


def normalize_right(dout, x):
    n = _norm(x)
    y = x / n
    return ((dout - y * np.sum(y * dout, axis=1, keepdims=True)) / n,)


def dense_sigmoid(x, w, b):
    return sigmoid(anp.dot(x, w) + b)


def dense_sigmoid_exp_wrong(dout, x, w, b):
    """The sigmoid's e^-a / (1 + e^-a)² after a dense map: e^-a overflows below a ≈ -88.7
    in float32."""
    a = x @ w + b
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(-a)
        slope = dout * e / (1.0 + e) ** 2
    return slope @ w.T, x.T @ slope, slope.sum(axis=0)


def dense_sigmoid_right(dout, x, w, b):
    s = dense_sigmoid(x, w, b)
    slope = dout * s * (1.0 - s)
    return slope @ w.T, x.T @ slope, slope.sum(axis=0)


BUGS = (
    Instability("sigmoid_exp_overflow", sigmoid, sigmoid_exp_wrong, sigmoid_right,
                "(n,i)->(n,i)", {"bounds": WIDE}),
    Instability("softmax_global_max_backward", softmax_rows, softmax_global_wrong,
                softmax_right, "(n,j)->(n,j)", {"bounds": WIDE}),
    Instability("softmax_global_max_forward", softmax_global, softmax_global_wrong,
                softmax_right, "(n,j)->(n,j)", {"bounds": WIDE}, "unstable:non-finite",
                softmax_rows),
    Instability("softmax_global_max_float32", softmax_rows, softmax_global_wrong,
                softmax_right, "(n,j)->(n,j)", {"dtypes": ("float32",)}),
    Instability("softplus_exp_overflow", softplus, softplus_exp_wrong, softplus_right,
                "(n,i)->(n,i)", {"bounds": WIDE}),
    Instability("tanh_exp_overflow", tanh_layer, tanh_exp_wrong, tanh_right,
                "(n,i)->(n,i)", {"bounds": WIDE}),
    Instability("normalize_norm_cubed_underflow", normalize, normalize_cubed_wrong,
                normalize_right, "(n,i)->(n,i)", {"bounds": [(-64.0, 64.0)]}),
    Instability("dense_sigmoid_exp_overflow_float32", dense_sigmoid, dense_sigmoid_exp_wrong,
                dense_sigmoid_right, "(n,i),(i,j),(j)->(n,j)", {"dtypes": ("float32",)}),
)  # fmt: skip
BY_NAME = {bug.name: bug for bug in BUGS}


def seeded(examples: int) -> Any:
    """The settings of a seeded search: derandomized (seeded by the check's name), no
    database, no deadline, no health check, `examples` examples."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


def catch(bug: Instability, backward: Callable[..., Any], seed: int, **overrides: Any) -> str:
    """One seeded search of `backward` against the bug's forward (its twin's forward for
    its right backward; see the module docstring for what it returns)."""
    forward = bug.twin_forward if backward is bug.right else bug.forward
    options = {**bug.options, **overrides}
    examples = options.pop("max_examples", DEFAULT_EXAMPLES)

    def search() -> None:
        gradcheck.check_backward(
            forward,
            backward,
            signature=bug.signature,
            name=f"{bug.name}#{seed}",  # the name seeds the derandomized search
            settings=seeded(examples),
            **options,
        )

    try:
        search()
    except gradcheck.GradientMismatch as mismatch:
        return f"mismatch:{mismatch.diagnosis}"
    except gradcheck.NonFiniteOutputError as error:
        kind = "non-finite" if "diagnosis: non-finite" in str(error) else "unknown"
        return f"unstable:{kind}"
    except Exception as error:  # reported as its class: the caller decides
        return type(error).__name__
    return "pass"
