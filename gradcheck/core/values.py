"""Bytes into sizes and values: the decoding that every drawn case shares.

hypothesis draws a case as one blob of bytes (see `gradcheck.strategies` and
`gradcheck.user.draw`); these functions read sizes and values out of it. Byte 0 stands for
the simplest choice (the smallest size, the value 1.0), so that a shrinker that drives
bytes to 0 ends at small sizes and small integer values. Free of hypothesis: bytes in,
numbers out.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def _value_table() -> np.ndarray:
    simple = [1.0, 2.0, 0.5, 3.0, 1.5, 0.25, 4.0, 0.75, 5.0, 2.5, 0.125, 6.0, 1.25, 3.5, 0.375, 8.0]
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    irregular = [2.0 ** (-3.0 + 6.0 * ((k * golden) % 1.0)) for k in range(1, 113)]
    magnitudes = np.array(simple + irregular)
    signs = np.array([1.0, -1.0])
    return (magnitudes[:, None] * signs[None, :]).reshape(-1)  # byte b: sign b & 1, size b >> 1


#: The value each byte of a drawn blob stands for: VALUES[0] = 1.0, VALUES[1] = -1.0, ...
VALUES = _value_table()
#: The scale each scale byte stands for (z and θ each get one per case).
SCALES = np.array([1.0, 0.5, 2.0, 0.25, 4.0, 0.125])


def pick_size(byte: int, low: int, high: int, avoid: tuple[int, ...] = ()) -> int:
    """A size in [low, high] from one byte: byte 0 (where shrinking ends) is `low`; other
    bytes prefer sizes outside `avoid` (square weights hide transposition bugs, N = 1
    hides bias-gradient bugs), byte 1 the smallest of them, then byte 2 the next,
    cyclically, so that a shrinker that cannot reach byte 0 stops at the smallest size
    that still fails."""
    return pick_choice(byte, range(low, high + 1), avoid)


def pick_choice(byte: int, choices: Sequence[int], avoid: tuple[int, ...] = ()) -> int:
    """`pick_size` among the given ascending choices (the sizes a constraint leaves)."""
    if byte == 0:
        return int(choices[0])
    preferred = [size for size in choices if size not in avoid]
    sizes = preferred or list(choices)
    return int(sizes[(byte - 1) % len(sizes)])


def corner(raw: np.ndarray, shape: tuple[int, ...], grid: tuple[int, ...]) -> np.ndarray:
    """The bytes of an array of this shape out of the prod(grid) bytes of a grid of shape
    `grid`: the grid's leading corner, so that a value keeps its byte when the shrinker
    makes a size smaller."""
    cells = np.asarray(raw, dtype=np.uint8).reshape(grid)
    return cells[tuple(slice(0, size) for size in shape)]


def decode_values(raw: np.ndarray, shape: tuple[int, ...], grid: tuple[int, ...]) -> np.ndarray:
    """Values of the given shape from the bytes of a grid (one byte per value,
    `VALUES[byte]`, read from the grid's `corner`)."""
    return VALUES[corner(raw, shape, grid)]


# ---- the declared domain: values spread over every order of magnitude it allows ---------------

#: The half-width of the domain of an argument without bounds, and how far an infinite end
#: of a bound reaches: (-64, 64) without bounds, (0, 64) for bounds (0, inf). 64 = 2⁶ keeps
#: exp(±v) finite in float32 (which overflows beyond 88.7), so a layer correct on all reals
#: is not called unstable for an overflow its user never declared it safe from; a finite
#: bound (bounds=[(-1e4, 1e4)]) widens it.
DEFAULT_MAGNITUDE = 64.0

#: Spread values are log-uniform in magnitude from 2^LOWEST_EXPONENT (or 16 octaves below
#: the domain's extent, if that is lower) up to the extent; smaller ones come from the tiny
#: regime.
LOWEST_EXPONENT = -10.0

#: How far inside an edge a drawn value stays at least, relative to max(1, |edge|): 2⁻⁸.
#: Finite differences need only 2 steps (h = cbrt(u) ≈ 4.8e-6 in float64; the engine
#: redraws within 2h of a bound), but a forward without a running bound has its precision
#: measured (gradcheck.user.noise) by fitting cubics at spacings τ = cbrt(u)/4, whose
#: residual from a smooth f is τ⁴|f⁽⁴⁾|/24; beside an edge where f is singular (arcsin,
#: sqrt: |f⁽⁴⁾| ~ d^(-7/2); log: 6/d⁴, at distance d) that residual exceeds the rounding
#: the fit allows (≈ 2.5 γ|f|) for d below about 2e-3 and 4e-3, and the measurement then
#: took the curvature for float32 noise: arcsin at 16 steps (d = 7.7e-5) was stepped at
#: float32's h, across the edge, and a correct backward was reported wrong by 10.8 times
#: its bound. At d >= 2⁻⁸ ≈ 3.9e-3 both stay below it.
EDGE_FRACTION = 2.0**-8

#: The regime of an array, from its scale byte s: the value table times SCALES[s % 6] for
#: s < TABLE_BYTES (so byte 0, where shrinking ends, is the table at scale 1: half of all
#: arrays are typical), else one of REGIMES, each for its count of the other 128 scale
#: bytes: spread and edges most (they find overflow), tiny and ties less.
TABLE_BYTES = 128
REGIMES = (("spread", 40), ("edges", 56), ("tiny", 16), ("ties", 16))
assert sum(count for _, count in REGIMES) == 256 - TABLE_BYTES


def regime_of(scale_byte: int) -> str:
    """The regime a scale byte picks (see REGIMES)."""
    if scale_byte < TABLE_BYTES:
        return "table"
    rest = scale_byte - TABLE_BYTES
    for name, count in REGIMES:
        if rest < count:
            return name
        rest -= count
    raise ValueError(f"a scale byte is in 0..255, got {scale_byte}")


def domain_of(bounds: tuple[float, float] | None, dtype: np.dtype[Any]) -> tuple[float, float]:
    """The finite interval values are drawn in: the bounds, an infinite end replaced by
    ±DEFAULT_MAGNITUDE (or DEFAULT_MAGNITUDE beyond the finite end), and both ends
    clipped to a 16th of the dtype's largest value (so that sums of a few stay finite)."""
    low, high = bounds if bounds is not None else (-math.inf, math.inf)
    if not math.isfinite(low):
        low = min(-DEFAULT_MAGNITUDE, high - DEFAULT_MAGNITUDE)
    if not math.isfinite(high):
        high = max(DEFAULT_MAGNITUDE, low + DEFAULT_MAGNITUDE)
    largest = float(np.finfo(dtype).max) / 16.0
    return max(low, -largest), min(high, largest)


def _margin(edge: float, width: float) -> float:
    """The least distance from an edge: EDGE_FRACTION · max(1, |edge|), or a quarter of the
    domain's width where that is less (a narrow domain is drawn across, not skipped)."""
    return min(EDGE_FRACTION * max(1.0, abs(edge)), width / 4.0)


def _sides(low: float, high: float) -> list[tuple[float, float, float, float]]:
    """Two sides of the domain, each (anchor, direction, least, most): a value anchor +
    direction·d with d in [least, most] lies inside (low, high) clear of both edges by
    `_margin`. The anchor is 0 where the domain holds 0 (magnitudes of either
    sign), else each edge in turn (distances from it)."""
    width = high - low
    if low < 0.0 < high:
        return [
            (0.0, 1.0, 0.0, high - _margin(high, width)),
            (0.0, -1.0, 0.0, -low - _margin(low, width)),
        ]
    return [
        (low, 1.0, _margin(low, width), width - _margin(high, width)),
        (high, -1.0, _margin(high, width), width - _margin(low, width)),
    ]


def _spread(fraction: np.ndarray, least: float, most: float) -> np.ndarray:
    """Distances log-uniform in [max(least, 2^e_lo), most] as fraction runs over [0, 1],
    with e_lo = min(LOWEST_EXPONENT, log2(most) - 16)."""
    top = math.log2(most)
    bottom = min(LOWEST_EXPONENT, top - 16.0)
    if least > 0.0:
        bottom = max(bottom, math.log2(least))
    bottom = min(bottom, top)
    return np.exp2(bottom + fraction * (top - bottom))


def domain_values(
    scale_byte: int,
    cells: np.ndarray,
    bounds: tuple[float, float] | None,
    dtype: np.dtype[Any],
) -> np.ndarray:
    """The float64 values of one array inside its domain (`domain_of`), from its scale
    byte and one byte b per value (`cells`), in the regime the scale byte picks:

    - table: VALUES[b] · SCALES[s % 6], moved into the bounds by `squash` (the draws
      before issue 16: small values, 1.0 at byte 0);
    - spread: sign (or side) b & 1, magnitude 2^(e_lo + (e_hi - e_lo) k / 111) for
      k = b >> 1 < 112, log-uniform over the orders of magnitude the domain allows;
    - edges: value b at m · EDGE_FRACTION · max(1, |edge|) inside the low (b even) or
      high edge, m = 1, 2, 8 or 64 by (b >> 1) & 3 (at most half way);
    - tiny: ±tiny·2^((b >> 1) % 64), tiny the dtype's smallest normal number: values
      whose squares and products underflow; only where bounds are declared and hold 0
      inside (without bounds, the spread regime; bounds away from 0, the edges' regime):
      such values break any layer that takes a norm as sqrt(Σx²) (weight norm, x/‖x‖),
      which is the layer's own instability but not one its user must be told of unless
      the user declared the domain reaching there;
    - ties: ±VALUES[2 ((b >> 3) % 4)] moved by 0 or ±8 steps by (b >> 1) & 3: equal and
      nearly equal entries (max, argmax, sorting), squashed into the bounds;

    and in every regime but the table's, a byte b ≥ 224 gives the table value
    VALUES[b - 224], so that typical values stay among the extreme ones."""
    cells = np.asarray(cells, dtype=np.int64)
    if scale_byte < TABLE_BYTES:
        return squash(VALUES[cells] * SCALES[scale_byte % len(SCALES)], bounds)
    regime = regime_of(scale_byte)
    low, high = domain_of(bounds, dtype)
    side, code = cells & 1, cells >> 1
    sign = np.where(side == 1, -1.0, 1.0)
    if regime == "tiny" and bounds is None:
        regime = "spread"
    elif regime == "tiny" and not low < 0.0 < high:
        regime = "edges"
    if regime == "tiny":
        values = sign * float(np.finfo(dtype).tiny) * np.exp2(code % 64)
    elif regime == "ties":
        base = VALUES[2 * ((code >> 2) % 4)]
        step = float(np.cbrt(np.finfo(np.float64).eps / 2.0)) * np.maximum(1.0, base)
        values = squash(sign * (base + np.array([0.0, 0.0, 8.0, -8.0])[code & 3] * step), bounds)
    elif regime == "edges":
        multiple = np.array([1.0, 2.0, 8.0, 64.0])[code & 3]
        width = high - low
        inward = np.minimum(
            multiple * np.where(side == 0, _margin(low, width), _margin(high, width)),
            width / 2.0,
        )
        values = np.where(side == 0, low + inward, high - inward)
    else:
        values = np.empty(cells.shape, dtype=np.float64)
        for which, (anchor, direction, least, most) in enumerate(_sides(low, high)):
            here = side == which
            fraction = np.minimum(code[here], 111) / 111.0
            distance = np.clip(_spread(fraction, least, most), least, most)
            values[here] = anchor + direction * distance
    values = np.array(values, dtype=np.float64)  # an array even for a 0-d argument
    table = cells >= 224
    values[table] = squash(VALUES[cells[table] - 224], bounds)
    return values


#: How values are drawn: "domain" (every order of magnitude the domain allows,
#: `domain_values`) or "table" (the small value table only, as before issue 16: kept so
#: that benchmarks/search_power.py measures both in one run).
VALUE_DRAWS: contextvars.ContextVar[str] = contextvars.ContextVar(
    "gradcheck_value_draws", default="domain"
)


def drawn_values(
    scale_byte: int,
    cells: np.ndarray,
    bounds: tuple[float, float] | None,
    dtype: np.dtype[Any],
) -> np.ndarray:
    """`domain_values`, or under VALUE_DRAWS "table" the table's regime whatever the scale
    byte (SCALES[s % 6], as before issue 16)."""
    if VALUE_DRAWS.get() == "table":
        scale_byte %= len(SCALES)
    return domain_values(scale_byte, cells, bounds, dtype)


def squash(values: np.ndarray, bounds: tuple[float, float] | None) -> np.ndarray:
    """Values moved into the open interval (low, high): v itself when it lies inside;
    otherwise low + |v| or high - |v| for a half-open interval, and
    low + (high - low)(1 + v / (1 + |v|)) / 2 for a finite one."""
    if bounds is None:
        return values
    low, high = bounds
    inside = (values > low) & (values < high)
    if math.isfinite(low) and math.isfinite(high):
        moved = low + (high - low) * (1.0 + values / (1.0 + np.abs(values))) / 2.0
    elif math.isfinite(low):
        moved = low + np.abs(values)
    elif math.isfinite(high):
        moved = high - np.abs(values)
    else:
        moved = values
    return np.where(inside, values, moved)
