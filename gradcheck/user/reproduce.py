"""The code that rebuilds a failing case bit for bit and checks it again: the snippet a
GradientMismatch carries (``example=((x, w, b), dout)``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from gradcheck.user.types import UserCase, UserLayer


def _literal(array: np.ndarray) -> str:
    """np.array(...) source that rebuilds the array bit for bit (float reprs round-trip,
    and float32 values are exact in float64; ints and booleans as they are)."""
    if array.dtype.kind in "biu":
        dtype = "bool_" if array.dtype.kind == "b" else array.dtype.name
        return f"np.array({array.tolist()!r}, dtype=np.{dtype})"

    def nested(value: Any) -> str:
        if isinstance(value, list):
            return "[" + ", ".join(nested(v) for v in value) + "]"
        number = float(value)
        return repr(number) if math.isfinite(number) else f"float({str(number)!r})"

    return f"np.array({nested(array.astype(np.float64).tolist())}, dtype=np.{array.dtype.name})"


def _import(obj: Any, fallback: str) -> tuple[str | None, str]:
    """(import line, expression) for a module-level function or class, or (None, a
    placeholder) when it cannot be imported by name."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        return None, fallback
    top = qualname.split(".")[0]
    return f"from {module} import {top}", qualname


def reproduction(source: Mapping[str, Any], layer: UserLayer, case: UserCase) -> str:
    """Python code that rebuilds the case bit for bit and checks it again."""
    imports: list[str] = []
    notes: list[str] = []

    def refer(obj: Any, placeholder: str) -> str:
        line, expression = _import(obj, placeholder)
        if line is None:
            notes.append(f"# define {placeholder} (not importable by name: {obj!r})")
        elif line not in imports:
            imports.append(line)
        return expression

    style = source["style"]
    if style == "object":
        adapter = source["adapter"]
        if adapter.is_factory:
            target = refer(adapter.layer, "make_layer")
        else:
            target = refer(type(adapter.layer), "LayerClass") + "(...)"
            notes.append("# build the layer object as in your test (its parameters are replaced)")
        gradients = {p: g for p, g in adapter.gradients.items()}
        call = [
            "gradcheck.check_layer_object(",
            f"    {target},",
            f"    parameters={list(adapter.parameters)!r},",
            f"    gradients={gradients!r},",
        ]
        if source.get("wrt") is not None:
            call.append(f"    wrt={[layer.argument_names[k] for k in layer.wrt]!r},")
    elif style == "unit-jacobian":
        call = [
            "gradcheck.check_unit_jacobian(",
            f"    {refer(source['forward'], 'forward')},",
            f"    {refer(source['unit_jacobian'], 'unit_jacobian')},",
        ]
        if source["input_jacobian"] is not None:
            call.append(f"    input_jacobian={refer(source['input_jacobian'], 'input_jacobian')},")
    else:
        function = "check_backward" if style == "functional" else "check_backward_cached"
        call = [
            f"gradcheck.{function}(",
            f"    {refer(source['forward'], 'forward')},",
            f"    {refer(source['backward'], 'backward')},",
        ]
        if source.get("wrt") is not None:
            call.append(f"    wrt={[layer.argument_names[k] for k in layer.wrt]!r},")
    call.append(f"    signature={str(layer.signature)!r},")
    ranges = source.get("ranges") or {}
    for key, default in (("sizes", None), ("min_size", 1), ("max_size", 4)):
        if "drawing" not in source and ranges.get(key, default) != default:
            call.append(f"    {key}={ranges[key]!r},")  # the sizes the constraints need
    if source.get("constraints"):
        call.append(f"    constraints={tuple(source['constraints'])!r},")
    # how cases are drawn (dtypes=, sizes=), where not the default: the diagnosis of a
    # failure reads seeded random draws too, and the snippet must draw the same ones
    for keyword, value in source.get("drawing", {}).items():
        call.append(f"    {keyword}={value!r},")
    if any(b is not None for b in layer.bounds):
        call.append(f"    bounds={list(layer.bounds)!r},")
    options = source.get("options")
    if options is not None and options.kinks != "redraw":
        call.append(f"    kinks={options.kinks!r},")
    if options is not None and options.allow_aliases:
        call.append("    allow_aliases=True,")
    names = [_variable(name) for name in case.names]
    douts = case.dout_names
    shown = douts[0] if len(douts) == 1 else f"({', '.join(douts)})"
    call.append(f"    example=(({', '.join(names)}{',' * (len(names) == 1)}), {shown}),")
    call.append(")")
    lines = ["import numpy as np", "import gradcheck", *imports, *notes, ""]
    lines += [
        f"{variable} = {_literal(a)}" for variable, a in zip(names, case.arguments, strict=True)
    ]
    lines += [f"{name} = {_literal(d)}" for name, d in zip(douts, case.output_douts, strict=True)]
    lines += call
    return "\n".join(lines).replace("\n\n\n", "\n\n")


def _variable(name: str) -> str:
    """A Python identifier for an argument name ("params.W" -> params_W)."""
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    taken = cleaned in ("np", "gradcheck") or cleaned.startswith("dout")
    if not cleaned or cleaned[0].isdigit() or taken:
        cleaned = "arg_" + cleaned
    return cleaned
