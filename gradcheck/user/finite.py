"""The finite-difference oracle of one example of a user's layer.

`forward_differences` differences every differentiated argument
(`gradcheck.user.differences`). When the forward has no running bound (the fallback
model of `gradcheck.core.tolerance`), it first measures the precision the forward really
computes in (`gradcheck.user.noise`) and charges the fallback model, scaled to that
precision, at every stencil point from the outputs there; the steps follow the same
precision. A forward noisier than any standard precision cannot be resolved by
differences, and the example says so instead of comparing.

`look_again` is the second look: the entries whose comparison failed (or whose one-sided
estimates disagree) are differenced again with the forward's rounding charged at their
stencil points (its running bound there, or the fallback model at the outputs there) and
their convergence checked against the points ±4h, before anything is called a mismatch
or a kink.

This module is free of hypothesis and pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gradcheck.core.differences import U64
from gradcheck.core.probes import LARGE_PROBES
from gradcheck.core.tolerance import gamma
from gradcheck.errors import UserCodeError
from gradcheck.user.bounds import forward_bound
from gradcheck.user.calls import user_frames
from gradcheck.user.differences import (
    LARGE_LAYER,
    PROBES,
    ArgumentDifferences,
    differences,
    second_look,
)
from gradcheck.user.noise import measure_precision
from gradcheck.user.outputs import OutputLayout, outputs_of
from gradcheck.user.types import UserCase, UserLayer


class StencilError(Exception):
    """Internal: the forward's outputs change shape within the finite-difference step."""


def evaluator(
    layer: UserLayer, case: UserCase, layout: OutputLayout
) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    """forward(*arguments) as the joined float64 outputs (not finite where the forward is
    not); UserCodeError where it raises, StencilError where its shapes change."""
    names = layer.argument_names
    forward, single, shapes = layer.forward, layout.single, list(layout.shapes)

    def evaluate(arguments: Sequence[np.ndarray]) -> np.ndarray:
        try:
            value = forward(*arguments)
        except Exception as error:
            raise UserCodeError(
                f"forward raised {type(error).__name__}: {error} at a point within the "
                f"finite-difference step of the case (its float arguments moved by at most "
                f"2h)\n{case.describe()}\n\n{user_frames(error)}",
                function="forward",
                case=case,
            ) from error
        if single:  # one call per stencil point: the common case without the joining
            if np.shape(value) != shapes[0]:
                raise StencilError(", ".join(names[k] for k in layer.wrt))
            return np.asarray(value, dtype=np.float64)
        items = outputs_of(value)
        if [np.shape(item) for item in items] != shapes:
            raise StencilError(", ".join(names[k] for k in layer.wrt))
        return np.asarray(layout.join([np.asarray(v, dtype=np.float64) for v in items]))

    return evaluate


@dataclass
class Differenced:
    """What `forward_differences` found: the differences of every differentiated argument,
    the forward's error model (with its measured precision), why differences cannot
    resolve the gradient (None when they can), the unit roundoff the forward computes in,
    and how its rounding is charged at a point from its outputs there (None: its running
    bound, which a second look evaluates at each point)."""

    fd: dict[int, ArgumentDifferences]
    model: str
    unresolvable: str | None
    unit: float
    errors_at: Callable[[np.ndarray], np.ndarray] | None

    @property
    def tracked(self) -> bool:
        return self.errors_at is None


def forward_differences(
    layer: UserLayer,
    case: UserCase,
    layout: OutputLayout,
    arguments64: tuple[np.ndarray, ...],
    dout64: np.ndarray,
    out64: np.ndarray,
    forward_error: np.ndarray,
    forward_model: str,
    count: int,
    *,
    confirming: bool = False,
) -> Differenced:
    """Finite differences for every differentiated argument (see `Differenced`);
    confirming: autograd compares every entry (fewer probes on huge arguments)."""
    evaluate = evaluator(layer, case, layout)
    errors_at = None
    unit = U64
    if not forward_model.startswith("running"):
        # The fallback model γ_m|f| + (measured rounding), re-evaluated at other outputs.
        relative = gamma(count, np.float64)
        measured = np.maximum(forward_error - relative * np.abs(out64), 0.0)

        def model(values: np.ndarray) -> np.ndarray:
            return relative * np.abs(values) + measured

        precision = measure_precision(evaluate, arguments64, layer.wrt, out64, model)
        if not precision.resolved:
            return Differenced({}, forward_model, precision.describe(), np.inf, model)
        if precision.scale != 1.0:
            forward_model = f"{forward_model}; {precision.describe()}"
        scale = precision.scale

        def scaled(values: np.ndarray) -> np.ndarray:
            return scale * model(values)

        errors_at, unit = scaled, precision.unit
        forward_error = scaled(out64)
    large = sum(a.size for a in arguments64) > LARGE_LAYER
    probes = LARGE_PROBES if confirming and large else PROBES
    found = {}
    for k in layer.wrt:
        found[k] = differences(
            _moving(evaluate, arguments64, k), arguments64[k], dout64, out64, forward_error,
            errors_at=errors_at, unit=unit, probes=probes,
        )  # fmt: skip
    return Differenced(found, forward_model, None, unit, errors_at)


def _moving(
    evaluate: Callable[[Sequence[np.ndarray]], np.ndarray],
    arguments64: Sequence[np.ndarray],
    k: int,
) -> Callable[[np.ndarray], np.ndarray]:
    """The forward as a function of argument k alone."""

    def moved(variant: np.ndarray) -> np.ndarray:
        full = list(arguments64)
        full[k] = variant
        return evaluate(full)

    return moved


def moving_forward(
    layer: UserLayer,
    case: UserCase,
    layout: OutputLayout,
    arguments64: Sequence[np.ndarray],
    k: int,
) -> Callable[[np.ndarray], np.ndarray]:
    """The forward's joined float64 outputs as a function of argument k alone."""
    return _moving(evaluator(layer, case, layout), arguments64, k)


def look_again(
    layer: UserLayer,
    case: UserCase,
    layout: OutputLayout,
    arguments64: tuple[np.ndarray, ...],
    count: int,
    differenced: Differenced,
    k: int,
    missed: np.ndarray,
) -> ArgumentDifferences:
    """The second look at argument k's missed entries (`gradcheck.user.differences.
    second_look`): the forward's rounding at their stencil points (its running bound
    there, or the fallback model at the outputs there) and the points ±4h that check the
    estimate's convergence."""
    errors_at = differenced.errors_at

    def bound_at(variant: np.ndarray, outputs: np.ndarray) -> np.ndarray | None:
        if not np.all(np.isfinite(outputs)):  # an unresolved point has no bound to charge
            return None
        if errors_at is not None:
            return errors_at(outputs)
        full = list(arguments64)
        full[k] = variant
        error, model = forward_bound(layer, full, outputs, count, layout)
        return error if model.startswith("running") else None

    moved = moving_forward(layer, case, layout, arguments64, k)
    return second_look(differenced.fd[k], missed, moved, bound_at)


def unresolved_everywhere(fd: dict[int, ArgumentDifferences]) -> str | None:
    """Why the differences resolve none of the gradient (None when they resolve some)."""
    if fd and all(d.unresolved == d.error.size for d in fd.values()):
        return (
            "the forward is not finite within the finite-difference step on either side of "
            "any entry (it overflows, or leaves its domain), and no other oracle applies"
        )
    return None
