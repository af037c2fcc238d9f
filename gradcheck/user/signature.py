"""Shapes of a user's layer, declared by a numpy gufunc-style signature.

``"(n,i),(i,j),(j)->(n,j)"`` says that the forward takes three arrays, x (n × i),
W (i × j) and b (j), and returns one array of shape n × j. Each name is a size that
hypothesis draws (the same name is the same size everywhere); ``()`` is a scalar (a 0-d
array). A size may also be

- an integer: ``(k,c,3,3)`` (a 3 × 3 kernel);
- integer arithmetic on the names (`gradcheck.user.expressions`: + - * // % and
  parentheses, Python's flooring division): ``(n,k,h-p+1,w-q+1)`` (VALID convolution),
  ``(n,c,h//2,w//2)`` (2 × 2 pooling), ``(n,c*h*w)`` (flatten), ``(i,4*h)`` (stacked
  LSTM weights). Every name must be a size of some input; every size, drawn or
  computed, is at least 1 (an implied constraint of the drawing).

Several outputs are groups after the arrow: ``"->(n,h),(n,h)"`` (an LSTM cell's h and
c). The last axis of the output (of every output, when they share it) is the layer's
unit axis: output unit j is out[..., j].

An input is a float array unless a type follows its group; such inputs are never
differentiated (nor perturbed by finite differences):

- ``(n)int[0,j)``: integers in [0, j) (``]`` closes the range: ``int[-1,1]``); the bounds
  are size expressions; drawn values shrink towards 0 (then 1, -1, 2, ...);
- ``(n,t)bool``: booleans, shrinking towards False;
- ``float`` may be written for the default.

Parsing is cheap (no numpy): the pytest plugin may validate signatures without loading
anything heavy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gradcheck.errors import SignatureError
from gradcheck.user.expressions import (
    Comparison,
    Dimension,
    Expression,
    divisors,
    evaluate,
    names_of,
    parse_dimension,
    render,
)

__all__ = ["Dimension", "InputType", "Requirement", "Signature", "parse_signature"]


@dataclass(frozen=True)
class InputType:
    """What an input holds: "float" (differentiated), "int" (in [low, high), or
    [low, high] when closed) or "bool"."""

    kind: str = "float"
    low: Dimension | None = None
    high: Dimension | None = None
    closed: bool = False
    text: str = "float"

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    def limits(self, sizes: Mapping[str, int]) -> tuple[int, int]:
        """The smallest and largest value an int input may hold for these sizes."""
        assert self.low is not None and self.high is not None
        low, high = int(evaluate(self.low, sizes)), int(evaluate(self.high, sizes))
        return low, high if self.closed else high - 1

    def __str__(self) -> str:
        return self.text


FLOAT = InputType()


@dataclass(frozen=True)
class Requirement:
    """A condition every drawn case meets: a constraint, or one the signature implies
    (a computed size is ≥ 1, a divisor is not 0, an int range is not empty). `where`
    names the part of the signature (or the constraint) it comes from."""

    comparison: Comparison
    where: str
    kind: str  # "size", "divisor", "range" or "constraint"

    @property
    def names(self) -> tuple[str, ...]:
        return self.comparison.names

    def failure(self) -> str:
        """What it means when no drawable sizes meet it."""
        if self.kind == "size":
            return f"{self.where} is ≤ 0 for every drawable size"
        if self.kind == "divisor":
            return f"{self.where} is 0 for every drawable size (division by zero)"
        if self.kind == "range":
            return f"{self.where} is empty for every drawable size"
        return f"{self.where} holds for no drawable sizes"


@dataclass(frozen=True)
class Signature:
    """A parsed signature: one tuple of dimensions per input and per output, and each
    input's type. A dimension is a name (drawn), an int (fixed) or an `Expression`."""

    text: str
    inputs: tuple[tuple[Dimension, ...], ...]
    outputs: tuple[tuple[Dimension, ...], ...]
    types: tuple[InputType, ...] = ()

    def __post_init__(self) -> None:
        if not self.types:
            object.__setattr__(self, "types", (FLOAT,) * len(self.inputs))

    @property
    def output(self) -> tuple[Dimension, ...]:
        """The dimensions of the only output (a signature with several has no `output`)."""
        if len(self.outputs) != 1:
            raise SignatureError(f"{self.text!r} declares {len(self.outputs)} outputs")
        return self.outputs[0]

    @property
    def names(self) -> tuple[str, ...]:
        """The drawn size names, in order of first appearance."""
        seen: dict[str, None] = {}
        for dims, kind in zip(self.inputs, self.types, strict=True):
            for dim in (*dims, *(d for d in (kind.low, kind.high) if d is not None)):
                seen.update(dict.fromkeys(names_of(dim)))
        return tuple(seen)

    @property
    def unit_name(self) -> Dimension | None:
        """The dimension of the output's last axis (the unit axis): that of every output
        when they share it; None for a scalar output or outputs that differ there."""
        lasts = {dims[-1] if dims else None for dims in self.outputs}
        return lasts.pop() if len(lasts) == 1 else None

    def shape(self, dims: tuple[Dimension, ...], sizes: Mapping[str, int]) -> tuple[int, ...]:
        """The concrete shape of dims for the drawn sizes."""
        return tuple(int(evaluate(dim, sizes)) for dim in dims)

    def input_shapes(self, sizes: Mapping[str, int]) -> list[tuple[int, ...]]:
        return [self.shape(dims, sizes) for dims in self.inputs]

    def output_shapes(self, sizes: Mapping[str, int]) -> list[tuple[int, ...]]:
        return [self.shape(dims, sizes) for dims in self.outputs]

    def output_shape(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        return self.shape(self.output, sizes)

    def axis_names(self, argument: int) -> tuple[str, ...]:
        """Readable names of an input's axes: the signature's names, made unique ("n",
        "n'") where one name labels two axes; fixed sizes are named axis0, axis1, ...;
        computed ones by their expression."""
        return _unique_names(self.inputs[argument])

    def output_axis_names(self, output: int = 0) -> tuple[str, ...]:
        return _unique_names(self.outputs[output])

    @property
    def float_inputs(self) -> tuple[int, ...]:
        """The positions of the inputs that can be differentiated."""
        return tuple(k for k, kind in enumerate(self.types) if kind.is_float)

    def requirements(self) -> tuple[Requirement, ...]:
        """The conditions the signature implies on the sizes: every computed size ≥ 1,
        no divisor 0, every int range non-empty."""
        found: dict[tuple[Any, ...], Requirement] = {}

        def add(comparison: Comparison, where: str, kind: str) -> None:
            key = (comparison.left, comparison.op, comparison.right)
            found.setdefault(key, Requirement(comparison, where, kind))

        groups = [("input", k, dims) for k, dims in enumerate(self.inputs)]
        groups += [("output", k, dims) for k, dims in enumerate(self.outputs)]
        for side, k, dims in groups:
            for axis, dim in enumerate(dims):
                for divisor in [d for d in divisors(dim) if not isinstance(d, int)]:
                    where = f"the divisor {render(divisor)!r} in {self._part(side, k, axis, dim)}"
                    add(Comparison(divisor, "!=", 0, f"{render(divisor)} != 0"), where, "divisor")
                if isinstance(dim, Expression):
                    text = f"{dim} >= 1"
                    add(Comparison(dim, ">=", 1, text), self._part(side, k, axis, dim), "size")
        for k, kind in enumerate(self.types):
            if kind.kind != "int":
                continue
            assert kind.low is not None and kind.high is not None
            op = "<=" if kind.closed else "<"
            where = f"the range {kind} of input {k + 1} of {self.text!r}"
            for dim in (kind.low, kind.high):
                for divisor in [d for d in divisors(dim) if not isinstance(d, int)]:
                    text = f"{render(divisor)} != 0"
                    add(Comparison(divisor, "!=", 0, text), f"the divisor in {where}", "divisor")
            text = f"{render(kind.low)} {op} {render(kind.high)}"
            add(Comparison(kind.low, op, kind.high, text), where, "range")
        return tuple(found.values())

    def _part(self, side: str, k: int, axis: int, dim: Dimension) -> str:
        return f"the size {str(dim)!r} ({side} {k + 1}, axis {axis}) of {self.text!r}"

    def __str__(self) -> str:
        return self.text


def _unique_names(dims: tuple[Dimension, ...]) -> tuple[str, ...]:
    names: list[str] = []
    for axis, dim in enumerate(dims):
        name = f"axis{axis}" if isinstance(dim, int) else str(dim)
        while name in names:
            name += "'"
        names.append(name)
    return tuple(names)


# ---- parsing --------------------------------------------------------------------------------


def _split_top(body: str) -> list[str]:
    """body split at the commas outside parentheses and brackets."""
    parts, depth, start = [], 0, 0
    for position, char in enumerate(body):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(body[start:position])
            start = position + 1
    parts.append(body[start:])
    return parts


def _parse_group(group: str, where: str, text: str) -> tuple[Dimension, ...]:
    if not group.strip():
        return ()
    dims: list[Dimension] = []
    for raw in _split_top(group):
        token = raw.strip()
        if not token:
            raise SignatureError(f"{where} of {text!r} has an empty dimension between commas")
        what = f"the dimension {token!r} in {where} of {text!r}"
        dim = parse_dimension(token, what, SignatureError)
        if isinstance(dim, int) and dim < 1:
            raise SignatureError(
                f"{where} of {text!r} has a fixed size {dim} ({token!r}); sizes are ≥ 1"
            )
        dims.append(dim)
    return tuple(dims)


def _parse_type(suffix: str, where: str, text: str) -> InputType:
    body = suffix.strip()
    if body in ("", "float"):
        return FLOAT
    if body == "bool":
        return InputType("bool", text="bool")
    usage = (
        "after an input's parentheses only its type may follow: float (the default), bool, "
        "or int[low,high) with sizes as bounds (']' to include high), like (n)int[0,j)"
    )
    if not body.startswith("int"):
        raise SignatureError(f"{where} of {text!r} is followed by {body!r}; {usage}")
    rest = body[3:].strip()
    if not (rest.startswith("[") and rest[-1:] in ("]", ")")):
        raise SignatureError(f"{where} of {text!r} has the type {body!r}; {usage}")
    parts = _split_top(rest[1:-1])
    if len(parts) != 2:
        raise SignatureError(
            f"the range {body!r} of {where} of {text!r} needs two bounds, low and high; {usage}"
        )
    part = f"{body!r} ({where} of {text!r})"
    low, high = (
        parse_dimension(bound, f"the bound {bound.strip()!r} of {part}", SignatureError)
        for bound in parts
    )
    return InputType("int", low, high, rest.endswith("]"), "int" + rest.replace(" ", ""))


def _groups(side: str, what: str, text: str) -> list[tuple[str, str]]:
    """The (group body, type suffix) pairs of one side of the arrow."""
    found: list[tuple[str, str]] = []
    position, length = 0, len(side)
    while True:
        while position < length and side[position].isspace():
            position += 1
        if position >= length or side[position] != "(":
            if not found:
                raise SignatureError(
                    f"the {what} of {text!r} has no parenthesised group: each argument's "
                    "dimensions go in parentheses, like (n,i)"
                )
            raise SignatureError(
                f"the {what} of {text!r} must be parenthesised groups separated by commas, like "
                f"(n,i),(i,j); found {side[position:].strip()!r} before group {len(found) + 1}"
            )
        depth, end = 0, position
        while end < length:
            depth += {"(": 1, ")": -1}.get(side[end], 0)
            if depth == 0:
                break
            end += 1
        if depth != 0:
            raise SignatureError(f"the {what} of {text!r} has an unclosed '('")
        body = side[position + 1 : end]
        suffix_start, depth = end + 1, 0
        cursor = suffix_start
        while cursor < length:
            char = side[cursor]
            if char == "[" or (char == "(" and depth > 0):
                depth += 1
            elif char in "])" and depth > 0:
                depth -= 1
            elif depth == 0 and (char == "," or char == "("):
                break
            cursor += 1
        found.append((body, side[suffix_start:cursor]))
        if cursor >= length:
            return found
        if side[cursor] == "(":
            raise SignatureError(
                f"the {what} of {text!r} must be parenthesised groups separated by commas, like "
                f"(n,i),(i,j); found {side[suffix_start:cursor].strip()!r} before group "
                f"{len(found) + 1}"
            )
        position = cursor + 1


def parse_signature(text: str) -> Signature:
    """Parse ``"(n,i),(i,j),(j)->(n,j)"``; SignatureError names what is wrong.

    Rules: one or more inputs and outputs; every name of an output, of an int range or
    of an expression is the size of some input axis; names are identifiers, fixed
    sizes positive integers, expressions as in `gradcheck.user.expressions`.
    """
    if not isinstance(text, str):
        raise SignatureError(f"a signature is a string like '(n,i),(i,j)->(n,j)', got {text!r}")
    if text.count("->") != 1:
        raise SignatureError(
            f"the signature {text!r} must have exactly one '->' between the inputs and the "
            "output, like '(n,i),(i,j),(j)->(n,j)'"
        )
    left, right = text.split("->")
    inputs, types = [], []
    for k, (body, suffix) in enumerate(_groups(left, "inputs", text)):
        where = f"inputs group {k + 1}"
        inputs.append(_parse_group(body, where, text))
        types.append(_parse_type(suffix, where, text))
    outputs = []
    for k, (body, suffix) in enumerate(_groups(right, "output", text)):
        where = f"output group {k + 1}"
        if suffix.strip() not in ("", "float"):
            raise SignatureError(
                f"{where} of {text!r} is followed by {suffix.strip()!r}: a layer's outputs are "
                "float arrays, and types (int[...], bool) go after inputs"
            )
        outputs.append(_parse_group(body, where, text))
    signature = Signature(text, tuple(inputs), tuple(outputs), tuple(types))
    drawn = {name for dims in inputs for dim in dims for name in names_of(dim)}
    parts: list[tuple[str, Dimension]] = [
        (f"the output{'' if len(outputs) == 1 else f' {k + 1}'} of {text!r}", dim)
        for k, dims in enumerate(outputs)
        for dim in dims
    ]
    parts += [
        (f"the range {kind} of input {k + 1} of {text!r}", dim)
        for k, kind in enumerate(types)
        for dim in (kind.low, kind.high)
        if dim is not None
    ]
    for where, dim in parts:
        unknown = [name for name in names_of(dim) if name not in drawn]
        if unknown:
            what = (
                f"{where} has the dimension"
                if isinstance(dim, str)
                else f"the size {str(dim)!r} in {where} uses the name"
            )
            raise SignatureError(
                f"{what} {unknown[0]!r}, which no input has; every size must be computed "
                "from the sizes of input axes"
            )
    return signature
