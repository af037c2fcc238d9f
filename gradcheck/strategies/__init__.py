"""Hypothesis strategies for gradcheck's cases, built to shrink to readable counterexamples.

Compose them in your own tests::

    from hypothesis import given
    from gradcheck import strategies as gst

    @given(gst.cases(layer_types=["dense"], activations=["tanh", "gelu"]))
    def test_my_catalogue_row(case):
        gst.assert_gradients_correct(case)

Every strategy shrinks towards the simplest case: the first layer type (dense), the first
activation (identity), I = J = N = 1, float64, and values of 1. Values come from one byte
each (`VALUES`): byte 0 is 1.0, small bytes are small integers and halves of either sign,
the rest irregular magnitudes in [1/8, 8], so a shrunk counterexample reads like a
textbook example while a random draw has non-symmetric weights, random δ and scales away
from 1. Pre-activations are placed clear of kinks by construction (see
`LayerType.clear_of_kinks`), never by rejection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import currently_in_test_context, event, note, target
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from gradcheck import profiles
from gradcheck.catalogue.activations import ACTIVATIONS, Activation, resolve_activation
from gradcheck.catalogue.checker import Case, CheckResult, Verdict, check_many
from gradcheck.catalogue.layers import LAYER_TYPES, LayerType, resolve_layer_type
from gradcheck.catalogue.losses import LOSSES, Loss, resolve_loss
from gradcheck.catalogue.network import Network, NetworkLayer
from gradcheck.catalogue.reproduce import reproduction
from gradcheck.core.oracles import step_sizes
from gradcheck.core.tolerance import recording, track
from gradcheck.core.values import SCALES, VALUES, decode_values, pick_size
from gradcheck.errors import GradientMismatch

__all__ = [
    "VALUES",
    "activations",
    "assert_gradients_correct",
    "case_stacks",
    "cases",
    "dtypes",
    "layer_types",
    "network_stacks",
    "networks",
]

profiles.register()


_KINK_MODES = ("avoid", "allow")


# ---- argument validation, in hypothesis's manner ---------------------------------------------


def _check_bounds(name: str, low: int, high: int, least: int = 1) -> None:
    for label, value in ((f"min_{name}", low), (f"max_{name}", high)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(f"{label}={value!r} must be an integer")
    if low < least:
        raise InvalidArgument(f"min_{name}={low} must be at least {least}")
    if high < low:
        raise InvalidArgument(f"max_{name}={high} must be at least min_{name}={low}")


def _resolve_all(
    kind: str, choices: Sequence[Any] | None, resolve: Any, catalogue: Any
) -> list[Any]:
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
    rows = _resolve_all("names", names, resolve_activation, ACTIVATIONS)
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
    rows = _resolve_all("names", names, resolve_layer_type, LAYER_TYPES)
    if coupled is not None:
        rows = [row for row in rows if row.coupled == coupled]
    if not rows:
        raise InvalidArgument(f"no layer type is left with coupled={coupled!r}")
    return st.sampled_from(rows)


def dtypes(*, names: Sequence[str] = ("float64", "float32")) -> st.SearchStrategy[np.dtype[Any]]:
    """float64, then float32 (or the given names)."""
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise InvalidArgument(f"names must be a non-empty sequence of dtype names, got {names!r}")
    chosen = []
    for name in names:
        if not isinstance(name, str) or name not in ("float32", "float64"):
            raise InvalidArgument(f"dtype {name!r} is not supported; choose float32 or float64")
        chosen.append(np.dtype(name))
    return st.sampled_from(chosen)


# ---- cases -----------------------------------------------------------------------------------


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
    _check_bounds("inputs", min_inputs, max_inputs)
    _check_bounds("units", min_units, max_units)
    _check_bounds("batch", min_batch, max_batch)
    _check_bounds("size", min_size, max_size)
    if not isinstance(kinks, str) or kinks not in _KINK_MODES:
        raise InvalidArgument(f"kinks must be one of {_KINK_MODES}, got {kinks!r}")
    layer_rows = _resolve_all("layer_types", layer_types, resolve_layer_type, LAYER_TYPES)
    if coupled is not None:
        layer_rows = [row for row in layer_rows if row.coupled == coupled]
    activation_rows = _resolve_all("activations", activations, resolve_activation, ACTIVATIONS)
    globals()["dtypes"](names=dtypes)  # validates the names
    dtype_choices = [np.dtype(name) for name in dtypes]
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
    return _stacks(plans, dtype_choices, min_batch, max_batch, kinks, min_size, max_size)


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
    dtype_choices: list[np.dtype[Any]],
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
        lambda blobs: _build(blobs, plans, dtype_choices, grids, min_batch, max_batch, kinks)
    )


def _build(
    blobs: list[bytes],
    plans: list[tuple[LayerType, list[Activation], tuple[int, int, int, int]]],
    dtype_choices: list[np.dtype[Any]],
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
    dtype = dtype_choices[header[3] % len(dtype_choices)]
    inputs = pick_size(header[4], low_inputs, high_inputs)
    parameters = layer.parameters_per_unit(inputs)
    units = (
        inputs
        if layer.square
        else pick_size(header[5], low_units, high_units, (inputs, parameters))
    )
    batch = pick_size(header[6], min_batch, max_batch, (1,))
    shapes = ((batch, inputs), (units, parameters), (batch, units))
    z, theta, delta = _decode(raw[:, _HEADER:], shapes, grids)
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
    raw: np.ndarray, shapes: tuple[tuple[int, int], ...], grids: tuple[tuple[int, int], ...]
) -> list[np.ndarray]:
    """Bytes to values for K stacked cases: two scale bytes (for z and θ), then z, θ and δ,
    each from its own grid (see `decode_values`)."""
    scales = SCALES[raw[:, :2] % len(SCALES)]
    arrays, start = [], 2
    for k, (shape, grid) in enumerate(zip(shapes, grids, strict=True)):
        size = grid[0] * grid[1]
        values = np.stack([decode_values(row[start : start + size], shape, grid) for row in raw])
        arrays.append(values * scales[:, k, None, None] if k < 2 else values)
        start += size
    return arrays


# ---- use inside a hypothesis test ------------------------------------------------------------


def assert_gradients_correct(*cases: Case, **options: Any) -> list[CheckResult]:
    """Check cases inside a hypothesis test, and steer the search.

    Records an event() per layer type and activation, target()s the largest error/bound
    ratio so that hypothesis hunts for the worst case, note()s each failing case's
    comparisons, and raises GradientMismatch (an AssertionError) on the first mismatch
    with the message and a reproduction snippet. Options go to `check_many`.
    """
    results = check_many(cases, **options)
    if not currently_in_test_context():
        for case, result in zip(cases, results, strict=True):
            if result.verdict is Verdict.MISMATCH:
                raise GradientMismatch(result, case=case, reproduction=reproduction(case))
        return results
    worst = 0.0
    for result in results:
        summary = result.case
        if summary is not None:
            event(f"{summary.layer_type} / {summary.activation} / {summary.dtype}")
        event(f"verdict: {result.verdict}")
        if result.verdict is Verdict.PASS and result.comparisons:
            worst = max(worst, max(c.worst_ratio for c in result.comparisons))
    target(worst, label="largest error / bound")
    for case, result in zip(cases, results, strict=True):
        if result.verdict is Verdict.MISMATCH:
            snippet = reproduction(case)
            for comparison in result.failures():
                note(
                    f"{comparison.oracle} on {comparison.target}: {comparison.worst_entry} "
                    f"hand-written {comparison.hand_written!r}, reference "
                    f"{comparison.reference!r}, error/bound {comparison.worst_ratio:.3g}"
                )
            raise GradientMismatch(result, case=case, reproduction=snippet)
    return results


# ---- networks ----------------------------------------------------------------------------------


def networks(
    *,
    min_layers: int = 1,
    max_layers: int = 4,
    min_width: int = 1,
    max_width: int = 4,
    min_batch: int = 1,
    max_batch: int = 4,
    layer_types: Sequence[str | LayerType] | None = None,
    activations: Sequence[str | Activation] | None = None,
    losses: Sequence[str | Loss] | None = None,
    dtypes: Sequence[str] = ("float64", "float32"),
) -> st.SearchStrategy[Network]:
    """Whole networks (`gradcheck.catalogue.network.Network`): a stack of layers and a loss.

    Layer ℓ's inputs are layer ℓ-1's units, so sizes follow from the layers below rather
    than from filtering: every width z⁰ … z^L lies in [min_width, max_width], square
    layers (elementwise) keep the width. layer_types defaults to the unit-partitioned
    catalogue (coupled types may be named explicitly: `check_network` then reports them
    as coupled), activations to the catalogue, losses to `gradcheck.catalogue.losses.LOSSES`.
    Pre-activations are placed clear of kinks by construction, layer by layer: each
    layer's `clear_of_kinks` sees its inputs with the reach of the finite-difference steps
    (and the rounding of the network's dtype) carried up from the layers below, and the
    cleared layer is run forward before the next is cleared.

    A network is drawn as one blob of bytes for z⁰ and the targets plus a list of blobs,
    one per layer (a fixed-size header, then θ from the top-left corner of a fixed-size
    grid), so that the shrinker removes whole layers and narrows them while every other
    value keeps its byte. It ends at one dense identity layer, I = J = N = 1, squared
    error, float64, values of 1.
    """
    plan = _NetworkPlan.of(
        min_layers, max_layers, min_width, max_width, min_batch, max_batch,
        layer_types, activations, losses, dtypes,
    )  # fmt: skip
    return plan.drawn().map(lambda blobs: plan.build([blobs])[0])


def network_stacks(
    *,
    min_layers: int = 1,
    max_layers: int = 4,
    min_width: int = 1,
    max_width: int = 4,
    min_batch: int = 1,
    max_batch: int = 4,
    layer_types: Sequence[str | LayerType] | None = None,
    activations: Sequence[str | Activation] | None = None,
    losses: Sequence[str | Loss] | None = None,
    dtypes: Sequence[str] = ("float64", "float32"),
    min_size: int = 1,
    max_size: int = 16,
) -> st.SearchStrategy[list[Network]]:
    """Lists of networks of one architecture (layer types, activations, loss, dtype and
    shapes; different values), which `gradcheck.catalogue.network_checker.check_networks` checks in
    one vectorised pass. Arguments as for `networks`; min_size and max_size bound the
    length. The first network's headers give the architecture; the others give values
    (a missing layer blob reads as zero bytes). A failing list shrinks to the one network
    that fails."""
    _check_bounds("size", min_size, max_size)
    plan = _NetworkPlan.of(
        min_layers, max_layers, min_width, max_width, min_batch, max_batch,
        layer_types, activations, losses, dtypes,
    )  # fmt: skip
    return st.lists(plan.drawn(), min_size=min_size, max_size=max_size).map(plan.build)


#: Header bytes of a network's first blob: loss, dtype, N, I, z's scale.
_NETWORK_HEADER = 5
#: Header bytes of a layer's blob: layer type, activation, parameter, J, θ's scale.
_LAYER_HEADER = 5

_Blobs = tuple[bytes, list[bytes]]


class _NetworkPlan:
    """The validated choices of `networks`, and how blobs become networks."""

    def __init__(
        self,
        plans: list[tuple[LayerType, list[Activation]]],
        losses: list[Loss],
        dtypes: list[np.dtype[Any]],
        bounds: tuple[int, int, int, int, int, int],
    ) -> None:
        self.plans, self.losses, self.dtypes = plans, losses, dtypes
        self.min_layers, self.max_layers, self.min_width, self.max_width = bounds[:4]
        self.min_batch, self.max_batch = bounds[4:]
        self.theta_grid = (
            self.max_width,
            max(
                layer.parameters_per_unit(width)
                for layer, _ in plans
                for width in range(self.min_width, self.max_width + 1)
            ),
        )

    @classmethod
    def of(
        cls,
        min_layers: int,
        max_layers: int,
        min_width: int,
        max_width: int,
        min_batch: int,
        max_batch: int,
        layer_types: Sequence[str | LayerType] | None,
        activations: Sequence[str | Activation] | None,
        losses: Sequence[str | Loss] | None,
        dtypes: Sequence[str],
    ) -> _NetworkPlan:
        _check_bounds("layers", min_layers, max_layers)
        _check_bounds("width", min_width, max_width)
        _check_bounds("batch", min_batch, max_batch)
        if layer_types is None:
            layer_rows = [row for row in LAYER_TYPES.values() if not row.coupled]
        else:
            layer_rows = _resolve_all("layer_types", layer_types, resolve_layer_type, LAYER_TYPES)
        activation_rows = _resolve_all("activations", activations, resolve_activation, ACTIVATIONS)
        loss_rows = _resolve_all("losses", losses, resolve_loss, LOSSES)
        globals()["dtypes"](names=dtypes)  # validates the names
        plans: list[tuple[LayerType, list[Activation]]] = []
        for layer in layer_rows:
            choices = activation_rows if layer.uses_activation else [ACTIVATIONS["identity"]]
            if layer.clear_of_kinks is None:
                choices = [row for row in choices if not row.kinks]
            if choices and layer.min_units <= max_width:
                plans.append((layer, choices))
        if not plans or all(layer.square and layer.min_units > min_width for layer, _ in plans):
            raise InvalidArgument(
                "no layer type fits these widths and choices (coupled ones need "
                "max_width >= 2, square coupled ones min_width >= 2, and layers that cannot "
                "avoid kinks need a smooth activation)"
            )
        bounds = (min_layers, max_layers, min_width, max_width, min_batch, max_batch)
        return cls(plans, loss_rows, [np.dtype(name) for name in dtypes], bounds)

    def drawn(self) -> st.SearchStrategy[_Blobs]:
        head = _NETWORK_HEADER + 2 * self.max_batch * self.max_width
        layer = _LAYER_HEADER + self.theta_grid[0] * self.theta_grid[1]
        return st.tuples(
            st.binary(min_size=head, max_size=head),
            st.lists(
                st.binary(min_size=layer, max_size=layer),
                min_size=self.min_layers,
                max_size=self.max_layers,
            ),
        )

    def build(self, blobs: list[_Blobs]) -> list[Network]:
        """K networks: the first's headers choose the architecture, each its own values."""
        heads = np.stack([np.frombuffer(head, dtype=np.uint8) for head, _ in blobs])
        depth = len(blobs[0][1])
        size = _LAYER_HEADER + self.theta_grid[0] * self.theta_grid[1]
        padding = bytes(size)
        bodies = [
            np.stack([np.frombuffer(b, dtype=np.uint8) for b in (body + [padding] * depth)[:depth]])
            if depth
            else np.zeros((0, size), dtype=np.uint8)
            for _, body in blobs
        ]
        layer_bytes = np.stack(bodies, axis=1)  # (L, K, size)
        header = [int(b) for b in heads[0, :_NETWORK_HEADER]]
        loss = self.losses[header[0] % len(self.losses)]
        dtype = self.dtypes[header[1] % len(self.dtypes)]
        batch = pick_size(header[2], self.min_batch, self.max_batch, (1,))
        width = pick_size(header[3], self.min_width, self.max_width)
        grids = heads[:, _NETWORK_HEADER:].reshape(-1, 2, self.max_batch, self.max_width)
        scale = SCALES[heads[:, 4] % len(SCALES)][:, None, None]
        z = (VALUES[grids[:, 0, :batch, :width]] * scale).astype(dtype)
        # What `check_network` measures kinks against: the reach of the finite-difference
        # steps (2h on every entry) carried up the layers. Computed on the networks' own
        # values in their dtype, so that it carries the hand-written pass's rounding too.
        reach = track(z, 2.0 * step_sizes(z.astype(np.float64)))
        layers: list[tuple[LayerType, Activation, np.ndarray]] = []
        for raw in layer_bytes:
            # Square coupled types need a wide enough input; the others fit any width.
            fitting = [p for p in self.plans if not p[0].square or width >= p[0].min_units]
            layer, choices = fitting[raw[0, 0] % len(fitting)]
            phi = choices[raw[0, 1] % len(choices)]
            if phi.parameter_range is not None:
                phi = phi.with_parameter(float(np.clip(VALUES[raw[0, 2]], *phi.parameter_range)))
            low_units = max(self.min_width, layer.min_units)
            units = (
                width
                if layer.square
                else pick_size(int(raw[0, 3]), low_units, self.max_width, (width,))
            )
            parameters = layer.parameters_per_unit(width)
            grid = raw[:, _LAYER_HEADER:].reshape((-1, *self.theta_grid))
            theta = (
                VALUES[grid[:, :units, :parameters]]
                * SCALES[raw[:, 4] % len(SCALES)][:, None, None]
            )
            for column in layer.positive_columns:
                theta[..., column] = np.abs(theta[..., column])
            theta = theta.astype(dtype)
            with np.errstate(all="ignore"):
                if layer.clear_of_kinks is not None:
                    radius = 2.0 * step_sizes(theta.astype(np.float64))
                    theta = layer.clear_of_kinks(reach, track(theta, radius), phi).astype(dtype)
                radius = 2.0 * step_sizes(theta.astype(np.float64))
                reach = layer.forward(reach, track(theta, radius), phi)
            layers.append((layer, phi, theta))
            width = units
        targets_grid = grids[:, 1, :batch, :width]
        targets: np.ndarray
        if loss.targets == "classes":
            targets = (targets_grid[..., 0] % width).astype(np.int64)
        elif loss.targets == "binary":
            targets = (targets_grid & 1).astype(dtype)
        else:
            targets = VALUES[targets_grid].astype(dtype)
        return [
            Network(
                layers=tuple(NetworkLayer(layer, phi, theta[k]) for layer, phi, theta in layers),
                loss=loss,
                z=z[k],
                targets=targets[k],
            )
            for k in range(len(blobs))
        ]
