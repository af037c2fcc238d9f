"""Finite differences on the large-layer path, block by block of units
(see `gradcheck.catalogue.large`, whose plan chooses the layout).

**Columns.** Parameter p of every unit of a block moves at once: exact per entry, because
the units of a unit-partitioned layer are independent. Each block's ∂E_b/∂θ_b is compared
at once (through the caller's `Tally`); its share of ∂E/∂z, from input columns, accumulates
over blocks (∂E/∂z = Σ_b ∂E_b/∂z) and is compared at the end.

**Probes.** Along w = s ⊙ h (s random signs, h the step of each entry), a central
difference of E at ±w and ±2w, extrapolated, estimates ⟨∇E, w⟩; the hand-written side is
⟨A, w⟩ with the bound of `gradcheck.core.probes` (its error, the dot products' rounding and
the steps taken), where the power of K probes is derived: any error pattern whose largest
weighted entry exceeds the bound escapes all of them with probability at most 2^-K, and a
single wrong entry is met with certainty. `large.LARGE_PROBES` = 6 gives at most 1/64, at
4 evaluations of the layer per probe. The per-entry guarantee comes from autograd, which
compares every entry of A and δ_in. E and ⟨A, w⟩ are sums over units, so each block adds
its share to them; the directions in z are drawn once and shared by every block.

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
from gradcheck.core import oracles
from gradcheck.core.comparison import compare
from gradcheck.core.differences import extrapolate, second_look
from gradcheck.core.probes import probe_sums, projections, shifted, signed_steps
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
        projected = projected_along(directions, gradient, theta64)

        def sums(tracked: bool) -> np.ndarray:
            z = track(self.z64) if tracked else self.z64
            moved = variants.reshape((-1,) + theta64.shape)
            return probe_sums(
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
        projected = projected_along(self.input_directions, inputs_share, self.z64)

        def sums(tracked: bool) -> np.ndarray:
            moved = variants.reshape((-1,) + self.z64.shape)
            if tracked:
                return probe_sums(
                    self.forward(track(moved), track(theta64)), delta64, at_x, tracked
                )
            return probe_sums(self.forward(moved, theta64), delta64, at_x, tracked)

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
            projected = projected_along(self.input_directions, hand, self.z64)
            found.append(
                probe_comparison("inputs", self.input_sums, projected, self.probes, self.terms)
            )
        return found


# ---- probes ---------------------------------------------------------------------------------


def projected_along(directions: np.ndarray, gradient: Tracked, x: np.ndarray) -> Tracked:
    """⟨g, w_k⟩ for a block's hand-written g, with the bound of `gradcheck.core.probes`
    (its error, the dot products' rounding and the steps taken), as a Tracked to sum
    over blocks."""
    return Tracked(*projections(directions, np.asarray(gradient.value), gradient.error, x))


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
