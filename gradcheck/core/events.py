"""Events: kinks, ties and singularities met while evaluating on Tracked arrays.

Evaluated with an uncertainty (the finite-difference step, or a rounding bound), an
activation's declared kink, a tie between the candidates of a max or a value that may be
zero under a square root is recorded here, inside a `recording()` block, so that a checker
can report the case as non-differentiable instead of comparing at a point where the
derivative does not exist.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True, eq=False)
class Event:
    """Points where an evaluated function is not differentiable within its uncertainty.

    kind is "kink" (a declared kink of an activation), "tie" (two candidates of a max
    within each other's uncertainty), "singularity" (a square root, division or logarithm
    of a value that may be zero), "domain" (a value outside an activation's safe domain)
    or "untracked" (a Tracked value with a nonzero error converted to a plain array: the
    running bound of whatever is computed from it is incomplete).
    mask marks the flagged elements of the operation's result; value and radius give, for
    each element, the distance to the point (or the value) and its uncertainty.
    """

    kind: str
    where: str
    mask: np.ndarray
    value: np.ndarray
    radius: np.ndarray

    @property
    def index(self) -> tuple[int, ...]:
        """The first flagged element."""
        return tuple(int(i) for i in np.argwhere(self.mask)[0])

    def cases(self, count: int) -> np.ndarray:
        """Which of `count` stacked cases (the leading axis) the event touches; all of
        them when the operation's result does not carry the case axis."""
        if self.mask.ndim >= 1 and self.mask.shape[0] == count:
            return np.asarray(self.mask.reshape(count, -1).any(axis=1))
        return np.full(count, bool(self.mask.any()))

    def describe(self, case: int | None = None, count: int | None = None) -> str:
        """One line on the first flagged element; with case and count, on the first of
        that one of `count` stacked cases (when the result carries the case axis)."""
        mask, value, radius = self.mask, self.value, self.radius
        carries_cases = count is not None and mask.ndim >= 1 and mask.shape[0] == count
        if case is not None and carries_cases and mask[case].any():
            mask, value, radius = mask[case], value[case], radius[case]
        index = tuple(int(i) for i in np.argwhere(mask)[0])
        at = ", ".join(str(i) for i in index)
        if self.kind == "domain":
            return f"{self.where} at index ({at}): value {value[index]:.6g}"
        return (
            f"{self.where} at index ({at}): value {value[index]:.6g} is within "
            f"{radius[index]:.3g} of the point"
        )


_events: contextvars.ContextVar[list[Event] | None] = contextvars.ContextVar(
    "gradcheck_events", default=None
)


@contextmanager
def recording() -> Iterator[list[Event]]:
    """Collect the events met by Tracked arithmetic inside the block."""
    events: list[Event] = []
    token = _events.set(events)
    try:
        yield events
    finally:
        _events.reset(token)


def record(kind: str, where: str, mask: np.ndarray, value: ArrayLike, radius: ArrayLike) -> None:
    """Record the elements flagged by mask (if any) as an Event."""
    events = _events.get()
    if events is None or not np.any(mask):
        return
    mask = np.asarray(mask)
    value = np.broadcast_to(np.asarray(value, dtype=np.float64), mask.shape)
    radius = np.broadcast_to(np.asarray(radius, dtype=np.float64), mask.shape)
    events.append(Event(kind, where, mask, value, radius))
