"""Placing cases clear of kinks: the `clear_of_kinks` rules of the layer table's rows.

The generators (`gradcheck.strategies`) draw θ and then move it, as little as they can, so
that no pre-activation lies within twice its uncertainty of a kink (or, for maxout, no two
pieces tie). The uncertainty is the finite-difference step carried through the forward on
`Tracked` arrays: a case clear by that margin is differentiable for every oracle.

- `clearing_shift`: the smallest shift of each unit's pre-activations that clears them;
- `bias_shift`: a row's rule when θ has a column added to the pre-activation (a bias);
- `leading_piece`: maxout's rule, raising the winning piece's bias above the runner-up.

This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gradcheck.catalogue.activations import Activation
from gradcheck.core.tolerance import Tracked


def clearing_shift(values: np.ndarray, margins: np.ndarray, kinks: tuple[float, ...]) -> np.ndarray:
    """The smallest shift s per unit that takes every a_nj + s further than margin_nj
    from each kink: values and margins (..., N, J), result (..., J)."""
    candidates = [np.zeros(values.shape[:-2] + values.shape[-1:])[..., None]]
    for kink in kinks:
        for side in (-1.5, 1.5):  # just beyond either edge of each forbidden interval
            candidates.append(np.moveaxis(kink - values + side * margins, -2, -1))
    shifts = np.concatenate(candidates, axis=-1)  # (..., J, C)
    moved = values[..., None, :, :] + np.moveaxis(shifts, -1, -2)[..., :, None, :]  # (..., C, N, J)
    clear = np.ones(moved.shape, dtype=bool)
    for kink in kinks:
        clear &= np.abs(moved - kink) > margins[..., None, :, :]
    valid = np.asarray(clear.all(axis=-2))  # (..., C, J)
    cost = np.where(np.moveaxis(valid, -2, -1), np.abs(shifts), np.inf)
    return np.take_along_axis(shifts, np.argmin(cost, axis=-1)[..., None], axis=-1)[..., 0]


def bias_shift(preactivation: Callable[[Any, Any], Any], column: int) -> Callable[..., np.ndarray]:
    """clear_of_kinks for layers whose θ has a column added to the pre-activation."""

    def clear(z: Any, theta: Any, phi: Activation) -> np.ndarray:
        moved = np.array(theta.value, dtype=np.float64)
        if phi.kinks:
            pre = preactivation(z, theta)
            shift = clearing_shift(pre.value, 2.0 * pre.error, phi.kinks)
            moved[..., column] += shift
        return moved

    return clear


def leading_piece(pieces: Callable[[Any, Any], Any]) -> Callable[..., np.ndarray]:
    """clear_of_kinks for layers whose output is the largest of k pieces, θʲ holding each
    piece's I weights and then its bias (maxout): pieces(z, θ) gives their values
    (..., N, J, k). Raises the winning piece's bias until, for every example, it leads
    the runner-up by more than twice their uncertainty."""

    def clear(z: Any, theta: Any, phi: Activation) -> np.ndarray:
        return _lead(pieces, z, theta)

    return clear


def _lead(pieces: Callable[[Any, Any], Any], z: Any, theta: Any) -> np.ndarray:
    inputs = z.shape[-1] + 1
    moved = np.array(theta.value, dtype=np.float64)
    count = moved.shape[-1] // inputs
    for _ in range(4 * count * z.shape[-2] + 1):
        candidate = Tracked(moved, theta.error)
        values = pieces(z, candidate)  # (..., N, J, k)
        order = np.argsort(values.value, axis=-1)
        best, second = order[..., -1:], order[..., -2:-1]
        gap = (
            np.take_along_axis(values.value, best, -1)
            - np.take_along_axis(values.value, second, -1)
        )[..., 0]
        margin = (
            2.0
            * (
                np.take_along_axis(values.error, best, -1)
                + np.take_along_axis(values.error, second, -1)
            )[..., 0]
        )
        short = np.where(gap <= margin, 2.0 * margin - gap, 0.0)  # (..., N, J)
        if count < 2 or not short.any():
            break
        raise_by = np.zeros(moved.shape[:-1] + (count,))  # (..., J, k)
        winner = best[..., 0]  # (..., N, J)
        for m in range(count):
            raise_by[..., m] = np.max(np.where(winner == m, short, 0.0), axis=-2)
        moved[..., inputs - 1 :: inputs] += raise_by
    return moved
