"""Drawing cases for a user's layer, and the code that rebuilds one.

A case is one blob of bytes (as in `gradcheck.strategies`): a dtype byte, one byte per
size named in the signature, then per argument a scale byte and the bytes of a grid of
the argument's largest shape, then the grid of dout. Sizes and values come from the
helpers of `gradcheck.core.values` (`pick_size`, `decode_values`, `VALUES`, `SCALES`):
byte 0 is the smallest size and the value 1.0, and each value is read from the grid's
leading corner, so that it keeps its byte when the shrinker makes a size smaller. A
failure therefore shrinks to sizes of 1 and values of 1 wherever the bug allows.

Bounds map a value v into the open interval (low, high): v itself when it lies inside;
otherwise low + |v| or high - |v| for a half-open interval, and
low + (high - low)(1 + v / (1 + |v|)) / 2 for a finite one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.core.values import SCALES, decode_values, pick_size
from gradcheck.errors import UsageError
from gradcheck.user.types import UserCase, UserLayer

#: The largest blob a case may need (hypothesis gives a test case 8 KiB in all).
MAX_CASE_BYTES = 4096
_DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class Plan:
    """How cases of one layer are drawn: the sizes' ranges (and a size derived from
    another: P = parameters_per_unit(I)), the dtypes, and each array's grid."""

    names: tuple[str, ...]
    ranges: Mapping[str, tuple[int, int]]
    derived: tuple[str, str, Callable[[int], int]] | None
    dtypes: tuple[np.dtype[Any], ...]
    grids: tuple[tuple[int, ...], ...]
    output_grid: tuple[int, ...]

    @property
    def length(self) -> int:
        arrays = sum(1 + math.prod(grid) for grid in self.grids)
        return 1 + len(self.names) + arrays + math.prod(self.output_grid)


