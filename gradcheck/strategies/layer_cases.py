"""Cases of one layer: `cases` and `case_stacks`, each case decoded from a blob of bytes.

A stack shares layer type, activation, dtype and shapes (one vectorised pass of
`check_many`); each case's values come from its own bytes (`_decode`), so that the
shrinker moves every value towards 1 on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from gradcheck.catalogue.activations import ACTIVATIONS, Activation, resolve_activation
from gradcheck.catalogue.checker import Case
from gradcheck.catalogue.layers import LAYER_TYPES, LayerType, resolve_layer_type
from gradcheck.core.oracles import step_sizes
from gradcheck.core.tolerance import recording, track
from gradcheck.core.values import VALUES, corner, drawn_values, pick_size
from gradcheck.strategies.rows import check_bounds, dtype_choices, resolve_all

_KINK_MODES = ("avoid", "allow")


def cases(
    *,
    layer_types: Sequence[str | LayerType] | None = None,
    activations: Sequence[str | Activation] | None = None,
    dtypes: Sequence[str] = ("float64", "float32"),
    coupled: bool | None = False,
    min_inputs: int = 1,
    max_inputs: int = 4,
    min_units: int = 1,
    max_units: int = 4,
    min_batch: int = 1,
    max_batch: int = 4,
    kinks: str = "avoid",
) -> st.SearchStrategy[Case]:
    """One case: a layer type, an activation, z (N × I), θ (J × P) and δ (N × J).

    layer_types, activations and dtypes are the choices (names or rows; default: the
    whole catalogue, unit-partitioned layers only unless coupled is None or True).
    kinks="avoid" places every pre-activation clear of the activation's kinks by more
    than the finite-difference step can reach (layers that cannot move their
    pre-activations, like cosine, are paired only with smooth activations); "allow"
    leaves values where they fall, for the subgradient check.
    """
    return case_stacks(
        layer_types=layer_types,
        activations=activations,
        dtypes=dtypes,
        coupled=coupled,
        min_inputs=min_inputs,
        max_inputs=max_inputs,
        min_units=min_units,
        max_units=max_units,
        min_batch=min_batch,
        max_batch=max_batch,
        kinks=kinks,
        min_size=1,
        max_size=1,
    ).map(lambda stack: stack[0])


def case_stacks(
    *,
    layer_types: Sequence[str | LayerType] | None = None,
    activations: Sequence[str | Activation] | None = None,
    dtypes: Sequence[str] = ("float64", "float32"),
    coupled: bool | None = False,
    min_inputs: int = 1,
    max_inputs: int = 4,
    min_units: int = 1,
    max_units: int = 4,
    min_batch: int = 1,
    max_batch: int = 4,
    kinks: str = "avoid",
    min_size: int = 1,
    max_size: int = 32,
) -> st.SearchStrategy[list[Case]]:
    """Lists of cases that share layer type, activation, dtype and shape, which
    `gradcheck.catalogue.checker.check_many` checks in one vectorised pass. Arguments as for
    `cases`; min_size and max_size bound the length. A failing list shrinks to the one
    case that fails."""
    check_bounds("inputs", min_inputs, max_inputs)
    check_bounds("units", min_units, max_units)
    check_bounds("batch", min_batch, max_batch)
    check_bounds("size", min_size, max_size)
    if not isinstance(kinks, str) or kinks not in _KINK_MODES:
        raise InvalidArgument(f"kinks must be one of {_KINK_MODES}, got {kinks!r}")
    layer_rows = resolve_all("layer_types", layer_types, resolve_layer_type, LAYER_TYPES)
    if coupled is not None:
        layer_rows = [row for row in layer_rows if row.coupled == coupled]
    activation_rows = resolve_all("activations", activations, resolve_activation, ACTIVATIONS)
    chosen_dtypes = dtype_choices(dtypes)
    plans = []
    for layer in layer_rows:
        sizes = _sizes(layer, min_inputs, max_inputs, min_units, max_units)
        if sizes is None:
            continue
        choices = activation_rows if layer.uses_activation else [ACTIVATIONS["identity"]]
        if kinks == "avoid" and layer.clear_of_kinks is None:
            choices = [row for row in choices if not row.kinks]
        if choices:
            plans.append((layer, choices, sizes))
    if not plans:
        raise InvalidArgument(
            "no layer type fits these bounds and choices (square layers need I = J, "
            "coupled ones J >= 2, and layers that cannot avoid kinks need a smooth activation)"
        )
    return _stacks(plans, chosen_dtypes, min_batch, max_batch, kinks, min_size, max_size)


def _sizes(
    layer: LayerType, min_inputs: int, max_inputs: int, min_units: int, max_units: int
) -> tuple[int, int, int, int] | None:
    """The (I range, J range) a layer type can take within the bounds, or None."""
    low_units = max(min_units, layer.min_units)
    if layer.square:
        low, high = max(min_inputs, low_units), min(max_inputs, max_units)
        return None if low > high else (low, high, low, high)
    if low_units > max_units:
        return None
    return (min_inputs, max_inputs, low_units, max_units)


#: Header bytes of a blob: layer type, activation, parameter, dtype, I, J, N.
_HEADER = 7


def _stacks(
    plans: list[tuple[LayerType, list[Activation], tuple[int, int, int, int]]],
    chosen_dtypes: list[np.dtype[Any]],
    min_batch: int,
    max_batch: int,
    kinks: str,
    min_size: int,
    max_size: int,
) -> st.SearchStrategy[list[Case]]:
    """Each case is one blob of bytes: the first blob's header picks the layer type,
    activation, parameter, dtype and sizes for the whole stack, and each blob's body its
    values. One byte string per case, rather than a draw per choice, because hypothesis
    fills the tail of a long run of draws with simplest values far more often than it
    fills bytes with zeros: per-choice draws gave all-ones δ in 6 cases out of 10."""
    most_inputs = max(high for _, _, (_, high, _, _) in plans)
    most_units = max(high for _, _, (_, _, _, high) in plans)
    most_parameters = max(layer.parameters_per_unit(most_inputs) for layer, _, _ in plans)
    grids = ((max_batch, most_inputs), (most_units, most_parameters), (max_batch, most_units))
    body = 2 + sum(rows * columns for rows, columns in grids)
    blob = st.binary(min_size=_HEADER + body, max_size=_HEADER + body)
    return st.lists(blob, min_size=min_size, max_size=max_size).map(
        lambda blobs: _build(blobs, plans, chosen_dtypes, grids, min_batch, max_batch, kinks)
    )


def _build(
    blobs: list[bytes],
    plans: list[tuple[LayerType, list[Activation], tuple[int, int, int, int]]],
    chosen_dtypes: list[np.dtype[Any]],
    grids: tuple[tuple[int, int], ...],
    min_batch: int,
    max_batch: int,
    kinks: str,
) -> list[Case]:
    raw = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), -1)
    header = [int(b) for b in raw[0, :_HEADER]]
    layer, choices, (low_inputs, high_inputs, low_units, high_units) = plans[header[0] % len(plans)]
    phi = choices[header[1] % len(choices)]
    if phi.parameter_range is not None:  # from the value table: byte 0 is 1, odd bytes negative
        phi = phi.with_parameter(float(np.clip(VALUES[header[2]], *phi.parameter_range)))
    dtype = chosen_dtypes[header[3] % len(chosen_dtypes)]
    inputs = pick_size(header[4], low_inputs, high_inputs)
    parameters = layer.parameters_per_unit(inputs)
    units = (
        inputs
        if layer.square
        else pick_size(header[5], low_units, high_units, (inputs, parameters))
    )
    batch = pick_size(header[6], min_batch, max_batch, (1,))
    shapes = ((batch, inputs), (units, parameters), (batch, units))
    z, theta, delta = _decode(raw[:, _HEADER:], shapes, grids, dtype)
    for column in layer.positive_columns:
        theta[..., column] = np.abs(theta[..., column])
    theta = _inside_domain(layer, phi, z, theta)
    if kinks == "avoid" and layer.clear_of_kinks is not None:
        # Work on the values the case will hold in its dtype, so that the margins hold there.
        z, theta = (a.astype(dtype).astype(np.float64) for a in (z, theta))
        theta = layer.clear_of_kinks(
            track(z, 2.0 * step_sizes(z)), track(theta, 2.0 * step_sizes(theta)), phi
        )
    return [
        Case(
            layer_type=layer,
            activation=phi,
            z=z[k].astype(dtype),
            theta=theta[k].astype(dtype),
            delta=delta[k].astype(dtype),
        )
        for k in range(len(blobs))
    ]


def _inside_domain(
    layer: LayerType, phi: Activation, z: np.ndarray, theta: np.ndarray
) -> np.ndarray:
    """θ divided by 4 (exactly: a power of two) until no pre-activation leaves the
    activation's domain, case by case: large values stay in range by construction."""
    for _ in range(32):
        with recording() as met:
            layer.forward(track(z), track(theta), phi)
        outside = np.zeros(len(theta), dtype=bool)
        for found in met:
            if found.kind == "domain":
                outside |= found.cases(len(theta))
        if not outside.any():
            break
        theta = np.where(outside[:, None, None], theta / 4.0, theta)
    return theta


