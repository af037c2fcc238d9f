"""Drawing cases for a user's layer, and reading a given one.

A case is one blob of bytes (as in `gradcheck.strategies`): a dtype byte, one byte per
size named in the signature (`gradcheck.user.sizes` turns them into sizes that meet
every constraint), then per input its bytes — for a float input a scale byte and the
bytes of a grid of the input's largest shape, for an int or bool input the grid alone —
then the grid of each output's dout. Values come from the helpers of
`gradcheck.core.values` (`decode_values`, `VALUES`, `SCALES`): byte 0 is the smallest
size, the value 1.0, the integer 0 (or the end of its range nearest 0) and False, and
each value is read from the grid's leading corner, so that it keeps its byte when the
shrinker makes a size smaller. A failure therefore shrinks to the smallest sizes the
constraints allow, values of 1, integers of 0 and masks of False wherever the bug allows.

Each float input's scale byte also picks how its values are drawn
(`gradcheck.core.values.domain_values`): the small table, squashed into the bounds (a value
v stays where it lies inside, else low + |v|, high - |v|, or low + (high - low)(1 +
v / (1 + |v|)) / 2 for a finite interval), or one of the regimes that cover the declared
domain (spread magnitudes, edges, tiny values, ties; without bounds the domain is
(-64, 64)). douts come from the table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.core.values import corner, decode_values, drawn_values
from gradcheck.errors import UsageError
from gradcheck.user.outputs import make_case
from gradcheck.user.signature import InputType, Requirement
from gradcheck.user.sizes import Derived, SizeSpace, size_space
from gradcheck.user.types import UserCase, UserLayer

#: The largest blob a case may need (hypothesis gives a test case 8 KiB in all).
MAX_CASE_BYTES = 4096
_DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class Plan:
    """How cases of one layer are drawn: the feasible sizes, the requirements they meet
    (implied and the user's constraints), the dtypes, and each array's grid."""

    space: SizeSpace
    requirements: tuple[Requirement, ...]
    dtypes: tuple[np.dtype[Any], ...]
    types: tuple[InputType, ...]
    grids: tuple[tuple[int, ...], ...]
    output_grids: tuple[tuple[int, ...], ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The drawn sizes, one byte each."""
        return self.space.drawn

    @property
    def length(self) -> int:
        pairs = zip(self.types, self.grids, strict=True)
        arrays = sum(kind.is_float + math.prod(grid) for kind, grid in pairs)
        outputs = sum(math.prod(grid) for grid in self.output_grids)
        return 1 + len(self.names) + arrays + outputs


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
    constraints: Sequence[Requirement] = (),
) -> Plan:
    """Validate the drawing options against the signature, enumerate the feasible sizes
    and lay out the blob."""
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
        if isinstance(size, tuple | list):
            if len(size) != 2:
                raise UsageError(
                    f"sizes[{name!r}] = {size!r}: give one size or a (low, high) range"
                )
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
        values = {}
        for inputs in range(ranges[source][0], ranges[source][1] + 1):
            values[inputs] = _whole(function(inputs), f"parameters_per_unit({inputs})")
        ranges[target] = (min(values.values()), max(values.values()))
        derivation = Derived(target, source, function, values)
    requirements = (*signature.requirements(), *constraints)
    space = size_space(signature.names, ranges, requirements, derivation)
    plan = Plan(
        space,
        requirements,
        _dtypes(dtypes),
        signature.types,
        tuple(tuple(space.largest(d) for d in dims) for dims in signature.inputs),
        tuple(tuple(space.largest(d) for d in dims) for dims in signature.outputs),
    )
    if plan.length > MAX_CASE_BYTES:
        raise UsageError(
            f"the largest case of {signature} with these sizes needs {plan.length} bytes of "
            f"random data (at most {MAX_CASE_BYTES}): lower max_size or the sizes of the "
            "largest arrays"
        )
    return plan


def integers(index: np.ndarray, low: int, high: int) -> np.ndarray:
    """The index-th integer of [low, high] in order of magnitude: 0, 1, -1, 2, -2, ...
    where the range holds 0, else from the end nearest 0 (index taken modulo the count)."""
    index = np.asarray(index, dtype=np.int64) % (high - low + 1)
    if low >= 0:
        return low + index
    if high <= 0:
        return high - index
    both = min(high, -low)  # 0, 1, -1, ..., both, -both alternate; then the longer side
    alternating = np.where(index % 2 == 1, (index + 1) // 2, -(index // 2))
    beyond = index - both
    return np.where(index <= 2 * both, alternating, beyond if high > -low else -beyond)


def decode(layer: UserLayer, plan: Plan, blob: bytes) -> UserCase:
    """The case a blob stands for."""
    raw = np.frombuffer(blob, dtype=np.uint8)
    dtype = plan.dtypes[int(raw[0]) % len(plan.dtypes)]
    sizes = plan.space.draw(raw[1 : 1 + len(plan.names)].tolist())
    signature = layer.signature
    start = 1 + len(plan.names)
    arguments = []
    for k, (dims, kind, grid) in enumerate(
        zip(signature.inputs, signature.types, plan.grids, strict=True)
    ):
        count = math.prod(grid)
        shape = signature.shape(dims, sizes)
        if kind.is_float:
            scale_byte = int(raw[start])
            start += 1
            cells = corner(raw[start : start + count], shape, grid)
            values = drawn_values(scale_byte, cells, layer.bounds[k], dtype)
            arguments.append(values.astype(dtype))
        else:
            cells = corner(raw[start : start + count], shape, grid)
            if kind.kind == "bool":
                arguments.append(cells % 2 == 1)
            else:
                arguments.append(integers(cells, *kind.limits(sizes)))
        start += count
    douts = []
    for dims, grid in zip(signature.outputs, plan.output_grids, strict=True):
        count = math.prod(grid)
        shape = signature.shape(dims, sizes)
        douts.append(decode_values(raw[start : start + count], shape, grid).astype(dtype))
        start += count
    return make_case(layer, sizes, arguments, douts)


def cases(layer: UserLayer, plan: Plan) -> Any:
    """The hypothesis strategy of a layer's cases."""
    from hypothesis import strategies as st  # lazy: hypothesis loads only when a check runs

    return st.binary(min_size=plan.length, max_size=plan.length).map(
        lambda blob: decode(layer, plan, blob)
    )
