"""Finite differences on the large-layer path, block by block of units
(see `gradcheck.catalogue.large`, whose plan chooses the layout).

**Columns.** Parameter p of every unit of a block moves at once: exact per entry, because
the units of a unit-partitioned layer are independent. Each block's ∂E_b/∂θ_b is compared
at once (through the caller's `Tally`); its share of ∂E/∂z, from input columns, accumulates
over blocks (∂E/∂z = Σ_b ∂E_b/∂z) and is compared at the end.

**Probes.** Along w = s ⊙ h (s random signs, h the step of each entry), a central
difference of E at ±w and ±2w, extrapolated, estimates ⟨∇E, w⟩ within the bound
|D(w) - D(2w)| + rounding/step of `gradcheck.core.oracles`; the hand-written side is
⟨A, w'⟩ over the steps w' actually taken, with bound Σ |w'| (e_A + γ|A|). For an error
vector e = A - ∇E, ⟨e, w⟩ = Σ s_i e_i h_i. Fix every sign but that of the largest term
e_m h_m: of the two values s_m = ±1, at least one gives |⟨e, w⟩| ≥ |e_m h_m|. So each
probe exceeds the largest weighted error with probability at least 1/2, and K independent
probes all miss it with probability at most 2^-K; a single wrong entry is met with
certainty (its sign does not matter). `large.LARGE_PROBES` = 6 gives at most 1/64 for any
error pattern whose largest entry exceeds the bound, at 4 evaluations of the layer per
probe. The per-entry guarantee comes from autograd, which compares every entry of A and
δ_in. E and ⟨A, w⟩ are sums over units, so each block adds its share to them; the
directions in z are drawn once and shared by every block.

**Error model.** The stencil's sums (`gradcheck.core.differences.difference_sums`: the
truncation output by output, the rounding of the differenced values) are sums over
outputs, so each block adds its share and the extrapolation runs once on the totals.
Each block's share is also held against the hand-written share on its own (A_b for
columns; ⟨A_b, w_b⟩ and ⟨δ_in,b, v⟩ for probes; the block's δ_in share for input
columns): where a share misses its bound, the block's stencil is evaluated again on
Tracked arrays, charging the forward's rounding at the stencil points instead of at
(z, θ) (the second look of `gradcheck.core.differences`). A total is within the sum of
its shares' bounds, so a total that fails has a share that failed and was looked at again.

`BlockDifferences` holds what accumulates over blocks; the probe pieces below it are
plain functions of arrays.
This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from gradcheck.catalogue.blockwise import Tally, accumulate
from gradcheck.core import oracles, tolerance
from gradcheck.core.comparison import compare
from gradcheck.core.differences import difference_sums, extrapolate, second_look
from gradcheck.core.results import Comparison
from gradcheck.core.tolerance import Tracked, track


class BlockDifferences:
    """The finite differences of one large case, fed one block of units at a time.

    layout is "columns" or "probes"; probes the number of directions; seed the seed of
    their signs (the same seed gives the same directions, block by block).
    """

    def __init__(
        self,
        forward: Callable[[Any, Any], Any],
        z64: np.ndarray,
        *,
        layout: str,
        probes: int,
        seed: int,
    ) -> None:
        self.forward, self.z64 = forward, z64
        self.layout, self.probes, self.seed = layout, probes, seed
        self.column_inputs: Tracked | None = None  # Σ_b ∂E_b/∂z by input columns
        self.parameter_sums: np.ndarray | None = None  # (7, K): stencil sums along w_k
        self.projections: Tracked | None = None  # (K,): ⟨A, steps taken⟩
        self.input_sums: np.ndarray | None = None  # (7, K): stencil sums along v_k
        self.input_variants: np.ndarray | None = None  # (4, K, N, I): z ± v_k, z ± 2v_k
        self.input_directions: np.ndarray | None = None  # (K, N, I): the steps v_k in z
        self.terms = 0  # outputs summed into E so far

    def add_block(
        self,
        tally: Callable[[str, str], Tally],
        gradient: Tracked,
        inputs_share: Tracked,
        theta64: np.ndarray,
        delta64: np.ndarray,
        outputs: Tracked,
        start: int,
    ) -> None:
        """Units start … of the block (θ_b, δ_b, A_b, its share of δ_in, and f_b with its
        rounding): columns are compared at once, on the caller's tally(oracle, target);
        probes accumulate."""
        forward_error = np.asarray(outputs.error)
        self.terms += delta64.size
        arguments = (self.forward, self.z64[None], theta64[None], delta64[None])
        if self.layout == "columns":
            begin = time.perf_counter()
            reference = oracles.parameter_differences(
                *arguments, forward_error[None], layout="columns"
            )
            reference, _ = second_look(
                reference, np.asarray(gradient.value)[None], np.asarray(gradient.error)[None],
                lambda _: oracles.parameter_differences(
                    *arguments, forward_error[None], layout="columns", tracked=True
                ),
            )  # fmt: skip
            tally("finite-differences", "parameters").add(
                reference.method, gradient.value, reference.value[0],
                gradient.error + reference.error[0], offset=start,
                seconds=time.perf_counter() - begin,
            )  # fmt: skip
            share = oracles.input_differences(*arguments, forward_error[None], layout="columns")
            share, _ = second_look(
                share, np.asarray(inputs_share.value)[None], np.asarray(inputs_share.error)[None],
                lambda _: oracles.input_differences(
                    *arguments, forward_error[None], layout="columns", tracked=True
                ),
            )  # fmt: skip
            self.column_inputs = accumulate(
                self.column_inputs, Tracked(share.value[0], share.error[0])
            )
            return
        # The forward's rounding at (z, θ) stands for its rounding at the stencil points on
        # the first look: Σ|δ| e_f for each of the two points of a difference.
        at_x = 2.0 * float(np.sum(np.abs(delta64) * forward_error))
        self.probe_parameters(gradient, theta64, delta64, at_x, start)
        self.probe_inputs(inputs_share, theta64, delta64, at_x)

    def probe_parameters(
        self,
        gradient: Tracked,
        theta64: np.ndarray,
        delta64: np.ndarray,
        at_x: float,
        start: int,
    ) -> None:
        """This block's stencil sums along w_k = s_k ⊙ h and its ⟨A_b, w_k⟩."""
        rng = np.random.default_rng([self.seed, 2, start])
        directions = signed_steps(rng, self.probes, theta64)
        variants = shifted(theta64, directions)
        projected = projections(directions, gradient, theta64)

        def sums(tracked: bool) -> np.ndarray:
            z = track(self.z64) if tracked else self.z64
            moved = variants.reshape((-1,) + theta64.shape)
            return stencil_sums(
                self.forward(z, track(moved) if tracked else moved), delta64, at_x, tracked
            )

        found = block_share(sums, projected, delta64.size)
        self.parameter_sums = found if self.parameter_sums is None else self.parameter_sums + found
        self.projections = accumulate(self.projections, projected)

    def probe_inputs(
        self, inputs_share: Tracked, theta64: np.ndarray, delta64: np.ndarray, at_x: float
    ) -> None:
        """This block's stencil sums along z ± v_k, z ± 2v_k (the same v_k for every block)."""
        if self.input_directions is None:
            rng = np.random.default_rng([self.seed, 3])
            self.input_directions = signed_steps(rng, self.probes, self.z64)
            self.input_variants = shifted(self.z64, self.input_directions)
        variants = self.input_variants
        assert variants is not None
        projected = projections(self.input_directions, inputs_share, self.z64)

        def sums(tracked: bool) -> np.ndarray:
            moved = variants.reshape((-1,) + self.z64.shape)
            if tracked:
                return stencil_sums(
                    self.forward(track(moved), track(theta64)), delta64, at_x, tracked
                )
            return stencil_sums(self.forward(moved, theta64), delta64, at_x, tracked)

        found = block_share(sums, projected, delta64.size)
        self.input_sums = found if self.input_sums is None else self.input_sums + found

    def comparisons(self, inputs_gradient: Tracked, begin: float) -> list[Comparison]:
        """Once every block is in: the hand-written δ_in against the input columns, and
        both probe comparisons. begin: when the caller's final stage started."""
        found: list[Comparison] = []
        hand, reference = inputs_gradient, self.column_inputs
        if reference is not None:
            found += compare(
                "finite-differences", "inputs", "finite differences (columns)",
                np.asarray(hand.value)[None], np.asarray(reference.value)[None],
                (hand.error + reference.error)[None], time.perf_counter() - begin,
            )  # fmt: skip
        if self.parameter_sums is not None and self.projections is not None:
            found.append(
                probe_comparison(
                    "parameters", self.parameter_sums, self.projections, self.probes, self.terms
                )
            )
        if self.input_sums is not None and self.input_directions is not None:
            projected = projections(self.input_directions, hand, self.z64)
            found.append(
                probe_comparison("inputs", self.input_sums, projected, self.probes, self.terms)
            )
        return found


