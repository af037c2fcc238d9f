"""The catalogue's rows as strategies (activations, layer types, dtypes), and the checks
of arguments that every strategy of the package shares.

Arguments are checked in hypothesis's manner: a wrong one raises InvalidArgument when the
strategy is made, naming the argument, rather than failing later inside a draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from gradcheck.catalogue.activations import ACTIVATIONS, Activation, resolve_activation
from gradcheck.catalogue.layers import LAYER_TYPES, LayerType, resolve_layer_type

# ---- argument validation, in hypothesis's manner ---------------------------------------------


def check_bounds(name: str, low: int, high: int, least: int = 1) -> None:
    """min_<name> and max_<name>: integers, least <= low <= high."""
    for label, value in ((f"min_{name}", low), (f"max_{name}", high)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(f"{label}={value!r} must be an integer")
    if low < least:
        raise InvalidArgument(f"min_{name}={low} must be at least {least}")
    if high < low:
        raise InvalidArgument(f"max_{name}={high} must be at least min_{name}={low}")


def resolve_all(
    kind: str, choices: Sequence[Any] | None, resolve: Any, catalogue: Any
) -> list[Any]:
    """The rows `choices` name (names or rows; None: the whole catalogue, in its order)."""
    if choices is None:
        return list(catalogue.values())
    if isinstance(choices, str) or not isinstance(choices, Sequence):
        raise InvalidArgument(f"{kind} must be a sequence of names, got {choices!r}")
    if not choices:
        raise InvalidArgument(f"{kind} must not be empty")
    try:
        return [resolve(choice) for choice in choices]
    except LookupError as error:
        raise InvalidArgument(str(error)) from None


# ---- the catalogue strategies ----------------------------------------------------------------


def activations(
    *, names: Sequence[str | Activation] | None = None, smooth: bool = False
) -> st.SearchStrategy[Activation]:
    """Activations from the catalogue (or `names`), identity first; parametric ones draw
    their parameter from its range (leaky_relu's slope takes either sign). smooth=True
    keeps only activations without kinks."""
    rows = resolve_all("names", names, resolve_activation, ACTIVATIONS)
    if smooth:
        rows = [row for row in rows if not row.kinks]
        if not rows:
            raise InvalidArgument("smooth=True left no activation to draw from")
    return st.sampled_from(rows).flatmap(_with_drawn_parameter)


def _with_drawn_parameter(activation: Activation) -> st.SearchStrategy[Activation]:
    if activation.parameter_range is None:
        return st.just(activation)
    low, high = activation.parameter_range
    return st.floats(low, high, allow_nan=False).map(activation.with_parameter)


def layer_types(
    *, coupled: bool | None = False, names: Sequence[str | LayerType] | None = None
) -> st.SearchStrategy[LayerType]:
    """Layer types from the catalogue (or `names`), dense first. coupled=False (the
    default) keeps unit-partitioned types, True the coupled controls, None both."""
    if not (coupled is None or isinstance(coupled, bool)):
        raise InvalidArgument(f"coupled must be True, False or None, got {coupled!r}")
    rows = resolve_all("names", names, resolve_layer_type, LAYER_TYPES)
    if coupled is not None:
        rows = [row for row in rows if row.coupled == coupled]
    if not rows:
        raise InvalidArgument(f"no layer type is left with coupled={coupled!r}")
    return st.sampled_from(rows)


def dtypes(*, names: Sequence[str] = ("float64", "float32")) -> st.SearchStrategy[np.dtype[Any]]:
    """float64, then float32 (or the given names)."""
    return st.sampled_from(dtype_choices(names))


def dtype_choices(names: Sequence[str]) -> list[np.dtype[Any]]:
    """The dtypes `names` stand for, in order; InvalidArgument for anything but a non-empty
    sequence of "float32" and "float64"."""
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise InvalidArgument(f"names must be a non-empty sequence of dtype names, got {names!r}")
    chosen = []
    for name in names:
        if not isinstance(name, str) or name not in ("float32", "float64"):
            raise InvalidArgument(f"dtype {name!r} is not supported; choose float32 or float64")
        chosen.append(np.dtype(name))
    return chosen
