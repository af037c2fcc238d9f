"""The catalogue of activations: φ, its hand-written derivative φ', its kinks, its domain.

Each row of `ACTIVATIONS` is one activation, written the way autograd keeps its derivative
rules: the function beside a one-line rule for its derivative. φ is written with
autograd.numpy so that autograd can differentiate it; φ' receives x and y = φ(x), because
most derivatives are cheapest in terms of the output (σ' = y(1 - y), tanh' = 1 - y²).
Parametric rows (leaky_relu's slope, elu's α) take the parameter last.

Adding an activation is adding a row. Keep it smooth between its declared kinks: the
error model records a case whose pre-activation lies within its uncertainty of a kink as
non-differentiable, so a row must write smooth functions with smooth primitives
(`logaddexp` rather than a branch on the sign) and declare every real kink.
Constants are Python floats so that float32 inputs stay float32 (NEP 50).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import autograd.numpy as anp
import numpy as np
from autograd import elementwise_grad
from autograd.scipy.special import erf

from gradcheck.catalogue.tables import resolve, table
from gradcheck.core.tolerance import Tracked, record


@dataclass(frozen=True)
class Activation:
    """A scalar function φ with its hand-written derivative.

    phi(x[, p]) is φ written with autograd.numpy; dphi(x, y[, p]) is φ'(x) given
    y = φ(x). kinks are the points where φ is not differentiable; domain is the interval
    of pre-activations on which φ and φ' are finite and meaningful in float32 and float64.
    parameter is the value of a parametric activation's parameter (None for the others)
    and parameter_range the interval strategies draw it from.
    """

    name: str
    phi: Callable[..., Any]
    dphi: Callable[..., Any]
    kinks: tuple[float, ...] = ()
    domain: tuple[float, float] = (-1e6, 1e6)
    parameter: float | None = None
    parameter_range: tuple[float, float] | None = None

    def __repr__(self) -> str:
        return f"Activation({self.label!r})"

    @property
    def label(self) -> str:
        """The name, with the parameter when there is one: ``leaky_relu(-0.2)``."""
        return self.name if self.parameter is None else f"{self.name}({self.parameter:g})"

    def with_parameter(self, parameter: float) -> Activation:
        """The same activation with another parameter value."""
        if self.parameter is None:
            raise TypeError(f"activation {self.name!r} takes no parameter")
        return replace(self, parameter=float(parameter))

    def __call__(self, x: Any) -> Any:
        """φ(x)."""
        self._check(x)
        args = () if self.parameter is None else (self.parameter,)
        return _like(self.phi(x, *args), x)

    def derivative(self, x: Any) -> Any:
        """φ'(x), by the hand-written rule."""
        self._check(x)
        args = () if self.parameter is None else (self.parameter,)
        y = self.phi(x, *args)
        slope = _like(self.dphi(x, y, *args), x)
        if isinstance(x, Tracked) and self.kinks:
            return self._across_kinks(x, slope)
        return slope

    def _across_kinks(self, x: Tracked, slope: Tracked) -> Tracked:
        """φ'(x) where x lies within its error e of a kink: the rounding that made x may
        have put it on either side, so φ' is uncertain by how far the true slope moves
        over [x - e, x + e], max(|φ'(x - e) - φ'(x)|, |φ'(x + e) - φ'(x)|) (the jump, for a
        piecewise-linear row), with φ' differentiated from φ by autograd (not the rule
        under test, which must not set its own tolerance). The rounded x can land on a
        side the exact one never reaches: cos(z, w) = 1 - 4e-8 rounds to 1.0 in float32,
        where hard_tanh' is 0, while the true slope is 1 and no step of z makes the
        cosine exceed 1."""
        value = x.value.astype(np.float64)
        error = np.broadcast_to(x.error, value.shape)
        near = np.logical_or.reduce([self._near(x, kink) for kink in self.kinks])
        if not near.any():
            return slope
        args = () if self.parameter is None else (self.parameter,)
        true_slope = elementwise_grad(lambda t: self.phi(t, *args))
        centre = true_slope(value[near])
        spread = np.zeros(value.shape)
        for end in (value[near] - error[near], value[near] + error[near]):
            spread[near] = np.maximum(spread[near], np.abs(true_slope(end) - centre))
        return Tracked(slope.value, slope.error + spread)

    @staticmethod
    def _near(x: Tracked, kink: float) -> np.ndarray:
        """Where x lies within its error of the kink (either side may be the true one)."""
        return np.asarray(np.abs(x.value.astype(np.float64) - kink) <= x.error)

    def _check(self, x: Any) -> None:
        """On Tracked input, record kinks and domain exits that lie within the error."""
        if not isinstance(x, Tracked):
            return
        value = x.value.astype(np.float64)
        for kink in self.kinks:
            record("kink", f"{self.label} kink at {kink:g}", self._near(x, kink), value, x.error)
        low, high = self.domain
        record(
            "domain",
            f"{self.label} outside its domain [{low:g}, {high:g}]",
            (value < low) | (value > high),
            value,
            x.error,
        )


