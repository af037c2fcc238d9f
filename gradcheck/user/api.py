"""Check your own layers: hand-written NumPy backward passes against autograd and finite
differences, on cases hypothesis draws and shrinks.

    import gradcheck

    def affine_forward(x, w, b):
        return x @ w + b

    def affine_backward(dout, x, w, b):
        return dout @ w.T, x.T @ dout, dout.sum(axis=0)

    gradcheck.check_backward(
        affine_forward, affine_backward, signature="(n,i),(i,j),(j)->(n,j)"
    )

The signature names the sizes (drawn between min_size and max_size, meeting the
signature's implied constraints and the user's `constraints=` by construction); output
sizes may be expressions such as h-p+1 or h//2, inputs may be int or bool arrays
(``(n)int[0,j)``, never differentiated), and a forward may return several outputs
(``->(n,h),(n,h)``; its backward then takes one dout per output before the arguments).
The values come from byte blobs decoded through `gradcheck.core.values.VALUES`, so that
a failure shrinks to the smallest sizes the constraints allow and values of 1. The
scalar whose gradient is checked is E = Σ_k ⟨dout_k, out_k⟩ with dout drawn like the
rest. A wrong gradient raises
`gradcheck.GradientMismatch` (an AssertionError) naming the argument, the oracle, the
worst entries and the shrunk case, with a snippet that reproduces it; misbehaving user
code raises a `gradcheck.errors.UserCodeError`. A draw at a kink (the one-sided
differences disagree) is redrawn. Every check returns a `LayerCheck` summary: examples
run, the worst error against its bound, the oracles that ran, the error model used and
the structure of each parameter.

Styles: `check_backward` (functional), `check_backward_cached` (forward returns
(out, cache)), `check_layer_object` (objects with forward(x)/backward(dout), see
`gradcheck.user.adapters.ObjectLayer`), `check_unit_jacobian` (the seed's B).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gradcheck.errors import UsageError
from gradcheck.user.adapters import (
    ObjectLayer,
    argument_names,
    cached,
    qualified_name,
    unit_jacobian_backward,
)
from gradcheck.user.draw import make_plan
from gradcheck.user.options import (
    bounds_of,
    constraints_of,
    differentiated,
    name_of,
    options_of,
    require_callable,
    signature_of,
)
from gradcheck.user.run import collect, run, settings_for
from gradcheck.user.signature import Signature
from gradcheck.user.summary import LayerCheck
from gradcheck.user.types import DEFAULT_TIMEOUT, UserLayer

__all__ = [
    "LayerCheck",
    "ObjectLayer",
    "check_backward",
    "check_backward_cached",
    "check_layer_object",
    "check_unit_jacobian",
    "collect",
]

# ---- the public checks --------------------------------------------------------------------------


def check_backward(
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    *,
    signature: str,
    wrt: Sequence[int | str] | None = None,
    bounds: Sequence[tuple[float, float] | None] | None = None,
    dtypes: Sequence[str] = ("float64",),
    min_size: int = 1,
    max_size: int = 4,
    sizes: Mapping[str, int | tuple[int, int]] | None = None,
    constraints: Sequence[str] | str | None = None,
    max_examples: int | None = None,
    kinks: str = "redraw",
    autograd: bool | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    allow_aliases: bool = False,
    name: str | None = None,
    settings: Any = None,
    example: tuple[Sequence[Any], Any] | None = None,
) -> LayerCheck:
    """Check a functional layer: forward(x, *params) -> out and
    backward(dout, x, *params) -> (dx, *dparams).

    The gradients must be those of E = ⟨dout, forward(*args)⟩: backward returns one
    array per differentiated argument (every float argument, or the `wrt` ones, in the
    forward's order), each of its argument's shape and dtype. With several outputs the
    forward returns a tuple, E = Σ_k ⟨dout_k, out_k⟩, and the backward takes one dout
    per output first: backward(dout_0, dout_1, x, *params).

    signature: gufunc-style shapes, "(n,i),(i,j),(j)->(n,j)"; its names are sizes drawn
    in [min_size, max_size] (or per name from `sizes`: a fixed size or a (low, high)
    range); sizes may be expressions ("(n,c,h,w)->(n,c,h//2,w//2)"), integers, and
    inputs typed int[low,high) or bool (see `gradcheck.user.signature`). constraints:
    conditions on the sizes, such as ("h >= p", "h % 2 == 0"), met by every drawn case
    (with those the signature implies: every size ≥ 1). wrt: the arguments to
    differentiate, by name or position (default: every float argument).
    bounds: one (low, high) pair or None per argument; values are drawn inside the open
    interval (a log layer wants (0, inf)). dtypes: "float64" and/or "float32".
    max_examples: examples to check (default: the active hypothesis profile's). kinks:
    "redraw" redraws a case where the one-sided differences disagree; "subgradient"
    checks there that the hand-written gradient lies between them. autograd: None uses
    it when the forward is traceable (written with autograd.numpy), True requires it,
    False skips it. timeout: seconds one example may take before the user's code is
    stopped with UserTimeoutError (default 60; None: no limit; stopping needs the main
    thread of a POSIX process). allow_aliases: accept a forward output or a gradient
    that shares memory with an argument (a view such as x.reshape(...)); by default that
    raises AliasedOutputError, because a caller updating one in place (W -= lr * dW,
    dx += ...) silently changes the other. name: the layer's name in summaries and
    reports. settings: parent hypothesis settings. example: (arguments, dout) checks that
    one case instead of drawing (what a reproduction snippet does; with several outputs
    dout is a tuple of one dout per output).

    Returns the LayerCheck; raises GradientMismatch for a wrong gradient,
    UserCodeError (and subclasses) for misbehaving user code, UsageError for bad
    arguments.
    """
    __tracebackhide__ = True
    require_callable(forward, "forward")
    require_callable(backward, "backward")
    parsed = signature_of(signature)
    names = argument_names(forward, len(parsed.inputs))
    layer = UserLayer(
        name_of(name, qualified_name(forward)),
        "functional",
        forward,
        backward,
        parsed,
        names,
        differentiated(wrt, names, parsed),
        tuple(range(1, len(names))),
        bounds_of(bounds, names, parsed),
    )
    source = {"style": "functional", "forward": forward, "backward": backward, "wrt": wrt}
    return _check(
        layer,
        source,
        dtypes,
        min_size,
        max_size,
        sizes,
        constraints,
        kinks,
        autograd,
        timeout,
        allow_aliases,
        settings,
        max_examples,
        example,
    )


def check_backward_cached(
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    *,
    signature: str,
    wrt: Sequence[int | str] | None = None,
    bounds: Sequence[tuple[float, float] | None] | None = None,
    dtypes: Sequence[str] = ("float64",),
    min_size: int = 1,
    max_size: int = 4,
    sizes: Mapping[str, int | tuple[int, int]] | None = None,
    constraints: Sequence[str] | str | None = None,
    max_examples: int | None = None,
    kinks: str = "redraw",
    autograd: bool | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    allow_aliases: bool = False,
    name: str | None = None,
    settings: Any = None,
    example: tuple[Sequence[Any], Any] | None = None,
) -> LayerCheck:
    """Check a layer whose forward(x, *params) returns (out, cache) and whose
    backward(dout, cache) returns (dx, *dparams) (one gradient per differentiated
    argument). With several outputs the forward returns (out_0, out_1, ..., cache) and
    the backward takes backward(dout_0, dout_1, ..., cache). Options as for
    `check_backward`; the forward is re-run before every backward, so each backward gets
    a fresh cache."""
    __tracebackhide__ = True
    require_callable(forward, "forward")
    require_callable(backward, "backward")
    parsed = signature_of(signature)
    names = argument_names(forward, len(parsed.inputs))
    functional_forward, functional_backward = cached(forward, backward, len(parsed.outputs))
    layer = UserLayer(
        name_of(name, qualified_name(forward)),
        "cached",
        functional_forward,
        functional_backward,
        parsed,
        names,
        differentiated(wrt, names, parsed),
        tuple(range(1, len(names))),
        bounds_of(bounds, names, parsed),
    )
    source = {"style": "cached", "forward": forward, "backward": backward, "wrt": wrt}
    return _check(
        layer,
        source,
        dtypes,
        min_size,
        max_size,
        sizes,
        constraints,
        kinks,
        autograd,
        timeout,
        allow_aliases,
        settings,
        max_examples,
        example,
    )


def check_layer_object(
    layer: Any,
    *,
    signature: str,
    parameters: Sequence[str] | None = None,
    gradients: Mapping[str, str] | None = None,
    wrt: Sequence[int | str] | None = None,
    bounds: Sequence[tuple[float, float] | None] | None = None,
    dtypes: Sequence[str] = ("float64",),
    min_size: int = 1,
    max_size: int = 4,
    sizes: Mapping[str, int | tuple[int, int]] | None = None,
    constraints: Sequence[str] | str | None = None,
    max_examples: int | None = None,
    kinks: str = "redraw",
    autograd: bool | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    allow_aliases: bool = False,
    name: str | None = None,
    settings: Any = None,
    example: tuple[Sequence[Any], Any] | None = None,
) -> LayerCheck:
    """Check a layer object with forward(x) and backward(dout) -> dx that stores its
    parameter gradients on itself.

    layer: an `ObjectLayer`, or the object (or a zero-argument factory) with
    `parameters` (paths such as "W" or "params.W", in the order the signature lists
    them after x) and `gradients` (parameter path -> gradient path; default "W" -> "dW",
    "params.W" -> "grads.W"). The signature lists x first, then the parameters. x may
    be an int array (an embedding's indices: "(n,t)int[0,v),(v,d)->(n,t,d)"); it is then
    not differentiated, and what backward returns is ignored. With several outputs the
    object's forward(x) returns a tuple and its backward takes one dout per output.
    Other options as for `check_backward`; autograd is used when the object's forward is
    written with autograd.numpy.
    """
    __tracebackhide__ = True
    if isinstance(layer, ObjectLayer):
        if parameters is not None or gradients is not None:
            raise UsageError("an ObjectLayer already knows its parameters and gradients")
        adapter = layer
    else:
        if parameters is None:
            raise UsageError(
                "say where the layer keeps its parameters: parameters=['W', 'b'] (attribute "
                "paths, in the signature's order after x)"
            )
        adapter = ObjectLayer(layer, parameters=parameters, gradients=gradients)
    parsed = signature_of(signature)
    names = adapter.argument_names
    if len(parsed.inputs) != len(names):
        raise UsageError(
            f"the signature {parsed} has {len(parsed.inputs)} inputs, but the layer takes x "
            f"and {len(names) - 1} parameters {list(names[1:])}: list x first, then each "
            "parameter"
        )
    chosen = differentiated(wrt, names, parsed)
    user_layer = UserLayer(
        name_of(name, adapter.name),
        "object",
        adapter.forward,
        adapter.functional_backward(len(parsed.outputs), chosen),
        parsed,
        names,
        chosen,
        tuple(range(1, len(names))),
        bounds_of(bounds, names, parsed),
    )
    source = {"style": "object", "adapter": adapter, "wrt": wrt}
    return _check(
        user_layer,
        source,
        dtypes,
        min_size,
        max_size,
        sizes,
        constraints,
        kinks,
        autograd,
        timeout,
        allow_aliases,
        settings,
        max_examples,
        example,
    )


def check_unit_jacobian(
    forward: Callable[..., Any],
    unit_jacobian: Callable[..., Any],
    *,
    input_jacobian: Callable[..., Any] | None = None,
    signature: str = "(n,i),(j,p)->(n,j)",
    parameters_per_unit: Callable[[int], int] | None = None,
    bounds: Sequence[tuple[float, float] | None] | None = None,
    dtypes: Sequence[str] = ("float64",),
    min_size: int = 1,
    max_size: int = 4,
    sizes: Mapping[str, int | tuple[int, int]] | None = None,
    constraints: Sequence[str] | str | None = None,
    max_examples: int | None = None,
    kinks: str = "redraw",
    autograd: bool | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    allow_aliases: bool = False,
    name: str | None = None,
    settings: Any = None,
    example: tuple[Sequence[Any], Any] | None = None,
) -> LayerCheck:
    """Check a layer given by its unit Jacobian, in the seed's notation.

    forward(z, θ) -> f, z (N × I), θ (J × P), f (N × J); unit_jacobian(z, θ) -> B
    (N × J × P), B[n, j] = ∂f_nj/∂θʲ. The parameter gradient is A = Σ_n diag(δ_n) B_n,
    held against autograd, finite differences and the dense block-diagonal product;
    input_jacobian(z, θ) -> ∂f/∂z (N × J × I), when given, is checked through
    δ_in = δ · ∂f/∂z. The layer must be unit-partitioned (output j depends on θʲ
    only): a coupled one raises CoupledLayerError. parameters_per_unit(I) gives P when
    it depends on I (P = I + 1 for a dense unit with a bias); otherwise P is drawn.
    Other options as for `check_backward`.
    """
    __tracebackhide__ = True
    require_callable(forward, "forward")
    require_callable(unit_jacobian, "unit_jacobian")
    if input_jacobian is not None:
        require_callable(input_jacobian, "input_jacobian")
    parsed = signature_of(signature)
    z_dims, theta_dims = _unit_jacobian_shapes(parsed)
    names = ("z", "theta")
    if parameters_per_unit is not None:
        require_callable(parameters_per_unit, "parameters_per_unit")
    layer = UserLayer(
        name_of(name, qualified_name(forward)),
        "unit-jacobian",
        forward,
        unit_jacobian_backward(unit_jacobian, input_jacobian),
        parsed,
        names,
        (0, 1) if input_jacobian is not None else (1,),
        (1,),
        bounds_of(bounds, names, parsed),
        unit_jacobian,
    )
    source = {
        "style": "unit-jacobian",
        "forward": forward,
        "unit_jacobian": unit_jacobian,
        "input_jacobian": input_jacobian,
    }
    derived = None
    if parameters_per_unit is not None:
        derived = (theta_dims[1], z_dims[1], parameters_per_unit)
    return _check(
        layer,
        source,
        dtypes,
        min_size,
        max_size,
        sizes,
        constraints,
        kinks,
        autograd,
        timeout,
        allow_aliases,
        settings,
        max_examples,
        example,
        derived,
    )


def _unit_jacobian_shapes(parsed: Signature) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    if len(parsed.outputs) != 1:
        raise UsageError(
            f"a unit-Jacobian layer has one output f (N × J); {parsed} declares "
            f"{len(parsed.outputs)}: check a layer with several outputs with check_backward"
        )
    if any(not kind.is_float for kind in parsed.types):
        raise UsageError(
            f"a unit-Jacobian layer takes two float arrays z and θ; {parsed} declares "
            f"{', '.join(str(t) for t in parsed.types)}: check a layer with int or bool "
            "inputs with check_backward"
        )
    ok = len(parsed.inputs) == 2 and len(parsed.output) == 2
    if ok:
        z_dims, theta_dims = parsed.inputs
        ok = (
            len(z_dims) == 2
            and len(theta_dims) == 2
            and z_dims[0] == parsed.output[0]
            and theta_dims[0] == parsed.output[1]
        )
    if not ok:
        raise UsageError(
            f"a unit-Jacobian layer maps z (N × I) and θ (J × P) to f (N × J): its signature "
            f"is '(n,i),(j,p)->(n,j)' (any names), got {parsed}"
        )
    return parsed.inputs[0], parsed.inputs[1]


def _check(
    layer: UserLayer,
    source: Mapping[str, Any],
    dtypes: Sequence[str],
    min_size: int,
    max_size: int,
    sizes: Mapping[str, int | tuple[int, int]] | None,
    constraints: Sequence[str] | str | None,
    kinks: str,
    autograd: bool | None,
    timeout: float | None,
    allow_aliases: bool,
    settings: Any,
    max_examples: int | None,
    example: Any,
    derived: Any = None,
) -> LayerCheck:
    __tracebackhide__ = True
    options = options_of(kinks, autograd, timeout, allow_aliases)
    required = constraints_of(constraints, layer.signature)
    texts = (constraints,) if isinstance(constraints, str) else tuple(constraints or ())
    # the reproduction repeats the options, the ranges of the sizes and the constraints
    ranges = {"sizes": sizes, "min_size": min_size, "max_size": max_size}
    source = {**source, "options": options, "constraints": texts, "ranges": ranges}
    plan = make_plan(layer, dtypes, min_size, max_size, sizes, derived, required)
    settings_for(settings, max_examples)  # validates max_examples before anything runs
    return run(
        layer, source, plan, options, settings=settings, max_examples=max_examples, example=example
    )