def _decode(
    raw: np.ndarray,
    shapes: tuple[tuple[int, int], ...],
    grids: tuple[tuple[int, int], ...],
    dtype: np.dtype[Any],
) -> list[np.ndarray]:
    """Bytes to values for K stacked cases: two scale bytes (for z and θ), then z, θ and δ,
    each from its own grid's `corner`. z and θ are drawn in the regime their scale byte
    picks (`drawn_values` over the default domain (-DEFAULT_MAGNITUDE, DEFAULT_MAGNITUDE)):
    the small table at scale SCALES[s % 6] for half of all scale bytes, byte 0 among them,
    else magnitudes spread over every order the domain allows, values near its edges, or
    near-ties. δ comes from the table alone, as a user layer's output gradient does: its
    magnitude scales the whole gradient and nothing else (the magnitude sweep covers it)."""
    arrays, start = [], 2
    for k, (shape, grid) in enumerate(zip(shapes, grids, strict=True)):
        size = grid[0] * grid[1]
        bytes_of = [corner(row[start : start + size], shape, grid) for row in raw]
        if k < 2:
            values = [
                drawn_values(int(row[k]), cells, None, dtype)
                for row, cells in zip(raw, bytes_of, strict=True)
            ]
        else:
            values = [VALUES[cells] for cells in bytes_of]
        arrays.append(np.stack(values))
        start += size
    return arrays
