"""A case given by the user (``example=(arguments, dout)``), as a reproduction snippet
passes it: checked against the signature, its types and every constraint."""

from __future__ import annotations

from typing import Any

import numpy as np

from gradcheck.errors import UsageError
from gradcheck.user.draw import Plan
from gradcheck.user.expressions import evaluate
from gradcheck.user.outputs import make_case
from gradcheck.user.types import UserCase, UserLayer

_FLOATS = ("float64", "float32")


def _arrays(layer: UserLayer, example: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    outputs = len(layer.signature.outputs)
    shape = "(arguments, dout)" if outputs == 1 else "(arguments, (dout0, dout1, ...))"
    try:
        arguments, dout = example
        arrays = [np.asarray(a) for a in arguments]
        douts = [np.asarray(dout)] if outputs == 1 else [np.asarray(d) for d in dout]
    except (TypeError, ValueError):
        raise UsageError(
            f"example must be {shape}: a sequence of the forward's arrays and "
            + ("dout" if outputs == 1 else "one dout per output")
        ) from None
    if len(douts) != outputs:
        raise UsageError(f"example has {len(douts)} douts; {layer.signature} has {outputs} outputs")
    return arrays, douts


def case_from_example(layer: UserLayer, plan: Plan, example: Any) -> UserCase:
    """The case of example=(arguments, dout) (with several outputs, dout is a sequence
    of one dout per output): float arrays of one dtype, int and bool arrays of theirs,
    shapes that fit the signature, sizes that meet every constraint."""
    signature = layer.signature
    arrays, douts = _arrays(layer, example)
    if len(arrays) != len(signature.inputs):
        raise UsageError(
            f"example has {len(arrays)} arguments; {signature} takes {len(signature.inputs)}"
        )
    floats = [a for a, t in zip(arrays, signature.types, strict=True) if t.is_float] + douts
    dtypes = {a.dtype for a in floats}
    if len(dtypes) != 1 or next(iter(dtypes)).name not in _FLOATS:
        raise UsageError(
            f"example's float arrays must share one dtype, float64 or float32; got {dtypes}"
        )
    several = (f"dout{k}" for k in range(len(douts)))
    names = [*layer.argument_names, *(("dout",) if len(douts) == 1 else several)]
    dims_of = [*signature.inputs, *signature.outputs]
    given = [*arrays, *douts]
    sizes: dict[str, int] = {}
    for name, array, dims in zip(names, given, dims_of, strict=True):
        if array.ndim != len(dims):
            raise UsageError(f"example's {name} has shape {array.shape}; {signature} wants {dims}")
        for dim, size in zip(dims, array.shape, strict=True):
            if isinstance(dim, str):
                sizes.setdefault(dim, size)
    missing = [n for n in signature.names if n not in sizes]
    if missing:
        raise UsageError(
            f"example's shapes do not say the size {missing[0]!r} of {signature} (it is never "
            "an axis of its own): check this case by drawing, with sizes= fixing it"
        )
    for name, array, dims in zip(names, given, dims_of, strict=True):
        for dim, size in zip(dims, array.shape, strict=True):
            expected = int(evaluate(dim, sizes))
            if size != expected:
                raise UsageError(
                    f"example's {name} has shape {array.shape}, which does not fit {signature} "
                    f"(size {dim} is {expected} elsewhere)"
                )
    for requirement in plan.requirements:
        if not bool(requirement.comparison.holds(sizes)):
            raise UsageError(f"example's sizes {sizes} break {requirement.where}")
    for name, array, kind in zip(names, arrays, signature.types, strict=False):
        if kind.kind == "int":
            low, high = kind.limits(sizes)
            inside = array.size == 0 or low <= array.min() <= array.max() <= high
            if array.dtype.kind not in "iu" or not inside:
                raise UsageError(
                    f"example's {name} must hold integers in {kind}, that is {low}..{high}"
                )
        elif kind.kind == "bool" and array.dtype != np.bool_:
            raise UsageError(f"example's {name} must be a boolean array ({kind} in {signature})")
    for name, array in zip(names, given, strict=True):
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise UsageError(f"example's {name} is not finite")
    return make_case(layer, sizes, arrays, douts)
