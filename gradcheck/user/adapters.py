"""Adapters: a user's layer, in the style it was written, as forward(*args) and
backward(dout, *args).

- functional (CS231n style): forward(x, *params) -> out and
  backward(dout, x, *params) -> (dx, *dparams): already in form.
- cached: forward(x, *params) -> (out, cache) and backward(dout, cache) -> (dx, *dparams);
  the forward is re-run before each backward so that every backward sees a fresh cache.
  With several outputs: forward -> (out_0, out_1, ..., cache), backward(dout_0, dout_1,
  ..., cache).
- object: a layer object with forward(x) and backward(dout) that keeps its parameters
  and their gradients as attributes (`ObjectLayer`); with several outputs forward(x)
  returns a tuple and backward takes one dout per output.

In every style the functional backward returns one gradient per differentiated
argument (`wrt`): int and bool arguments (labels, indices, masks) get none.
- unit-Jacobian: forward(z, θ) -> f (N × J) with θ (J × P), and the unit Jacobian
  unit_jacobian(z, θ) -> B (N × J × P), B[n, j] = ∂f_nj/∂θʲ in the seed's notation (and
  optionally input_jacobian(z, θ) -> ∂f/∂z, N × J × I); the gradients are then
  A = Σ_n diag(δ_n) B_n (formula 2) and δ_in = δ · ∂f/∂z (formula 1).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from gradcheck.core import compact
from gradcheck.errors import UsageError, UserOutputError


def qualified_name(function: Any) -> str:
    """module.qualname of a function or class, for reports and messages."""
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None)
    if name is None:
        name = type(function).__qualname__
    return f"{module}.{name}" if module and module != "builtins" else str(name)


def argument_names(function: Callable[..., Any], count: int) -> tuple[str, ...]:
    """The names of a function's first `count` positional parameters (arg0, arg1, ...
    where it has fewer or takes *args)."""
    names: list[str] = []
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        parameters = []  # type: ignore[assignment]
    for parameter in parameters:
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            names.append(parameter.name)
    names = names[:count]
    names += [f"arg{k}" for k in range(len(names), count)]
    return tuple(names)


# ---- cached -------------------------------------------------------------------------------


def _split(result: Any, outputs: int) -> tuple[Any, Any]:
    if not isinstance(result, tuple) or len(result) != outputs + 1:
        expected = "(out, cache)" if outputs == 1 else f"({outputs} outputs, then cache)"
        raise UserOutputError(
            f"forward returned a {type(result).__name__}"
            + (f" of length {len(result)}" if isinstance(result, tuple) else "")
            + f"; check_backward_cached expects a forward that returns {expected}",
            function="forward",
        )
    return (result[0] if outputs == 1 else tuple(result[:-1])), result[-1]


def cached(
    forward: Callable[..., Any], backward: Callable[..., Any], outputs: int = 1
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """forward(*args) -> (*outs, cache), backward(*douts, cache) as functional form."""

    def functional_forward(*arguments: Any) -> Any:
        return _split(forward(*arguments), outputs)[0]

    def functional_backward(*arguments: Any) -> Any:
        _, cache = _split(forward(*arguments[outputs:]), outputs)
        return backward(*arguments[:outputs], cache)

    return functional_forward, functional_backward


# ---- object -------------------------------------------------------------------------------


def _default_gradient_path(path: str) -> str:
    """W -> dW; params.W -> grads.W; params['W'] style paths are written params.W."""
    parts = path.split(".")
    if len(parts) > 1 and parts[-2] == "params":
        return ".".join(parts[:-2] + ["grads", parts[-1]])
    return ".".join(parts[:-1] + ["d" + parts[-1]])


def _resolve(root: Any, path: str) -> tuple[Any, str]:
    """The object holding the last component of a dotted path, and that component."""
    parts = path.split(".")
    holder = root
    for part in parts[:-1]:
        holder = holder[part] if isinstance(holder, Mapping) else getattr(holder, part)
    return holder, parts[-1]


def _get(root: Any, path: str) -> Any:
    holder, last = _resolve(root, path)
    return holder[last] if isinstance(holder, Mapping) else getattr(holder, last)


def _set(root: Any, path: str, value: Any) -> None:
    holder, last = _resolve(root, path)
    if isinstance(holder, Mapping):
        holder[last] = value  # type: ignore[index]
    else:
        setattr(holder, last, value)


class ObjectLayer:
    """A layer object with forward(x) and backward(dout) as a functional layer.

    Most NumPy frameworks keep a layer's parameters on the layer and let backward(dout)
    store the parameter gradients beside them; backward returns dx. This adapter says
    where they live and turns the object into forward(x, *params) and
    backward(dout, x, *params) -> (dx, *dparams):

    - layer: the layer object, or a zero-argument factory (a class, a lambda) that makes
      one; a factory gives every call a fresh object, so no state leaks between calls;
    - parameters: paths of the parameters, in the order the signature lists them after
      x: attribute names ("W"), or dotted paths through attributes and dict keys
      ("params.W" for layer.params["W"]);
    - gradients: parameter path -> gradient path; by default "W" -> "dW" and
      "params.W" -> "grads.W".

    Before each backward the adapter assigns the parameters, resets every gradient to
    zeros (frameworks that accumulate with += would otherwise add up calls), and re-runs
    forward(x), because such objects cache what their last forward saw.
    """

    def __init__(
        self,
        layer: Any,
        *,
        parameters: Sequence[str],
        gradients: Mapping[str, str] | None = None,
        input_name: str = "x",
    ) -> None:
        if isinstance(parameters, str) or not all(isinstance(p, str) for p in parameters):
            raise UsageError(
                f"parameters must be a sequence of attribute paths such as ['W', 'b'], "
                f"got {parameters!r}"
            )
        self.is_factory = isinstance(layer, type) or not (
            hasattr(layer, "forward") and hasattr(layer, "backward")
        )
        if self.is_factory and not callable(layer):
            raise UsageError(
                f"layer must have forward(x) and backward(dout) methods, or be a zero-argument "
                f"factory that returns such an object; got {layer!r}"
            )
        self.layer = layer
        self.parameters = tuple(parameters)
        given = dict(gradients or {})
        unknown = sorted(set(given) - set(self.parameters))
        if unknown:
            raise UsageError(
                f"gradients names {unknown}, which are not among the parameters {list(parameters)}"
            )
        self.gradients = {p: given.get(p, _default_gradient_path(p)) for p in self.parameters}
        self.input_name = input_name
        self.name = qualified_name(layer if self.is_factory else type(layer))

    @property
    def argument_names(self) -> tuple[str, ...]:
        return (self.input_name, *self.parameters)

    def _instance(self) -> Any:
        instance = self.layer() if self.is_factory else self.layer
        if not (hasattr(instance, "forward") and hasattr(instance, "backward")):
            raise UserOutputError(
                f"the factory {self.name} returned a {type(instance).__name__}, which has no "
                "forward and backward methods",
                function="factory",
            )
        return instance

    def _assign(self, instance: Any, parameters: Sequence[Any]) -> None:
        if len(parameters) != len(self.parameters):
            raise UsageError(
                f"this layer has {len(self.parameters)} parameters {list(self.parameters)}, "
                f"got {len(parameters)} arrays"
            )
        for path, value in zip(self.parameters, parameters, strict=True):
            _set(instance, path, value)

    def forward(self, x: Any, *parameters: Any) -> Any:
        instance = self._instance()
        self._assign(instance, parameters)
        return instance.forward(x)

    def backward(self, dout: Any, x: Any, *parameters: Any) -> tuple[Any, ...]:
        """(dx, *dparams) of a layer with one output."""
        return self.backward_outputs((dout,), x, parameters)

    def functional_backward(self, outputs: int, wrt: Sequence[int]) -> Callable[..., Any]:
        """backward(*douts, x, *params) -> the gradients of the arguments wrt names
        (dx only when x is differentiated: an int x, an embedding's indices, has none)."""

        def backward(*arguments: Any) -> tuple[Any, ...]:
            douts, (x, *parameters) = arguments[:outputs], arguments[outputs:]
            found = self.backward_outputs(douts, x, parameters)
            return tuple(found[k] for k in wrt)

        backward.__qualname__ = f"{self.name}.backward"
        return backward

    def backward_outputs(
        self, douts: Sequence[Any], x: Any, parameters: Sequence[Any]
    ) -> tuple[Any, ...]:
        """(dx, *dparams) after backward(*douts) on a fresh forward(x)."""
        instance = self._instance()
        self._assign(instance, parameters)
        for path, value in zip(self.parameters, parameters, strict=True):
            try:
                _get(instance, self.gradients[path])
            except (AttributeError, KeyError, TypeError):
                continue  # not there yet: the layer creates it in backward
            _set(instance, self.gradients[path], np.zeros_like(value))
        instance.forward(x)
        dx = instance.backward(*douts)
        found = [dx]
        for path in self.parameters:
            where = self.gradients[path]
            try:
                found.append(_get(instance, where))
            except (AttributeError, KeyError, TypeError):
                raise UserOutputError(
                    f"after backward, the layer has no gradient of {path} at {where!r}; say "
                    "where gradients live with gradients={'W': 'dW', ...}",
                    function="backward",
                ) from None
        return tuple(found)


# ---- unit Jacobian --------------------------------------------------------------------------


def unit_jacobian_backward(
    unit_jacobian: Callable[..., Any], input_jacobian: Callable[..., Any] | None
) -> Callable[..., Any]:
    """backward(dout, z, θ) from B (and ∂f/∂z): A = Σ_n diag(δ_n) B_n, δ_in = δ · ∂f/∂z."""

    def backward(dout: Any, z: Any, theta: Any) -> tuple[Any, ...]:
        blocks = unit_jacobian(z, theta)
        batch, units, parameters = z.shape[0], theta.shape[0], theta.shape[1]
        _expect_shape(blocks, (batch, units, parameters), "unit_jacobian", "B = (N, J, P)")
        gradient = compact.compact_gradient(dout, blocks)
        if input_jacobian is None:
            return (gradient,)
        jacobian = input_jacobian(z, theta)
        _expect_shape(jacobian, (batch, units, z.shape[1]), "input_jacobian", "(N, J, I)")
        return compact.input_gradient(dout, jacobian), gradient

    return backward


def _expect_shape(value: Any, shape: tuple[int, ...], function: str, what: str) -> None:
    if getattr(value, "shape", None) != shape:
        raise UserOutputError(
            f"{function} returned {type(value).__name__} of shape "
            f"{getattr(value, 'shape', None)}; expected {what} = {shape}",
            function=function,
        )
