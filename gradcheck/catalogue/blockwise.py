"""Pieces of the large-layer path that work across blocks of units
(see `gradcheck.catalogue.large`).

- `Tally`: one comparison made block by block, keeping only its worst entry;
- `accumulate`: a sum over blocks with the rounding of each addition;
- `reverse_mode`: ∂E_b/∂θ_b, ∂E_b/∂z and f(z; θ_b) from one reverse pass on Tracked arrays.

The finite differences made block by block (columns and probes) are in
`gradcheck.catalogue.block_differences`.

This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval

from gradcheck.core import oracles
from gradcheck.core.comparison import compare
from gradcheck.core.results import Comparison
from gradcheck.core.tolerance import Tracked, track


class Tally:
    """One comparison made block by block: the worst entry so far, the largest error and
    the largest reference (for the relative error), unbounded entries and time.

    Each block costs a few passes over its arrays; `comparison.compare` (which names the
    entry and the values) runs once, on the block that holds the worst entry.
    """

    def __init__(self, oracle: str, target: str) -> None:
        self.oracle, self.target = oracle, target
        self.methods: list[str] = []
        self.worst_ratio = -math.inf
        self.worst: tuple[str, Any, Any, Any, int] | None = None
        self.max_error = math.nan
        self.scale = 0.0
        self.unbounded = 0
        self.seconds = 0.0

    def add(
        self, method: str, hand: Any, reference: Any, bound: Any, *, offset: int, seconds: float
    ) -> None:
        begin = time.perf_counter()
        if method not in self.methods:
            self.methods.append(method)
        hand64 = np.asarray(hand, dtype=np.float64)
        ref = np.asarray(reference, dtype=np.float64)
        limit = np.broadcast_to(np.asarray(bound, dtype=np.float64), hand64.shape)
        with np.errstate(all="ignore"):
            # One temporary, reused: |hand - ref|, then its ratio to the bound.
            error = np.subtract(hand64, ref)
            np.abs(error, out=error)
            largest = float(np.max(error))
            peak = float(np.max(np.divide(error, limit, out=error)))
        if not math.isfinite(peak):  # 0/0, x/0 or NaN somewhere: compare's careful rules
            peak = compare(
                self.oracle, self.target, method, hand64[None], ref[None], limit[None], 0.0
            )[0].worst_ratio
            error = np.abs(hand64 - ref)
            largest = float(np.nanmax(error)) if not np.isnan(error).all() else math.nan
        if peak > self.worst_ratio:
            self.worst_ratio, self.worst = peak, (method, hand64, ref, limit, offset)
        if not math.isnan(largest):
            self.max_error = largest if math.isnan(self.max_error) else max(self.max_error, largest)
        magnitude = max(float(np.max(ref)), -float(np.min(ref)))
        if not math.isfinite(magnitude):
            finite = np.abs(ref[np.isfinite(ref)])
            magnitude = float(finite.max()) if finite.size else 0.0
        self.scale = max(self.scale, magnitude)
        if not math.isfinite(float(np.max(limit))):
            self.unbounded += int(np.isinf(limit).sum())
        self.seconds += seconds + time.perf_counter() - begin

    def comparison(self) -> Comparison:
        assert self.worst is not None
        method, hand, reference, bound, offset = self.worst
        (found,) = compare(
            self.oracle, self.target, method, hand[None], reference[None], bound[None], 0.0
        )
        entry = dict(found.worst_entry)
        entry["unit"] += offset
        error = float(self.max_error)
        no_scale = 0.0 if error == 0 else math.inf
        relative = error / self.scale if self.scale > 0 else no_scale
        return replace(
            found,
            method=" and ".join(self.methods),
            worst_entry=entry,
            max_abs_error=error,
            max_rel_error=relative,
            seconds=self.seconds,
            unbounded_entries=self.unbounded,
        )


def accumulate(total: Tracked | None, term: Tracked) -> Tracked:
    """total + term with the rounding of the addition (Tracked's rule e1 + e2 + u|sum|)."""
    return term if total is None else total + term


def reverse_mode(
    forward: Callable[[Any, Any], Any], z: np.ndarray, theta: np.ndarray, delta: np.ndarray
) -> tuple[Tracked, Tracked, Tracked]:
    """f(z; θ_b), ∂E_b/∂θ_b and ∂E_b/∂z from one reverse pass on Tracked float64 arrays:
    each carries the running error bound of its own evaluation (the forward's is the
    rounding of the outputs that finite differences need)."""
    weights = track(delta)
    outputs: list[Any] = []

    def energy(arguments: tuple[Any, Any]) -> Any:
        parameters, inputs = arguments
        values = forward(inputs, parameters)
        outputs.append(getval(values))
        return anp.sum(weights * values)

    d_theta, d_z = oracles.reverse_mode(energy, (track(theta), track(z)))
    return outputs[0], d_theta, d_z
