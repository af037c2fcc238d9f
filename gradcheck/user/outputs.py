"""Several outputs as one: the joined output every oracle works on.

A layer may return several arrays (``"->(n,h),(n,h)"``: an LSTM cell's h and c). The
scalar whose gradient is checked is then E = Σ_k ⟨dout_k, out_k⟩, and the backward gets
one dout per output, before the forward's arguments: backward(dout_0, dout_1, x, ...).

Inside the engine the outputs are joined into one array, so that the finite
differences, the Jacobian, the structure analysis and the comparisons see one output
(E = ⟨dout, out⟩ of the joined arrays is the same sum):

- when every output ends in the same unit axis (same dimension in the signature), each
  is reshaped to (rows, units) and they are stacked along the rows: the unit axis
  keeps its meaning;
- otherwise each is flattened and they are concatenated (no unit axis).

One output is its own join, untouched. `join` uses np.reshape and np.concatenate, so it
joins `Tracked` arrays too (their rules carry the error bounds along).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gradcheck.user.signature import Signature
from gradcheck.user.types import UserCase, UserLayer


@dataclass(frozen=True)
class OutputLayout:
    """The shapes of a case's outputs and how they join."""

    shapes: tuple[tuple[int, ...], ...]
    by_units: bool

    @property
    def single(self) -> bool:
        return len(self.shapes) == 1

    @property
    def joined_shape(self) -> tuple[int, ...]:
        if self.single:
            return self.shapes[0]
        if self.by_units:
            units = self.shapes[0][-1]
            return (sum(int(np.prod(s)) // units for s in self.shapes), units)
        return (sum(int(np.prod(s)) for s in self.shapes),)

    def join(self, values: Sequence[Any]) -> Any:
        """The joined array of per-output arrays (plain or Tracked)."""
        if self.single:
            return values[0]
        if self.by_units:
            units = self.shapes[0][-1]
            return np.concatenate([np.reshape(v, (-1, units)) for v in values], axis=0)
        return np.concatenate([np.reshape(v, (-1,)) for v in values], axis=0)

    def split(self, joined: Any) -> list[Any]:
        """The per-output arrays of a joined one (views)."""
        if self.single:
            return [joined]
        flat = np.reshape(joined, (-1,))
        parts, start = [], 0
        for shape in self.shapes:
            count = int(np.prod(shape))
            parts.append(np.reshape(flat[start : start + count], shape))
            start += count
        return parts

    def locate(self, flat_index: int) -> tuple[int, tuple[int, ...]]:
        """(output, index within it) of an entry of the joined array."""
        start = 0
        for k, shape in enumerate(self.shapes):
            count = int(np.prod(shape))
            if flat_index < start + count:
                return k, tuple(int(i) for i in np.unravel_index(flat_index - start, shape))
            start += count
        raise IndexError(flat_index)


def layout_of(signature: Signature, sizes: Any) -> OutputLayout:
    shapes = tuple(signature.output_shapes(sizes))
    return OutputLayout(shapes, signature.unit_name is not None)


def make_case(
    layer: UserLayer,
    sizes: dict[str, int],
    arguments: Sequence[np.ndarray],
    douts: Sequence[np.ndarray],
) -> UserCase:
    """The case of these arrays, its sizes in the signature's order."""
    ordered = {name: sizes[name] for name in layer.signature.names}
    joined = layout_of(layer.signature, ordered).join(list(douts))
    several = tuple(douts) if len(douts) > 1 else None
    return UserCase(ordered, tuple(arguments), joined, layer.argument_names, several)


def single_output_view(layer: UserLayer, case: UserCase) -> tuple[UserLayer, UserCase]:
    """The layer and case as one flat output: forward(*args) -> the joined outputs
    flattened, backward(dout, *args) with the flat dout split into one per output. For
    readers of one output (the diagnosis); a layer with one output is returned as is."""
    if case.douts is None:
        return layer, case
    layout = layout_of(layer.signature, case.sizes)

    def forward(*arguments: Any) -> Any:
        return np.reshape(layout.join(list(layer.forward(*arguments))), (-1,))

    def backward(dout: Any, *arguments: Any) -> Any:
        return layer.backward(*layout.split(dout), *arguments)

    flat = replace(case, dout=np.reshape(case.dout, (-1,)), douts=None)
    return replace(layer, forward=forward, backward=backward), flat


def outputs_of(value: Any) -> list[Any]:
    """A forward's result as a list of outputs (a tuple or list is several)."""
    return list(value) if isinstance(value, tuple | list) else [value]
