"""The finite-difference oracle of one example of a user's layer.

`forward_differences` differences every differentiated argument
(`gradcheck.user.differences`). When the forward has no running bound (the fallback
model of `gradcheck.core.tolerance`), it first measures the precision the forward really
computes in (`gradcheck.user.noise`) and charges the fallback model, scaled to that
precision, at every stencil point from the outputs there; the steps follow the same
precision (float64's where the outputs stood still: `gradcheck.user.noise`). A forward
noisier than any standard precision cannot be resolved by differences, and the example
says so instead of comparing.

`look_again` is the second look: the entries whose comparison failed (or whose one-sided
estimates disagree) are differenced again with the forward's rounding charged at their
stencil points (its running bound there, or the fallback model at the outputs there) and
their convergence checked against the points ±4h, before anything is called a mismatch
or a kink.

This module is free of hypothesis and pytest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gradcheck.core.differences import U64, step_sizes
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

#: The smallest positive subnormal number η of each precision `measure_precision` names.
_SMALLEST_SUBNORMAL = {
    "float64": float(np.finfo(np.float64).smallest_subnormal),
    "float32": float(np.finfo(np.float32).smallest_subnormal),
    "float16": float(np.finfo(np.float16).smallest_subnormal),
    "bfloat16": 2.0**-133,  # 8 exponent bits as float32's, 7 of its 23 fraction bits
}


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
    how its rounding is charged at a point from its outputs there (None: its running
    bound, which a second look evaluates at each point), and the unit roundoff the steps
    follow (`gradcheck.user.noise.Precision.step_unit`)."""

    fd: dict[int, ArgumentDifferences]
    model: str
    unresolvable: str | None
    unit: float
    errors_at: Callable[[np.ndarray], np.ndarray] | None
    step_unit: float = U64

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
    unit = step_unit = U64
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
        # Higham's model of a rounding, fl(a op b) = (a op b)(1 + δ) + η: the fallback's
        # γ_m|f| is the δ part; the η part, m times the smallest subnormal number of the
        # precision the forward computes in, is what underflow may lose. It matters where
        # that precision is lower than the arguments': a float64 weight of 2⁻¹⁰²² is 0 in
        # a float32 buffer, so the forward's output moves by up to η₃₂ per rounding while
        # the (float64) gradient says 2⁻¹⁰²².
        lost = count * _SMALLEST_SUBNORMAL[precision.name]

        def scaled(values: np.ndarray) -> np.ndarray:
            return scale * model(values) + lost

        errors_at, unit, step_unit = scaled, precision.unit, precision.step_unit
        forward_error = scaled(out64)
    large = sum(a.size for a in arguments64) > LARGE_LAYER
    probes = LARGE_PROBES if confirming and large else PROBES
    found = {}
    for k in layer.wrt:
        found[k] = blind_below_step(differences(
            _moving(evaluate, arguments64, k), arguments64[k], dout64, out64, forward_error,
            errors_at=errors_at, unit=step_unit, probes=probes,
        ), step_unit)  # fmt: skip
    return Differenced(found, forward_model, None, unit, errors_at, step_unit)


def blind_below_step(fd: ArgumentDifferences, unit: float) -> ArgumentDifferences:
    """The differences with every entry x ≠ 0 with |x| < 4h left unresolved (estimate NaN,
    error inf), h = cbrt(u)·max(1, |x|) its step.

    Why: for |x| < 1 the step is absolute (h = cbrt(u) ≈ 6e-6 in float64), which assumes
    the forward changes on scales no shorter than h. Drawn tiny values (gradcheck.core.
    values' tiny regime, down to the dtype's smallest normal number) break that for a
    layer that changes on the scale of its inputs: x/‖x‖ at x = (t, -t), t = 2⁻¹⁰²², has
    the gradient 1/(√2 t) ≈ 3e307, while its differences at h, 2h and 4h (stencils
    that straddle 0 by a factor h/t) fall like 1/h, converge to nothing, and their error
    model, which presumes an expansion in powers of h, charges about the estimate itself
    (≈ 2e5): a correct backward was reported wrong by 5e14 times the bound. Where the
    stencil of ±4h (the second look's) crosses 0 around such an x, the differences
    cannot tell; autograd, whose error bound does not rest on a step, still judges these
    entries where it applies. Entries with probes (directions) are left as they are:
    random probes are taken only for large arguments, which the tiny regime reaches no
    differently than any other."""
    if fd.directions is not None:
        return fd
    x = np.asarray(fd.x, dtype=np.float64)
    with np.errstate(all="ignore"):
        below = (x != 0.0) & (np.abs(x) < 4.0 * step_sizes(x, unit))
    if not below.any():
        return fd
    jacobian_error = fd.jacobian_error
    if jacobian_error is not None:
        jacobian_error = np.where(below.reshape(-1), np.inf, jacobian_error)
    return dataclasses.replace(
        fd,
        gradient=np.where(below, np.nan, fd.gradient),
        error=np.where(below, np.inf, fd.error),
        right=np.where(below, np.nan, fd.right),
        left=np.where(below, np.nan, fd.left),
        right_slack=np.where(below, np.inf, fd.right_slack),
        left_slack=np.where(below, np.inf, fd.left_slack),
        one_sided=fd.one_sided & ~below,
        jacobian_error=jacobian_error,
    )


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
    return blind_below_step(
        second_look(differenced.fd[k], missed, moved, bound_at), differenced.step_unit
    )


def unresolved_everywhere(fd: dict[int, ArgumentDifferences]) -> str | None:
    """Why the differences resolve none of the gradient (None when they resolve some)."""
    if fd and all(d.unresolved == d.error.size for d in fd.values()):
        return (
            "the forward is not finite within the finite-difference step on either side of "
            "any entry (it overflows, or leaves its domain), and no other oracle applies"
        )
    return None
