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
from gradcheck.core.results import Comparison
from gradcheck.core.tolerance import Tracked


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
        self.energies: Tracked | None = None  # (4, K): E at θ ± w_k, θ ± 2w_k
        self.projections: Tracked | None = None  # (4, K): ⟨A, steps taken⟩
        self.input_energies: Tracked | None = None  # (4, K): E at z ± v_k, z ± 2v_k
        self.input_variants: np.ndarray | None = None  # (4, K, N, I): z ± v_k, z ± 2v_k
        self.input_directions: np.ndarray | None = None  # (4, K, N, I): steps taken in z

    def add_block(
        self,
        tally: Callable[[str, str], Tally],
        gradient: Tracked,
        theta64: np.ndarray,
        delta64: np.ndarray,
        outputs: Tracked,
        start: int,
    ) -> None:
        """Units start … of the block (θ_b, δ_b, and f_b with its rounding): columns are
        compared at once, on the caller's tally(oracle, target); probes accumulate."""
        forward_error = np.asarray(outputs.error)
        arguments = (self.forward, self.z64[None], theta64[None], delta64[None])
        if self.layout == "columns":
            begin = time.perf_counter()
            reference = oracles.parameter_differences(
                *arguments, forward_error[None], layout="columns"
            )
            tally("finite-differences", "parameters").add(
                reference.method, gradient.value, reference.value[0],
                gradient.error + reference.error[0], offset=start,
                seconds=time.perf_counter() - begin,
            )  # fmt: skip
            share = oracles.input_differences(*arguments, forward_error[None], layout="columns")
            self.column_inputs = accumulate(
                self.column_inputs, Tracked(share.value[0], share.error[0])
            )
            return
        # Rounding of E_b, charged to every variant as `oracles` does: Σ|δ| e_f + γ Σ|δ f|.
        rounding = float(
            oracles.energy_rounding(delta64, np.asarray(outputs.value), forward_error, (0, 1))
        )
        self.probe_parameters(gradient, theta64, delta64, rounding, start)
        self.probe_inputs(theta64, delta64, rounding)

    def probe_parameters(
        self,
        gradient: Tracked,
        theta64: np.ndarray,
        delta64: np.ndarray,
        rounding: float,
        start: int,
    ) -> None:
        """This block's share of E at θ ± w_k, θ ± 2w_k and of ⟨A, w_k⟩, w_k = s_k ⊙ h."""
        rng = np.random.default_rng([self.seed, 2, start])
        directions = signed_steps(rng, self.probes, theta64)
        variants = shifted(theta64, directions)
        outputs = np.asarray(self.forward(self.z64, variants.reshape((-1,) + theta64.shape)))
        del variants
        values = np.einsum("vnj,nj->v", outputs, delta64).reshape(4, self.probes)
        del outputs
        self.energies = accumulate(self.energies, Tracked(values, np.full(values.shape, rounding)))
        projected = projections(directions, gradient, theta64)
        self.projections = accumulate(self.projections, projected)

    def probe_inputs(self, theta64: np.ndarray, delta64: np.ndarray, rounding: float) -> None:
        """This block's share of E at z ± v_k, z ± 2v_k (the same v_k for every block)."""
        if self.input_directions is None:
            rng = np.random.default_rng([self.seed, 3])
            self.input_directions = signed_steps(rng, self.probes, self.z64)
            self.input_variants = shifted(self.z64, self.input_directions)
        variants = self.input_variants
        assert variants is not None
        outputs = np.asarray(self.forward(variants.reshape((-1,) + self.z64.shape), theta64))
        values = np.einsum("vnj,nj->v", outputs, delta64).reshape(variants.shape[:2])
        self.input_energies = accumulate(
            self.input_energies, Tracked(values, np.full(values.shape, rounding))
        )

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
        if self.energies is not None and self.projections is not None:
            found.append(
                probe_comparison("parameters", self.energies, self.projections, self.probes)
            )
        if self.input_energies is not None and self.input_directions is not None:
            projected = projections(self.input_directions, hand, self.z64)
            found.append(probe_comparison("inputs", self.input_energies, projected, self.probes))
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


def probe_comparison(
    target: str, energies: Tracked, projections: Tracked, count: int
) -> Comparison:
    """Extrapolated directional derivatives (4 D(w) - D(2w)) / 3 of E, with
    D(w) = (E(x + w) - E(x - w)) / 2, against the hand-written ⟨g, w⟩."""
    begin = time.perf_counter()
    plus1, minus1, plus2, minus2 = np.asarray(energies.value)
    rho = np.asarray(energies.error)
    estimate, error = oracles.richardson(
        (plus1 - minus1) / 2.0,
        (plus2 - minus2) / 4.0,
        (rho[0] + rho[1]) / 2.0,
        (rho[2] + rho[3]) / 4.0,
    )
    hand = np.asarray(projections.value)
    bound = np.asarray(projections.error) + error
    (comparison,) = compare(
        "finite-differences", target, f"finite differences ({count} probes)", hand[None],
        estimate[None], bound[None], time.perf_counter() - begin, ("probe",),
    )  # fmt: skip
    return comparison
