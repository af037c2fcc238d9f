"""Shapes of a user's layer, declared by a numpy gufunc-style signature.

``"(n,i),(i,j),(j)->(n,j)"`` says that the forward takes three arrays, x (n × i),
W (i × j) and b (j), and returns one array of shape n × j. Each name is a size that
hypothesis draws (the same name is the same size everywhere); a number is a fixed size;
``()`` is a scalar argument (a 0-d array). The last axis of the output is the layer's
unit axis: output unit j is out[..., j].

Parsing is cheap (no numpy): the pytest plugin may validate signatures without loading
anything heavy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from gradcheck.errors import SignatureError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUMBER = re.compile(r"^[0-9]+$")
_GROUP = re.compile(r"\(([^()]*)\)")

Dimension = str | int


@dataclass(frozen=True)
class Signature:
    """A parsed signature: one tuple of dimensions per input and one for the output.

    A dimension is a name (drawn) or an int (fixed).
    """

    text: str
    inputs: tuple[tuple[Dimension, ...], ...]
    output: tuple[Dimension, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The drawn size names, in order of first appearance."""
        seen: dict[str, None] = {}
        for dims in (*self.inputs, self.output):
            for dim in dims:
                if isinstance(dim, str):
                    seen.setdefault(dim, None)
        return tuple(seen)

    @property
    def unit_name(self) -> Dimension | None:
        """The dimension of the output's last axis (the unit axis), None for a scalar."""
        return self.output[-1] if self.output else None

    def shape(self, dims: tuple[Dimension, ...], sizes: Mapping[str, int]) -> tuple[int, ...]:
        """The concrete shape of dims for the drawn sizes."""
        return tuple(dim if isinstance(dim, int) else sizes[dim] for dim in dims)

    def input_shapes(self, sizes: Mapping[str, int]) -> list[tuple[int, ...]]:
        return [self.shape(dims, sizes) for dims in self.inputs]

    def output_shape(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        return self.shape(self.output, sizes)

    def axis_names(self, argument: int) -> tuple[str, ...]:
        """Readable names of an input's axes: the signature's names, made unique ("n",
        "n'") where one name labels two axes; fixed sizes are named axis0, axis1, ..."""
        return _unique_names(self.inputs[argument])

    def output_axis_names(self) -> tuple[str, ...]:
        return _unique_names(self.output)

    def __str__(self) -> str:
        return self.text


def _unique_names(dims: tuple[Dimension, ...]) -> tuple[str, ...]:
    names: list[str] = []
    for axis, dim in enumerate(dims):
        name = dim if isinstance(dim, str) else f"axis{axis}"
        while name in names:
            name += "'"
        names.append(name)
    return tuple(names)


def _parse_group(group: str, where: str, text: str) -> tuple[Dimension, ...]:
    body = group.strip()
    if not body:
        return ()
    dims: list[Dimension] = []
    for raw in body.split(","):
        token = raw.strip()
        if _NAME.match(token):
            dims.append(token)
        elif _NUMBER.match(token):
            size = int(token)
            if size < 1:
                raise SignatureError(f"{where} of {text!r} has a fixed size {size}; sizes are ≥ 1")
            dims.append(size)
        elif not token:
            raise SignatureError(f"{where} of {text!r} has an empty dimension between commas")
        else:
            raise SignatureError(
                f"{where} of {text!r} has the dimension {token!r}; a dimension is a name "
                "(a Python identifier such as n or units) or a positive integer "
                "(optional '?' dimensions are not supported)"
            )
    return tuple(dims)


def _parse_side(side: str, what: str, text: str) -> list[tuple[Dimension, ...]]:
    side = side.strip()
    groups = []
    position = 0
    for index, match in enumerate(_GROUP.finditer(side)):
        between = side[position : match.start()].strip()
        expected = "" if index == 0 else ","
        if between != expected:
            raise SignatureError(
                f"the {what} of {text!r} must be parenthesised groups separated by commas, "
                f"like (n,i),(i,j); found {between!r} before group {index + 1}"
            )
        groups.append(_parse_group(match.group(1), f"{what} group {index + 1}", text))
        position = match.end()
    if not groups:
        raise SignatureError(
            f"the {what} of {text!r} has no parenthesised group: each argument's dimensions "
            "go in parentheses, like (n,i)"
        )
    if side[position:].strip():
        raise SignatureError(
            f"the {what} of {text!r} has {side[position:].strip()!r} after its last group; "
            "each argument's dimensions go in parentheses, like (n,i)"
        )
    return groups


def parse_signature(text: str) -> Signature:
    """Parse ``"(n,i),(i,j),(j)->(n,j)"``; SignatureError names what is wrong.

    Rules: one or more inputs, exactly one output, every output dimension named in some
    input (it is drawn there), names are identifiers, fixed sizes positive integers.
    """
    if not isinstance(text, str):
        raise SignatureError(f"a signature is a string like '(n,i),(i,j)->(n,j)', got {text!r}")
    if text.count("->") != 1:
        raise SignatureError(
            f"the signature {text!r} must have exactly one '->' between the inputs and the "
            "output, like '(n,i),(i,j),(j)->(n,j)'"
        )
    left, right = text.split("->")
    inputs = _parse_side(left, "inputs", text)
    outputs = _parse_side(right, "output", text)
    if len(outputs) != 1:
        raise SignatureError(
            f"the signature {text!r} declares {len(outputs)} outputs; a layer's forward returns "
            "exactly one array (use check_backward_cached for a forward returning (out, cache))"
        )
    (output,) = outputs
    drawn = {dim for dims in inputs for dim in dims if isinstance(dim, str)}
    unknown = [dim for dim in output if isinstance(dim, str) and dim not in drawn]
    if unknown:
        raise SignatureError(
            f"the output of {text!r} has the dimension {unknown[0]!r}, which no input has; "
            "every output size must be the size of some input axis"
        )
    return Signature(text, tuple(inputs), output)