def _like(result: Any, x: Any) -> Any:
    """Return result in x's dtype (piecewise constants must not promote float32 to
    float64), and Tracked when x is (an exact constant such as identity's φ' = 1)."""
    if isinstance(x, Tracked) and not isinstance(result, Tracked):
        result = Tracked(np.asarray(result))
    dtype = getattr(x, "dtype", None)
    if isinstance(result, Tracked | np.ndarray) and dtype is not None and result.dtype != dtype:
        return result.astype(dtype)
    return result


def _ones(x: Any) -> Any:
    """Ones shaped like x; Tracked when x is, so that constants multiplied into them
    (a leaky slope, 1/6) have their rounding to x's dtype tracked."""
    if isinstance(x, Tracked):
        return Tracked(np.ones_like(x.value))
    return anp.ones_like(x)


def _sigmoid(x: Any) -> Any:
    """σ(x) = 1 / (1 + e^-x) = exp(-log(1 + e^-x)), finite and accurate for every x."""
    return anp.exp(-anp.logaddexp(0.0, -x))


def _softplus(x: Any) -> Any:
    return anp.logaddexp(0.0, x)


_SELU_SCALE = 1.0507009873554804934193349852946
_SELU_ALPHA = 1.6732632423543772848170429916717
_ROOT_2 = math.sqrt(2.0)
_ROOT_2_PI = math.sqrt(2.0 * math.pi)
_GELU_TANH_SCALE = math.sqrt(2.0 / math.pi)
_GELU_TANH_CUBIC = 0.044715


def _gelu_tanh_inner(x: Any) -> Any:
    return anp.tanh(_GELU_TANH_SCALE * (x + _GELU_TANH_CUBIC * x * x * x))


