"""Random probes: finite differences of E along a few random signed directions, the one
machinery both engines use for arguments too large to difference entry by entry (the
catalogue's stacked cases in `gradcheck.core.oracles.probe_differences`, its large path
block by block in `gradcheck.catalogue.block_differences`, users' layers in
`gradcheck.user.differences`).

**Directions.** w = s ⊙ h, with s random signs and h the step of each entry
(`gradcheck.core.differences.step_sizes`). The forward is evaluated at x ± w and x ± 2w
(and x ± 4w on a second look); the central difference extrapolated from them estimates the
directional derivative ⟨∇E, w⟩ within the bound of `gradcheck.core.differences.extrapolate`,
taken with the nominal steps 1 and 2 (in units of w).

**What a probe compares.** A hand-written gradient g with error bound e_g enters as
⟨g, w⟩ (`projections`). Its bound has three parts:

- e_g carried along w: Σ |w| e_g;
- the rounding of the dot product itself, m terms in float64: γ_(m+1) Σ |w| |g|;
- the steps taken. x ± c·w is rounded to float64, so the step taken differs from c·w by at
  most u(|x| + c h) per entry, and the extrapolated difference (4 D(w) - D(2w)) / 3
  measures ⟨∇E, w⟩ only within (4/3 + 1/6) u Σ |∇E| (|x| + 2h). The second look's
  convergence check also reads x ± 4w, so the reach is taken as |x| + 4h, and |∇E| as
  |g| + e_g (the bound the comparison tests): 2u Σ (|g| + e_g)(|x| + 4h).

The nominal steps are used instead of the steps taken because a probe moves every entry
at once: the steps taken differ entry by entry, and the third part charges the difference.

**Power.** For an error vector e = g - ∇E, ⟨e, w⟩ = Σ s_i e_i h_i. Fix every sign but that
of the largest term e_m h_m: of the two values s_m = ±1, at least one gives
|⟨e, w⟩| >= |e_m h_m|. So each probe exceeds the largest weighted error with probability
at least 1/2, and K independent probes all miss it with probability at most 2^-K.

This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradcheck.core.differences import U64, FloatArray, difference_sums, step_sizes
from gradcheck.core.tolerance import gamma

#: Entries handled at once by `projections`: bounds its temporaries on huge arguments.
CHUNK = 1 << 20


def signed_steps(
    rng: np.random.Generator, count: int, x: np.ndarray, unit: float = U64
) -> FloatArray:
    """count directions s_k ⊙ h over x, as (count, *x.shape): random signs times each
    entry's step h (`step_sizes(x, unit)`).

    The signs are the bits of random bytes (one bit each, where drawing integers costs a
    draw per sign); b·2h - h is exactly ±h, as 2h - h is.
    """
    size = count * x.size
    bits = np.unpackbits(np.frombuffer(rng.bytes(-(-size // 8)), dtype=np.uint8), count=size)
    steps = step_sizes(x, unit)
    directions = bits.reshape((count,) + x.shape) * (2.0 * steps)
    directions -= steps
    return directions


def shifted(x: np.ndarray, directions: np.ndarray) -> FloatArray:
    """x + w, x - w, x + 2w, x - 2w for every direction w: (4, K, ...)."""
    variants = np.empty((4,) + directions.shape)
    np.add(x, directions, out=variants[0])
    np.subtract(x, directions, out=variants[1])
    np.multiply(directions, 2.0, out=variants[2])
    np.subtract(x, variants[2], out=variants[3])
    variants[2] += x
    return variants


def probe_sums(outputs: Any, delta: np.ndarray, at_x: Any, tracked: bool) -> FloatArray:
    """The stencil sums (`gradcheck.core.differences.SUMS`, (7, K)) of E = Σ δ f along
    K directions, from the outputs at x + w, - w, + 2w, - 2w (stacked as (4K, N, J) or
    (4, K, N, J); Tracked when tracked: then the forward's rounding is charged at each
    point, else at_x, the rounding charged for the two points of a difference, stands for
    it). E sums the last two axes."""
    values = np.asarray(getattr(outputs, "value", outputs), dtype=np.float64)
    values = values.reshape((4, -1) + values.shape[-2:])
    errors1 = errors2 = None
    if tracked:
        error = np.asarray(outputs.error).reshape(values.shape)
        errors1, errors2 = error[0] + error[1], error[2] + error[3]
    sums = difference_sums(
        values[0] - values[1],
        values[2] - values[3],
        delta,
        lambda a: np.sum(a, axis=(-2, -1)),
        errors1,
        errors2,
    )
    if not tracked:
        sums[4] += at_x
        sums[5] += at_x
    return sums


def projections(
    directions: np.ndarray,
    gradient: np.ndarray,
    error: Any,
    x: np.ndarray,
    *,
    cases: int = 0,
) -> tuple[FloatArray, FloatArray]:
    """⟨g, w_q⟩ for every direction w_q (directions (Q, *x.shape)) and the bound of the
    module docstring, Σ |w| (e_g + γ_(m+1)|g|) + 2u Σ (|g| + e_g)(|x| + 4h).

    cases = 0: one argument, returns (Q,) projections and bounds. cases = 1: x's first
    axis holds K independent cases (stacked), returns (K, Q).
    """
    count = len(directions)
    stacked = x.shape[0] if cases else 1
    w = directions.reshape(count, stacked, -1)
    g = np.asarray(gradient).reshape(stacked, -1)
    e = np.broadcast_to(np.asarray(error, dtype=np.float64), np.shape(gradient))
    e = e.reshape(stacked, -1)
    flat = x.reshape(stacked, -1)
    m = g.shape[1]
    projected = np.zeros((stacked, count))
    carried = np.zeros(stacked)
    rounding = np.zeros(stacked)
    taken = np.zeros(stacked)
    for begin in range(0, m, CHUNK):
        part = slice(begin, begin + CHUNK)
        g64 = g[:, part].astype(np.float64)
        projected += np.einsum("qcm,cm->cq", w[:, :, part], g64)
        h = np.abs(w[0, :, part])  # |w_q| = h for every q
        magnitude = np.abs(g64, out=g64)
        carried += np.einsum("cm,cm->c", h, e[:, part])
        rounding += np.einsum("cm,cm->c", h, magnitude)
        magnitude += e[:, part]
        reach = np.abs(flat[:, part], dtype=np.float64)
        reach += 4.0 * h
        taken += np.einsum("cm,cm->c", magnitude, reach)
    bound = carried + gamma(m + 1, np.float64) * rounding + 2.0 * U64 * taken
    bound = np.broadcast_to(bound[:, None], projected.shape)
    if not cases:
        return projected[0], np.array(bound[0])
    return projected, np.array(bound)
