"""One network in, one NetworkResult out: the recursion checked at every layer.

`check_network` runs the hand-written recursion (`gradcheck.catalogue.network`) in the network's
dtype on `Tracked` arrays, so that every A^ℓ and δ^ℓ carries a running bound on its
rounding that composes through the layers as the arithmetic does (a deep network's δ
went through more roundings and gets a wider bound; there is no depth factor), and
holds it against

- autograd: one reverse pass through the whole network's E in float64 gives ∂E/∂θ^ℓ for
  every layer and ∂E/∂z^ℓ for every intermediate (each z^ℓ passes through a zero "tap"
  whose gradient is ∂E/∂z^ℓ), each with the running bound of autograd's own evaluation;
- finite differences of the whole E: each entry of θ^ℓ alone (column compression is not
  valid across a network: the layers above mix units), random signed probes for large
  θ^ℓ, and input columns for z⁰ (examples stay independent through every layer);
- dense: A^ℓ against the block-diagonal product of the same δ^ℓ and B^ℓ.

Blame: each layer is also checked alone, with autograd's δ^ℓ in place of the propagated
one: compaction(δ^ℓ_ref, B^ℓ) against ∂E/∂θ^ℓ and δ^ℓ_ref · ∂f^ℓ/∂z against
∂E/∂z^(ℓ-1), each bounded by the hand-written rounding plus the reference's. A wrong
input Jacobian at layer ℓ then fails there, while the layers below, which only inherit
the wrong δ, pass their own checks; the first wrong layer from the output is reported,
with what is wrong there (its B, its compaction, its input Jacobian, or the loss rule).

Verdicts, in order: invalid-input, non-differentiable (a kink, tie or singularity within
the reach of the finite-difference steps, carried up through the layers, or within the
rounding of the hand-written pass), mismatch, coupled (a coupled layer type: its A is not
checked, formula 1 is), pass.

This module is free of I/O, hypothesis and pytest.

The module is the front door: `check_network` and `check_networks` validate the options
and group networks of one architecture; the comparisons are made in
`gradcheck.catalogue.network_comparisons`, and the blame and the verdict are decided in
`gradcheck.catalogue.network_results` (whose LayerResult and NetworkResult are
re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gradcheck.catalogue.network import InvalidNetworkError, Network, StackedNetworks
from gradcheck.catalogue.network_comparisons import (
    FULL_DIFFERENCES_BUDGET,
    NetworkCheck,
    NetworkOptions,
)
from gradcheck.catalogue.network_results import LayerResult, NetworkResult
from gradcheck.core.results import ORACLES, Verdict
from gradcheck.errors import GradcheckError, UnknownNameError

__all__ = [
    "FULL_DIFFERENCES_BUDGET",
    "LayerResult",
    "NetworkResult",
    "check_network",
    "check_networks",
]


def _options(oracles: Sequence[str], finite_differences: str, probes: int) -> NetworkOptions:
    for name in oracles:
        if name not in ORACLES:
            raise UnknownNameError("oracle", name, list(ORACLES))
    if finite_differences == "columns":
        raise GradcheckError(
            "finite_differences='columns' is not valid for a network: the layers above θ^ℓ "
            "mix its units, so moving one parameter of every unit at once cannot be told "
            "apart; use 'auto', 'full' or 'probes'"
        )
    if finite_differences not in ("auto", "full", "probes"):
        raise GradcheckError(
            f"finite_differences must be 'auto', 'full' or 'probes', got {finite_differences!r}"
        )
    if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
        raise GradcheckError(f"probes must be a positive integer, got {probes!r}")
    return NetworkOptions(tuple(oracles), finite_differences, probes)


def check_network(
    network: Network,
    *,
    oracles: Sequence[str] = ORACLES,
    finite_differences: str = "auto",
    probes: int = 16,
) -> NetworkResult:
    """Check a network's hand-written backprop at every layer against the oracles.

    oracles: any of "dense", "autograd", "finite-differences" (autograd also supplies the
    reference δ^ℓ with which each layer is checked alone, and so the blame).
    finite_differences: "auto" (each entry of θ^ℓ alone up to FULL_DIFFERENCES_BUDGET
    entries, random signed probes above), "full" or "probes"; probes: directions per layer.
    Unknown names raise UnknownNameError; a malformed network comes back as an
    invalid-input verdict whose message says what is wrong.
    """
    return check_networks(
        [network], oracles=oracles, finite_differences=finite_differences, probes=probes
    )[0]


def check_networks(
    networks: Sequence[Network],
    *,
    oracles: Sequence[str] = ORACLES,
    finite_differences: str = "auto",
    probes: int = 16,
) -> list[NetworkResult]:
    """`check_network` on each network, in order; networks of one architecture (layer
    types, activations, loss, dtype and shapes) are stacked and checked in one pass."""
    options = _options(oracles, finite_differences, probes)
    results: list[NetworkResult | None] = [None] * len(networks)
    groups: dict[tuple[Any, ...], list[tuple[int, StackedNetworks]]] = {}
    for index, network in enumerate(networks):
        try:
            single = StackedNetworks.of(network)
        except InvalidNetworkError as problem:
            results[index] = _invalid(network, str(problem))
            continue
        groups.setdefault(single.architecture, []).append((index, single))
    for members in groups.values():
        check = NetworkCheck(StackedNetworks.stacked([single for _, single in members]))
        for (index, _), result in zip(members, check.run(options), strict=True):
            results[index] = result
    return [result for result in results if result is not None]


def _invalid(network: Network, problem: str) -> NetworkResult:
    try:
        z = np.asarray(network.z)
    except Exception:  # the message already says what is wrong with it
        z = np.zeros((0, 0))
    loss = getattr(network.loss, "name", str(network.loss))
    batch = int(z.shape[0]) if z.ndim == 2 else 0
    return NetworkResult(
        Verdict.INVALID_INPUT, f"invalid input: {problem}", loss, str(z.dtype), batch, ()
    )