# fmt: off
ACTIVATIONS: Mapping[str, Activation] = table(
    "activation",
    #          name           φ(x)                                   φ'(x), given y = φ(x)
    Activation("identity",    lambda x: x,                           lambda x, y: _ones(x)),
    Activation("sigmoid",     _sigmoid,                              lambda x, y: y * (1.0 - y),
               domain=(-700.0, 700.0)),
    Activation("tanh",        anp.tanh,                              lambda x, y: 1.0 - y * y),
    Activation("relu",        lambda x: anp.maximum(x, 0.0),         lambda x, y: anp.where(x > 0, _ones(x), 0.0 * x),
               kinks=(0.0,)),
    Activation("leaky_relu",  lambda x, a: anp.where(x > 0, x, a * x),
                                                                     lambda x, y, a: anp.where(x > 0, _ones(x), a * _ones(x)),
               kinks=(0.0,), parameter=0.01, parameter_range=(-2.0, 2.0)),
    Activation("elu",         lambda x, a: anp.where(x > 0, x, a * anp.expm1(anp.minimum(x, 0.0))),
                                                                     lambda x, y, a: anp.where(x > 0, _ones(x), a * anp.exp(anp.minimum(x, 0.0))),
               kinks=(0.0,), parameter=1.0, parameter_range=(0.1, 3.0)),
    Activation("selu",        lambda x: _SELU_SCALE * anp.where(x > 0, x, _SELU_ALPHA * anp.expm1(anp.minimum(x, 0.0))),
                                                                     lambda x, y: _SELU_SCALE * anp.where(x > 0, _ones(x), _SELU_ALPHA * anp.exp(anp.minimum(x, 0.0))),
               kinks=(0.0,)),
    Activation("softplus",    _softplus,                             lambda x, y: _sigmoid(x)),
    Activation("softsign",    lambda x: x / (1.0 + anp.abs(x)),      lambda x, y: 1.0 / ((1.0 + anp.abs(x)) * (1.0 + anp.abs(x)))),
    Activation("silu",        lambda x: x * _sigmoid(x),             lambda x, y: _sigmoid(x) * (1.0 + x * (1.0 - _sigmoid(x)))),
    Activation("gelu",        lambda x: 0.5 * x * (1.0 + erf(x / _ROOT_2)),
                                                                     lambda x, y: 0.5 * (1.0 + erf(x / _ROOT_2)) + x * anp.exp(-0.5 * x * x) / _ROOT_2_PI),
    Activation("gelu_tanh",   lambda x: 0.5 * x * (1.0 + _gelu_tanh_inner(x)),
                                                                     lambda x, y: 0.5 * (1.0 + _gelu_tanh_inner(x)) + 0.5 * x * (1.0 - _gelu_tanh_inner(x) ** 2) * _GELU_TANH_SCALE * (1.0 + 3.0 * _GELU_TANH_CUBIC * x * x),
               domain=(-1e4, 1e4)),
    Activation("mish",        lambda x: x * anp.tanh(_softplus(x)),  lambda x, y: anp.tanh(_softplus(x)) + x * (1.0 - anp.tanh(_softplus(x)) ** 2) * _sigmoid(x)),
    Activation("sin",         anp.sin,                               lambda x, y: anp.cos(x),
               domain=(-1e3, 1e3)),
    Activation("arctan",      anp.arctan,                            lambda x, y: 1.0 / (1.0 + x * x)),
    Activation("square",      lambda x: x * x,                       lambda x, y: 2.0 * x),
    Activation("cube",        lambda x: x * x * x,                   lambda x, y: 3.0 * x * x,
               domain=(-1e4, 1e4)),
    Activation("abs",         anp.abs,                               lambda x, y: anp.sign(x),
               kinks=(0.0,)),
    Activation("hard_tanh",   lambda x: anp.clip(x, -1.0, 1.0),      lambda x, y: anp.where((x > -1.0) & (x < 1.0), _ones(x), 0.0 * x),
               kinks=(-1.0, 1.0)),
    Activation("relu6",       lambda x: anp.clip(x, 0.0, 6.0),       lambda x, y: anp.where((x > 0.0) & (x < 6.0), _ones(x), 0.0 * x),
               kinks=(0.0, 6.0)),
    Activation("hard_sigmoid", lambda x: anp.clip(x / 6.0 + 0.5, 0.0, 1.0),
                                                                     lambda x, y: anp.where((x > -3.0) & (x < 3.0), _ones(x) / 6.0, 0.0 * x),
               kinks=(-3.0, 3.0)),
    Activation("gaussian",    lambda x: anp.exp(-x * x),             lambda x, y: -2.0 * x * y),
    Activation("log_sigmoid", lambda x: -anp.logaddexp(0.0, -x),     lambda x, y: _sigmoid(-x)),
)
# fmt: on


def resolve_activation(activation: str | Activation | None) -> Activation:
    """An Activation from a row name, an Activation, or None (identity)."""
    if activation is None:
        return ACTIVATIONS["identity"]
    return resolve("activation", ACTIVATIONS, Activation, activation)