# ---- probes ---------------------------------------------------------------------------------


def signed_steps(rng: np.random.Generator, count: int, x: np.ndarray) -> np.ndarray:
    """count directions s_k ⊙ h over x: random signs times each entry's step.

    The signs are the bits of random bytes (one bit each, where drawing integers costs a
    draw per sign); b·2h - h is exactly ±h, as 2h - h is.
    """
    size = count * x.size
    bits = np.unpackbits(np.frombuffer(rng.bytes(-(-size // 8)), dtype=np.uint8), count=size)
    steps = oracles.step_sizes(x)
    directions = bits.reshape((count,) + x.shape) * (2.0 * steps)
    directions -= steps
    return directions


def shifted(x: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """x + w, x - w, x + 2w, x - 2w for every direction w: (4, K, ...)."""
    variants = np.empty((4,) + directions.shape)
    np.add(x, directions, out=variants[0])
    np.subtract(x, directions, out=variants[1])
    np.multiply(directions, 2.0, out=variants[2])
    np.subtract(x, variants[2], out=variants[3])
    variants[2] += x
    return variants


def projections(directions: np.ndarray, gradient: Tracked, x: np.ndarray) -> Tracked:
    """⟨g, w_k⟩ for a hand-written g with error e_g, and a bound that also covers the
    steps the differences really take.

    The dot products round by at most γ_(m+1) Σ |g| |w_k| (m terms), and |w_k| = h.
    x ± c·w_k is rounded: the step taken differs from c·w_k by at most u(|x| + 2h) per
    entry, so the extrapolated difference (4 D(w) - D(2w)) / 3 measures ⟨∇E, w_k⟩ only
    within (4/3 + 1/6) u Σ |∇E| (|x| + 2h) <= 2u Σ (|g| + e_g)(|x| + 2h).
    """
    values = np.asarray(gradient.value, dtype=np.float64).ravel()
    error = np.asarray(gradient.error, dtype=np.float64).ravel()
    steps = oracles.step_sizes(x).ravel()
    projected = directions.reshape(len(directions), -1) @ values
    magnitude = np.abs(values)
    # Sums of products as dot products: Σ h (e + γ|g|) and Σ (|g| + e)(|x| + 2h).
    weighted = steps @ error + tolerance.gamma(values.size + 1, np.float64) * (steps @ magnitude)
    reach = np.abs(x, dtype=np.float64).ravel()
    reach += 2.0 * steps
    magnitude += error
    taken = 2.0 * tolerance.unit_roundoff(np.float64) * (magnitude @ reach)
    return Tracked(projected, np.full(projected.shape, float(weighted + taken)))


def stencil_sums(outputs: Any, delta64: np.ndarray, at_x: float, tracked: bool) -> np.ndarray:
    """The stencil sums (`gradcheck.core.differences.SUMS`, (7, K)) of one block from its
    outputs at z or θ + w, - w, + 2w, - 2w for K directions ((4K, N, J_b), Tracked when
    tracked: then the forward's rounding is charged at each point, else at_x stands for
    it). Steps are in units of w."""
    values = np.asarray(getattr(outputs, "value", outputs), dtype=np.float64)
    values = values.reshape((4, -1) + values.shape[1:])
    errors1 = errors2 = None
    if tracked:
        error = np.asarray(outputs.error).reshape(values.shape)
        errors1, errors2 = error[0] + error[1], error[2] + error[3]
    sums = difference_sums(
        values[0] - values[1],
        values[2] - values[3],
        delta64,
        lambda a: np.sum(a, axis=(-2, -1)),
        errors1,
        errors2,
    )
    if not tracked:
        sums[4] += at_x
        sums[5] += at_x
    return sums


def block_share(sums: Callable[[bool], np.ndarray], projected: Tracked, terms: int) -> np.ndarray:
    """A block's stencil sums along its probes, looked at again on Tracked arrays when
    the block's own share ⟨g_b, w⟩ misses its extrapolated difference."""
    found = sums(False)
    estimate, error = extrapolate(found, 2.0, 4.0, terms)
    with np.errstate(invalid="ignore"):
        missed = np.abs(np.asarray(projected.value) - estimate) > projected.error + error
    return sums(True) if np.any(missed) else found


def probe_comparison(
    target: str, sums: np.ndarray, projections: Tracked, count: int, terms: int
) -> Comparison:
    """Extrapolated directional derivatives D₁ + (D₁ - D₂)/3 of E along each probe, from
    the stencil sums over every block, against the hand-written ⟨g, w⟩."""
    begin = time.perf_counter()
    estimate, error = extrapolate(sums, 2.0, 4.0, terms)
    hand = np.asarray(projections.value)
    bound = np.asarray(projections.error) + error
    (comparison,) = compare(
        "finite-differences", target, f"finite differences ({count} probes)", hand[None],
        estimate[None], bound[None], time.perf_counter() - begin, ("probe",),
    )  # fmt: skip
    return comparison
