"""Bytes into sizes and values: the decoding that every drawn case shares.

hypothesis draws a case as one blob of bytes (see `gradcheck.strategies` and
`gradcheck.user.draw`); these functions read sizes and values out of it. Byte 0 stands for
the simplest choice (the smallest size, the value 1.0), so that a shrinker that drives
bytes to 0 ends at small sizes and small integer values. Free of hypothesis: bytes in,
numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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


def decode_values(raw: np.ndarray, shape: tuple[int, ...], grid: tuple[int, ...]) -> np.ndarray:
    """Values of the given shape from the bytes of a grid of shape `grid` (one byte per
    value, `VALUES[byte]`), read from the grid's leading corner, so that a value keeps
    its byte when the shrinker makes a size smaller. raw holds prod(grid) bytes."""
    cells = np.asarray(raw, dtype=np.uint8).reshape(grid)
    return VALUES[cells[tuple(slice(0, size) for size in shape)]]
