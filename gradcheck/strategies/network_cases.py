"""Whole networks: `networks` and `network_stacks`, a stack of catalogue layers and a loss.

Sizes follow from the layers below instead of from filtering, and kinks are avoided by
construction layer by layer (`_NetworkPlan.build`), so that no draw is rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from gradcheck.catalogue.activations import ACTIVATIONS, Activation, resolve_activation
from gradcheck.catalogue.layers import LAYER_TYPES, LayerType, resolve_layer_type
from gradcheck.catalogue.losses import LOSSES, Loss, resolve_loss
from gradcheck.catalogue.network import Network, NetworkLayer
from gradcheck.core.oracles import step_sizes
from gradcheck.core.tolerance import Event, Tracked, recording, track
from gradcheck.core.values import SCALES, VALUES, pick_size
from gradcheck.strategies.rows import check_bounds, dtype_choices, resolve_all


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
    check_bounds("size", min_size, max_size)
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
        check_bounds("layers", min_layers, max_layers)
        check_bounds("width", min_width, max_width)
        check_bounds("batch", min_batch, max_batch)
        if layer_types is None:
            layer_rows = [row for row in LAYER_TYPES.values() if not row.coupled]
        else:
            layer_rows = resolve_all("layer_types", layer_types, resolve_layer_type, LAYER_TYPES)
        activation_rows = resolve_all("activations", activations, resolve_activation, ACTIVATIONS)
        loss_rows = resolve_all("losses", losses, resolve_loss, LOSSES)
        chosen_dtypes = dtype_choices(dtypes)
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
        return cls(plans, loss_rows, chosen_dtypes, bounds)

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
            with np.errstate(all="ignore"), recording() as events:
                if layer.clear_of_kinks is not None:
                    radius = 2.0 * step_sizes(theta.astype(np.float64))
                    theta = layer.clear_of_kinks(reach, track(theta, radius), phi).astype(dtype)
                radius = 2.0 * step_sizes(theta.astype(np.float64))
                above = layer.forward(reach, track(theta, radius), phi)
            if len(layers) >= self.min_layers and not _checkable(above, events):
                # The checker refuses what this layer computes (a pre-activation outside its
                # activation's domain, an overflow, a cosine of an input that underflowed
                # to 0): the network ends below it, and so never draws invalid input.
                break
            reach = above
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


def _checkable(outputs: Tracked, events: list[Event]) -> bool:
    """Whether a layer's outputs (carrying the reach of the finite-difference steps) are
    what `check_network` accepts: inside every activation's domain, finite, with a finite
    bound."""
    if any(event.kind == "domain" for event in events):
        return False
    with np.errstate(all="ignore"):
        value = np.asarray(outputs.value, dtype=np.float64)
        error = np.asarray(outputs.error, dtype=np.float64)
        return bool(np.isfinite(value).all() and np.isfinite(error).all())