def _whole(value: Any, what: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UsageError(f"{what} must be an integer ≥ {least}, got {value!r}")
    return value


def _dtypes(dtypes: Sequence[Any]) -> tuple[np.dtype[Any], ...]:
    if isinstance(dtypes, str | bytes) or not isinstance(dtypes, Sequence) or not dtypes:
        raise UsageError(
            f"dtypes must be a non-empty sequence such as ('float64',), got {dtypes!r}"
        )
    chosen = []
    for dtype in dtypes:
        try:
            name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
        except TypeError:
            name = None
        if name not in _DTYPES:
            raise UsageError(f"dtype {dtype!r} is not supported; choose float64 or float32")
        chosen.append(np.dtype(name))
    return tuple(chosen)


def make_plan(
    layer: UserLayer,
    dtypes: Sequence[Any],
    min_size: int,
    max_size: int,
    sizes: Mapping[str, int | tuple[int, int]] | None,
    derived: tuple[Any, Any, Callable[[int], int]] | None,
) -> Plan:
    """Validate the drawing options against the signature and lay out the blob."""
    _whole(min_size, "min_size")
    _whole(max_size, "max_size")
    if max_size < min_size:
        raise UsageError(f"max_size={max_size} must be at least min_size={min_size}")
    signature = layer.signature
    ranges: dict[str, tuple[int, int]] = dict.fromkeys(signature.names, (min_size, max_size))
    if sizes is not None and not isinstance(sizes, Mapping):
        raise UsageError(f"sizes maps size names to a size or a (low, high) range, got {sizes!r}")
    for name, size in (sizes or {}).items():
        if name not in ranges:
            raise UsageError(f"sizes names {name!r}, which the signature {signature} does not")
        if isinstance(size, tuple):
            low, high = (_whole(v, f"sizes[{name!r}]") for v in size)
            if high < low:
                raise UsageError(f"sizes[{name!r}] = {size}: high must be at least low")
            ranges[name] = (low, high)
        else:
            ranges[name] = (_whole(size, f"sizes[{name!r}]"),) * 2
    derivation = None
    if derived is not None:
        target, source, function = derived
        if not isinstance(target, str) or not isinstance(source, str) or target == source:
            raise UsageError(
                "parameters_per_unit needs θ's second axis and z's second axis to be two "
                f"different names in the signature, got {signature}"
            )
        values = []
        for inputs in range(ranges[source][0], ranges[source][1] + 1):
            value = function(inputs)
            values.append(_whole(value, f"parameters_per_unit({inputs})"))
        ranges[target] = (min(values), max(values))
        derivation = (target, source, function)
    largest = {name: high for name, (low, high) in ranges.items()}
    grids = tuple(signature.shape(dims, largest) for dims in signature.inputs)
    plan = Plan(
        tuple(name for name in ranges if derivation is None or name != derivation[0]),
        ranges,
        derivation,
        _dtypes(dtypes),
        grids,
        signature.shape(signature.output, largest),
    )
    if plan.length > MAX_CASE_BYTES:
        raise UsageError(
            f"the largest case of {signature} with these sizes needs {plan.length} bytes of "
            f"random data (at most {MAX_CASE_BYTES}): lower max_size or the sizes of the "
            "largest arrays"
        )
    return plan


def within(values: np.ndarray, bounds: tuple[float, float] | None) -> np.ndarray:
    """Values mapped into the open interval (see the module docstring)."""
    if bounds is None:
        return values
    low, high = bounds
    inside = (values > low) & (values < high)
    if math.isfinite(low) and math.isfinite(high):
        moved = low + (high - low) * (1.0 + values / (1.0 + np.abs(values))) / 2.0
    elif math.isfinite(low):
        moved = low + np.abs(values)
    elif math.isfinite(high):
        moved = high - np.abs(values)
    else:
        moved = values
    return np.where(inside, values, moved)


def decode(layer: UserLayer, plan: Plan, blob: bytes) -> UserCase:
    """The case a blob stands for."""
    raw = np.frombuffer(blob, dtype=np.uint8)
    dtype = plan.dtypes[int(raw[0]) % len(plan.dtypes)]
    sizes: dict[str, int] = {}
    for position, name in enumerate(plan.names):
        low, high = plan.ranges[name]
        # prefer sizes different from 1 and from each other: square weights hide
        # transposition bugs and a batch of one hides bias-gradient bugs
        sizes[name] = pick_size(int(raw[1 + position]), low, high, (1, *sizes.values()))
    if plan.derived is not None:
        target, source, function = plan.derived
        sizes[target] = int(function(sizes[source]))
    start = 1 + len(plan.names)
    arguments = []
    for k, (dims, grid) in enumerate(zip(layer.signature.inputs, plan.grids, strict=True)):
        scale = SCALES[int(raw[start]) % len(SCALES)]
        count = math.prod(grid)
        shape = layer.signature.shape(dims, sizes)
        values = decode_values(raw[start + 1 : start + 1 + count], shape, grid) * scale
        arguments.append(within(values, layer.bounds[k]).astype(dtype))
        start += 1 + count
    out_shape = layer.signature.output_shape(sizes)
    count = math.prod(plan.output_grid)
    dout = decode_values(raw[start : start + count], out_shape, plan.output_grid).astype(dtype)
    ordered = {name: sizes[name] for name in layer.signature.names}
    return UserCase(ordered, tuple(arguments), dout, layer.argument_names)


def cases(layer: UserLayer, plan: Plan) -> Any:
    """The hypothesis strategy of a layer's cases."""
    from hypothesis import strategies as st

    return st.binary(min_size=plan.length, max_size=plan.length).map(
        lambda blob: decode(layer, plan, blob)
    )


def case_from_example(layer: UserLayer, example: Any) -> UserCase:
    """The case of example=(arguments, dout): arrays of one float dtype whose shapes fit
    the signature."""
    try:
        arguments, dout = example
        arrays = [np.asarray(a) for a in arguments]
        dout = np.asarray(dout)
    except (TypeError, ValueError):
        raise UsageError(
            "example must be (arguments, dout): a sequence of the forward's arrays and dout"
        ) from None
    signature = layer.signature
    if len(arrays) != len(signature.inputs):
        raise UsageError(
            f"example has {len(arrays)} arguments; {signature} takes {len(signature.inputs)}"
        )
    dtypes = {a.dtype for a in (*arrays, dout)}
    if len(dtypes) != 1 or next(iter(dtypes)).name not in _DTYPES:
        raise UsageError(f"example's arrays must share one dtype, float64 or float32; got {dtypes}")
    sizes: dict[str, int] = {}
    for name, array, dims in (
        *zip(layer.argument_names, arrays, signature.inputs, strict=True),
        ("dout", dout, signature.output),
    ):
        if array.ndim != len(dims):
            raise UsageError(f"example's {name} has shape {array.shape}; {signature} wants {dims}")
        for dim, size in zip(dims, array.shape, strict=True):
            expected = dim if isinstance(dim, int) else sizes.setdefault(dim, size)
            if size != expected:
                raise UsageError(
                    f"example's {name} has shape {array.shape}, which does not fit {signature} "
                    f"(size {dim} is {expected} elsewhere)"
                )
        if not np.all(np.isfinite(array)):
            raise UsageError(f"example's {name} is not finite")
    ordered = {name: sizes[name] for name in signature.names}
    return UserCase(ordered, tuple(arrays), dout, layer.argument_names)


# ---- reproduction ---------------------------------------------------------------------------


def _literal(array: np.ndarray) -> str:
    """np.array(...) source that rebuilds the array bit for bit (float reprs round-trip,
    and float32 values are exact in float64)."""

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
    if any(b is not None for b in layer.bounds):
        call.append(f"    bounds={list(layer.bounds)!r},")
    options = source.get("options")
    if options is not None and options.kinks != "redraw":
        call.append(f"    kinks={options.kinks!r},")
    if options is not None and options.allow_aliases:
        call.append("    allow_aliases=True,")
    names = [_variable(name) for name in case.names]
    call.append(f"    example=(({', '.join(names)}{',' * (len(names) == 1)}), dout),")
    call.append(")")
    lines = ["import numpy as np", "import gradcheck", *imports, *notes, ""]
    lines += [
        f"{variable} = {_literal(a)}" for variable, a in zip(names, case.arguments, strict=True)
    ]
    lines += [f"dout = {_literal(case.dout)}", *call]
    return "\n".join(lines).replace("\n\n\n", "\n\n")


def _variable(name: str) -> str:
    """A Python identifier for an argument name ("params.W" -> params_W)."""
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    if not cleaned or cleaned[0].isdigit() or cleaned in ("np", "gradcheck", "dout"):
        cleaned = "arg_" + cleaned
    return cleaned
