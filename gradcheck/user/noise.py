"""The precision a user's forward really computes in, measured from how its outputs move.

A forward without a running bound is charged the fallback model of
`gradcheck.core.tolerance`, γ_m(float64)·|f| plus its measured rounding: the model of a
float64 computation. Libraries that keep float32 buffers inside a float64 call (tinynn's
im2col, its RNN and LSTM states) are 10⁹ times noisier than that, and finite differences
charged with the float64 model see their noise as slope ("reference 0", "scale-constant
1.0107").

**Measurement.** Along a random signed direction s of every differentiated argument, the
forward is evaluated at x + c g ⊙ s for c = 0 and `POINTS` random distinct integers in
(0, C], and again for c = 0 and as many in [-C, 0). g_k = 2^⌊log₂ max(1, |x_k|)⌋ 2^-b is a
power of two with C g ≈ τ max(1, |x|) (τ = cbrt(u)/4 of the precision tried), so that
every point is a float64 number (x_k + c g_k is a multiple of x_k's ulp within its
binade) and the points of a side lie on a line. Each side's outputs are fitted by a
polynomial of degree `DEGREE` in c (least squares, the projection P). For a smooth f the
residual r = (I - P) f is the fit's truncation, about (τ max(1, |x|))⁴ |f⁽⁴⁾| / 24;
rounding errors n_i with |n_i| <= e_o(point i) leave at most ‖I - P‖_∞ max_i e_o in it
(about 2.5 max_i e_o). The excess X = max_(o,i) |r_io| / max_i e_o (the smaller of the
two sides, the larger of two directions) is the noise the residuals show in units of the
model, and X / ‖I - P‖_∞ > 1 proves the model wrong. Noise shows on both sides of x; a
kink within reach (a tie in a max pool) bends one side's fit only, which is why the sides
are fitted apart and the smaller is taken. The positions are random rather than evenly
spaced because the rounding of an input to float32 is a sawtooth in x: on an even grid
its errors can fall on a line (x = 3 moved by 19 float32 ulps less 0.13 at each step),
which the fit absorbs; at random multiples of g < ulp₃₂ they are as good as random.
Outputs that lie on the float32 grid (or float16, bfloat16) at points that do not are
stored in that precision, even where they do not move at all (tanh(5) in float32 is
0.9999092 at every point of x ± 1e-6): the precision is then at least that one.

**Precision.** Where X <= ‖I - P‖_∞ the float64 model stands. Otherwise the forward is
charged the model scaled by the smallest of these factors that covers X: a power of two
up to 2¹⁰ (a float64 computation whose model counts too few roundings: a transcendental
charged as one operation, a cancellation), then u_p/u₆₄ for the standard precisions p =
float32 (2²⁹), float16 (2⁴²) and bfloat16 (2⁴⁵), for a forward that computes in p
somewhere: the same operations, some of them in p. The effective unit roundoff
u = u₆₄·scale also sets the finite differences' step, h = cbrt(u)·max(1, |x|), which
balances their truncation against that rounding (float32: h = 3.9e-3·max(1, |x|)). The
measurement is repeated at the spacing τ = cbrt(u)/4 of the scale chosen (a coarser
precision shows its rounding only at a coarser spacing) until it is covered. A forward
noisier than bfloat16 cannot be resolved by differences, and the check says so.

**Truncation is not noise.** At the spacing of a lower precision (float32's, 1.2e-3
max(1, |x|), and coarser), an excess that is not covered is measured again at a sixteenth
of the spacing before a coarser precision is charged: the truncation of a smooth f falls
16⁴-fold there, noise (set by |f|, not by τ) not at all, so a fall below a sixteenth of
it, with outputs that still move, is the forward's curvature and the precision stands
(`_truncation`: a float32 LSTM whose gates turn over within 1/64 of x was charged float16
for it, and its differences stepped across whole transitions). Not at float64's spacing:
there the truncation is negligible, and a sixteenth of it (1e-7 |x|) moves a float32
buffer's inputs by less than their float32 ulp, which hides the noise it has to show.

**Outputs that stand still.** Where no output moves at any point of a spacing and none
lies on a grid of its own (only values of at most 4 significant bits, 0, ±1, or values on
no float32 grid), the residuals are exactly those of a constant, 0 under every model, and
the measurement has no evidence for any precision: a float32 buffer holds tanh(-9.4) as
-1.0 at every point of x ± 1e-2, where float64's tanh moves by 5e-8 per unit of x. Keeping
the float64 model there charges the differences' 0 with float64 rounding, about
γ_m |f| / h ≈ 1e-11, against a true slope of 5e-8: a false alarm. A precision p is
evidenced only by outputs that move within p's spacing, so the measurement moves on to the
next standard precision's spacing (float32, float16, bfloat16) and charges at least that
precision, bfloat16 where they stand still even there (the coarsest the differences model).
A value stored in p hides any change below u_p|f|: the differences charged u_p|f| at each
point, whatever their step, bound every slope the stillness hides (float32: 2⁻²⁴/h ≈ 2e-3
against 5e-8), and where that is too coarse to judge, autograd still judges. The steps stay
float64's: stillness says nothing of how far the forward stays smooth, and the step of p
(max(1, |x|)/8 for bfloat16) crossed a saturated tanh's whole transition (|x| = 64) and
made a jump look like a slope. A constant of a float64 forward (a dead ReLU's 0) is charged
only p's underflow η at 0, so its differences lose nothing there.

This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.core.differences import U64

#: The scales of the float64 model a forward may be charged, finest first, and what each
#: stands for: powers of two for a float64 computation whose model counts too few
#: roundings, then the standard lower precisions (u_p / u₆₄).
SCALES = tuple((float(2**k), "float64") for k in range(11)) + (
    (float(np.finfo(np.float32).eps) / 2.0 / U64, "float32"),
    (float(np.finfo(np.float16).eps) / 2.0 / U64, "float16"),
    (2.0**-8 / U64, "bfloat16"),
)
#: Random points (besides x itself) on each side of x along each direction, their range
#: of integer positions, and the degree of the fit.
POINTS = 7
POSITIONS = 1 << 10
DEGREE = 3
#: Random directions measured at each spacing.
DIRECTIONS = 2


@dataclass(frozen=True)
class Precision:
    """What the measurement found: the precision the forward is charged at, the factor its
    float64 model is scaled by (inf: noisier than bfloat16), the effective unit roundoff
    u₆₄·scale, the excess X measured (at most ‖I - P‖_∞ where the model holds), and
    whether the outputs stood still at a finer spacing (the precision is then a floor
    set by the spacing that first showed movement, bfloat16 where none did)."""

    name: str
    scale: float
    excess: float
    still: bool = False

    @property
    def unit(self) -> float:
        return U64 * self.scale

    @property
    def step_unit(self) -> float:
        """The unit roundoff the finite differences' steps follow, h = cbrt(u)·max(1, |x|):
        the precision's, except after outputs that stood still, whose steps stay float64's
        (nothing outside its spacing was seen to be smooth)."""
        return U64 if self.still else self.unit

    @property
    def resolved(self) -> bool:
        return bool(np.isfinite(self.scale))

    def describe(self) -> str:
        if not self.resolved:
            return (
                f"the forward's outputs are {self.excess:.3g} times noisier than its float64 "
                "model, more than even bfloat16 rounding would make them: finite differences "
                "cannot resolve its gradient"
            )
        if self.still:
            return (
                "the forward's outputs stood still at the points measured at finer spacings "
                "(saturated, or constant), which is no evidence of a finer precision than "
                f"{self.name}: its rounding is charged at {self.name} (the excess measured "
                f"at its spacing: {self.excess:.3g}), while the finite differences keep "
                "float64's step"
            )
        if self.scale == 1.0:
            return "measured noise within the float64 model"
        if self.name == "float64":
            return (
                f"measured noise {self.excess:.3g} times the float64 model: the model is "
                f"scaled by {self.scale:g}, and so are the finite differences' steps (by "
                f"cbrt({self.scale:g}))"
            )
        return (
            f"measured: the forward's outputs are {self.excess:.3g} times noisier than a "
            f"float64 computation's, as a {self.name} computation's are (it computes in "
            f"{self.name} somewhere): its rounding is charged at {self.name}, and the finite "
            f"differences step by cbrt(u_{self.name})·max(1, |x|)"
        )


def measure_precision(
    evaluate: Callable[[Sequence[np.ndarray]], np.ndarray],
    arguments: Sequence[np.ndarray],
    wrt: Sequence[int],
    outputs: np.ndarray,
    model: Callable[[np.ndarray], np.ndarray],
    *,
    seed: int = 0,
) -> Precision:
    """The precision the forward computes in (see the module docstring).

    evaluate(arguments) returns the joined float64 outputs (not finite where the forward
    is not); model(values) is the float64 model's rounding bound for outputs `values`.
    """
    scale, name, excess, still = 1.0, "float64", 0.0, False

    def excess_at(spacing: float) -> tuple[float, float, bool, bool]:
        return _excess(evaluate, arguments, wrt, outputs, model, spacing, seed)

    for _ in range(len(SCALES)):
        spacing = float(np.cbrt(U64 * scale)) / 4.0
        found, spread, blind, _ = excess_at(spacing)
        if blind:  # no evidence for any model at this spacing: the next precision's
            still = True
            coarser = [(s, n) for s, n in SCALES if s > scale and n != "float64"]
            if not coarser:
                break
            scale, name = coarser[0]
            continue
        covered = max(excess, found) <= (spread if scale == 1.0 else scale)
        if not covered and name != "float64" and _truncation(excess_at, spacing, found):
            break  # the fit's truncation, not noise: the precision and its excess stand
        excess = max(excess, found)
        if covered:  # the model stands
            break
        covering = [(s, n) for s, n in SCALES if s >= excess]
        if not covering:
            return Precision("unresolved", np.inf, excess, still)
        scale, name = covering[0]
    return Precision(name, scale, excess, still)


def _truncation(
    excess_at: Callable[[float], tuple[float, float, bool, bool]], spacing: float, found: float
) -> bool:
    """Whether the excess `found` at this spacing is the fit's truncation rather than
    noise (excess_at(τ) measures `_excess` at spacing τ). At a sixteenth of the spacing the
    truncation of a smooth f, (τ max(1, |x|))⁴ |f⁽⁴⁾| / 24, falls 16⁴-fold, while rounding
    noise, set by |f| and not by τ, stays as it was (as long as the outputs still move: at
    a spacing where they stand still a coarse precision hides its noise). A fall below
    found / 16 with outputs that move is truncation: a float32 LSTM whose gates saturate
    with weights of 64 turns over within 1/64 of x, and at float32's spacing (1.2e-3
    max(1, |x|), 0.08 at |x| = 64) its fit missed by 2.3e12 times the float64 model;
    charged as float16 noise, the differences stepped by 0.1 |x| across whole transitions
    and called the correct backward wrong."""
    finer, _, _, moved = excess_at(spacing / 16.0)
    return moved and finer <= found / 16.0


def _excess(
    evaluate: Callable[[Sequence[np.ndarray]], np.ndarray],
    arguments: Sequence[np.ndarray],
    wrt: Sequence[int],
    outputs: np.ndarray,
    model: Callable[[np.ndarray], np.ndarray],
    spacing: float,
    seed: int,
) -> tuple[float, float, bool, bool]:
    """The excess X over DIRECTIONS random directions at this spacing, the largest
    ‖I - P‖_∞ of their fits, whether the outputs stood still (no finite output moved at
    any point and none lies on a grid of `GRANULES`, see the module docstring) and whether
    any finite output moved."""
    rng = np.random.default_rng([seed, round(-float(np.log2(spacing)))])
    worst, widest = 0.0, 0.0
    coarsest = -1  # the coarsest grid every output lies on; -1: nothing seen yet
    changed = False  # whether any finite output moved at any point
    for _ in range(DIRECTIONS):
        moves = {}
        for k in wrt:
            scale = np.exp2(np.floor(np.log2(np.maximum(1.0, np.abs(arguments[k])))))
            grid = scale * np.exp2(np.floor(np.log2(spacing / POSITIONS)))  # a power of two
            moves[k] = rng.choice([-1.0, 1.0], size=arguments[k].shape) * grid
        sides = []
        for sign in (1, -1):
            picked = rng.choice(np.arange(1, POSITIONS + 1), size=POINTS, replace=False)
            positions = np.concatenate([[0], sign * picked])
            design = np.vander(positions / POSITIONS, DEGREE + 1)
            residual = np.eye(len(positions)) - design @ np.linalg.pinv(design)
            widest = max(widest, float(np.max(np.sum(np.abs(residual), axis=1))))
            rows = [outputs]
            with np.errstate(all="ignore"):
                for t in positions[1:]:
                    moved = [a + t * moves[k] if k in moves else a for k, a in enumerate(arguments)]
                    rows.append(np.asarray(evaluate(moved), dtype=np.float64))
                stacked = np.stack(rows)
                bounds = model(np.where(np.isfinite(stacked), stacked, 0.0))
                values = stacked.reshape(len(positions), -1)
                finite = np.isfinite(values).all(axis=0)
                values = np.where(finite, values, 0.0)
                misfit = np.max(np.abs(residual @ values), axis=0)
                allowed = np.max(bounds.reshape(len(positions), -1), axis=0)
                ratio = np.where(misfit == 0, 0.0, np.where(allowed > 0, misfit / allowed, np.inf))
            coarsest = max(coarsest, _granular(values[1:]))
            changed = changed or bool(np.any(values[1:, finite] != values[0, finite]))
            sides.append(float(np.max(np.where(finite, ratio, 0.0), initial=0.0)))
        worst = max(worst, min(sides))  # a kink within reach spoils one side, noise both
    if 0 <= coarsest < len(GRANULES) and worst <= GRANULES[coarsest][0]:
        # Outputs on a float32 (float16, bfloat16) grid at points that are not: the forward
        # stores them in that precision, even where they do not move at all (tanh(5) is
        # 0.9999092 in float32 whatever x ± 1e-6 does to it).
        worst = GRANULES[coarsest][0]
    still = not changed and not 0 <= coarsest < len(GRANULES)
    return worst, widest, still, changed


#: The grids a float64 output may turn out to lie on, coarsest first: the scale of each
#: precision (u_p / u₆₄) and a test of membership.
GRANULES = (
    (2.0**-8 / U64, lambda v: on_float32(v) & (_low_bits(v) == 0)),
    (float(np.finfo(np.float16).eps) / 2.0 / U64, lambda v: on_grid(v, np.float16)),
    (float(np.finfo(np.float32).eps) / 2.0 / U64, lambda v: on_float32(v)),
)


def on_grid(values: np.ndarray, dtype: type[np.floating[Any]]) -> np.ndarray:
    """Per entry: is the float64 value a number of `dtype` (NaN never is)?"""
    with np.errstate(over="ignore", invalid="ignore"):
        return values.astype(dtype).astype(np.float64) == values


def on_float32(values: np.ndarray) -> np.ndarray:
    return on_grid(values, np.float32)


def _low_bits(values: np.ndarray) -> np.ndarray:
    """The 16 low bits of each value's float32 encoding (bfloat16 keeps the high 16)."""
    with np.errstate(over="ignore"):
        return values.astype(np.float32).view(np.uint32) % 65536


def _granular(values: np.ndarray) -> int:
    """The index in `GRANULES` of the coarsest grid every output value at the moved points
    lies on (the points themselves lie on no float32 grid), len(GRANULES) where there is
    none. Values with at most 4 significant bits (0, ±1, 0.75, saturated outputs) lie on
    every grid and tell nothing: another one must be there, else -1. One suffices: a value
    of a float64 computation lands on the float32 grid by chance once in 2²⁹, a float32
    value on the bfloat16 grid once in 2¹⁶ (tanh(5) stored in float32 is 0.9999092 at
    every point of x ± 1e-6: the only value there is, and it says float32)."""
    finite = values[np.isfinite(values)]
    mantissa, _ = np.frexp(finite)
    informative = np.unique(finite[mantissa * 16.0 != np.round(mantissa * 16.0)])
    if informative.size == 0:
        return -1
    for index, (_, on_grid) in enumerate(GRANULES):
        if np.all(on_grid(finite)):
            return index
    return len(GRANULES)
