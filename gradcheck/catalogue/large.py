"""Layers too big for the stacked path: O(n) memory and a constant number of passes.

A unit-partitioned layer (output j depends on θʲ alone) can be checked one block of units
at a time: f(z; θ_b), with θ_b the rows of θ of the units in block b, gives exactly those
units' outputs. So B_b, A_b = Σ_n diag(δ_nb) B_nb and every per-entry reference of block b
are formed, compared and discarded before the next block, and formula 1 accumulates:

    ∂E/∂z = Σ_b ∂E_b/∂z,    E_b = Σ_n Σ_(j∈b) δ_nj f_nj(z; θ_b)

For each block, with the error model of `gradcheck.core.tolerance` throughout:

- hand-written: B_b, ∂f_b/∂z, A_b and the block's share of δ_in on Tracked arrays in the
  case's dtype (the running error bound of the user's own code);
- dense: the block's rows of δ · blockdiag(B_1 … B_J) with `compact.dense_gradient`
  (explicit J_b × J_bP, or block by block: the 1 × N by N × P product of each diagonal
  block), so the J × JP matrix is never formed; and the seed's outer product for rank-one
  layers;
- autograd: ∂E_b/∂θ_b, exact per entry (every entry of A is compared), ∂E_b/∂z and the
  forward's rounding, from a reverse pass through f(z; θ) on Tracked float64 arrays;
- finite differences, "columns" while 4(P + I) evaluations of the layer are affordable
  (parameter p of every unit of the block at once: exact per entry because units are
  independent), otherwise K random signed probes of θ and K of z (below);
- the kink test: the forward on Tracked arrays whose error is twice the step.

Blocks are small (about 1/64 of N·J·P entries), so that the hand-written side's
N × J_b × P arrays stay in cache; the reverse pass, the forward and the kink test, whose
arrays are the size of θ_b rather than N times it, run once per pass of several blocks
(`PASS_ENTRIES`), which keeps Python's share of their cost small.

**Probes** (`gradcheck.catalogue.block_differences`) exceed the largest weighted error of
A with probability at least 1/2 each, so `LARGE_PROBES` = 6 miss it with probability at
most 1/64; the per-entry guarantee comes from autograd, which compares every entry of A
and δ_in.

**Structure.** The whole layer is evaluated twice on one float64 copy of θ: before and
after the rows of a random half of the units are moved by their finite-difference step.
A unit-partitioned layer's outputs read only their own row of θ, so the outputs of the
units left alone come out bit for bit the same (the same code on the same buffer); the
share of the change in outputs that lands on them measures the coupling, and a pair of
coupled units is split by the halves with probability 1/2.

Memory: θ itself, one block's and one pass's arrays (set by their sizes), the accumulated
δ_in and its references (N × I), and for the structure check one copy of θ.
Layers declared coupled never come here: per-block forwards would change them. Square
layers (I = J, unit j reading input j) are checked in one block: their forward pairs
units with inputs by position. The way in is `gradcheck.catalogue.checker` (`check_many`
through `check_validated`, and `check_large`), which this module does not import.
This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.catalogue.activations import Activation
from gradcheck.catalogue.block_differences import BlockDifferences
from gradcheck.catalogue.blockwise import Tally, accumulate, reverse_mode
from gradcheck.catalogue.cases import Options
from gradcheck.catalogue.hand_written import hand_written_side, rank_one_reference
from gradcheck.catalogue.layers import LayerType
from gradcheck.catalogue.stacked import Batch
from gradcheck.catalogue.verdicts import case_verdict
from gradcheck.core import compact, oracles, tolerance
from gradcheck.core.comparison import (
    CaseError,
    Clock,
    compare,
)
from gradcheck.core.probes import LARGE_PROBES
from gradcheck.core.results import CaseSummary, CheckResult, Comparison, Verdict
from gradcheck.core.tolerance import Tracked, track
from gradcheck.diagnosis.classes import Diagnosis

#: θ with more entries than this, in a layer not declared coupled, is checked here.
LARGE_PARAMETERS = 1 << 16
#: A block of units holds N·J_b·max(P, I) entries: about 1/64 of N·J·P, within these limits
#: (small enough for the cache and for memory, large enough that Python's per-block cost
#: stays small beside numpy's).
BLOCK_ENTRIES = (1 << 16, 1 << 18)
#: A pass (the float64 forward, the kink test and autograd's reverse pass, for several
#: blocks at once) holds N·J_pass·max(P, I) entries, at most this many and a quarter of θ:
#: few passes keep Python's share of the cost small, and their arrays stay within memory.
PASS_ENTRIES = 1 << 21
#: "auto" uses column differences while 4(P + I) evaluations of the whole layer cost at
#: most this many output-times-parameter products (N·J·P each), and probes above.
COLUMN_WORK_BUDGET = 1 << 30
# LARGE_PROBES (gradcheck.core.probes): probes of θ, and of z, under "auto".
#: Units of the sub-case a mismatch is diagnosed on (see `LargeCheck.diagnose`).
DIAGNOSIS_UNITS = 4


def applies(layer: LayerType, parameters: int, *, threshold: int | None = None) -> bool:
    """Whether a case with `parameters` entries of θ takes this path (threshold: default
    LARGE_PARAMETERS, read when called)."""
    limit = LARGE_PARAMETERS if threshold is None else threshold
    return not layer.coupled and parameters > limit


@dataclass(frozen=True, kw_only=True)
class Plan:
    """How a large case is checked: units per block, the finite-difference layout
    ("columns" or "probes"), how many probes, the seed of their signs, and units per pass
    (a whole number of blocks)."""

    block_units: int
    layout: str
    probes: int
    pass_units: int
    seed: int = 0


def make_plan(
    *,
    batch: int,
    inputs: int,
    units: int,
    parameters: int,
    finite_differences: str = "auto",
    probes: int | None = None,
    block_units: int | None = None,
    seed: int = 0,
) -> Plan:
    """Blocks of about N·J·P / 64 entries (within BLOCK_ENTRIES), passes of as many blocks
    as PASS_ENTRIES allows; columns while 4(P + I)·N·J·P <= COLUMN_WORK_BUDGET under "auto"
    ("full" is taken as "columns": for independent units they give the same entries),
    probes otherwise."""
    if block_units is None:
        low, high = BLOCK_ENTRIES
        budget = min(high, max(low, batch * units * parameters // 64))
        block_units = budget // (batch * max(parameters, inputs))
    block_units = max(1, min(units, block_units))
    layout = finite_differences
    if layout == "auto":
        work = 4 * (parameters + inputs) * batch * units * parameters
        layout = "columns" if work <= COLUMN_WORK_BUDGET else "probes"
    elif layout == "full":
        layout = "columns"
    count = probes if probes is not None else LARGE_PROBES
    entries = min(PASS_ENTRIES, units * parameters // 4)
    blocks = max(1, entries // (batch * block_units * max(parameters, inputs)))
    return Plan(
        block_units=block_units, layout=layout, probes=count, seed=seed,
        pass_units=block_units * blocks,
    )  # fmt: skip


def check_validated(
    layer: LayerType,
    phi: Activation,
    z: np.ndarray,
    theta: np.ndarray,
    delta: np.ndarray,
    options: Options,
) -> CheckResult:
    """The path `check_many` takes for one validated large case. `options` carries
    oracles, finite_differences and probes (used when the layout is "probes" by request;
    "auto" chooses LARGE_PROBES)."""
    explicit = options.finite_differences == "probes"
    plan = make_plan(
        batch=z.shape[0], inputs=z.shape[1], units=theta.shape[0], parameters=theta.shape[1],
        finite_differences=options.finite_differences,
        probes=options.probes if explicit else None,
        block_units=theta.shape[0] if layer.square else None,
    )  # fmt: skip
    return LargeCheck(layer, phi, z, theta, delta, plan, options.oracles).run()


# ---- the check -------------------------------------------------------------------------------


class LargeCheck:
    """One large case, checked block by block."""

    def __init__(
        self,
        layer: LayerType,
        phi: Activation,
        z: np.ndarray,
        theta: np.ndarray,
        delta: np.ndarray,
        plan: Plan,
        names: Sequence[str],
    ) -> None:
        self.layer, self.phi, self.plan, self.oracles = layer, phi, plan, tuple(names)
        self.z, self.theta, self.delta = z, theta, delta
        self.z64 = z.astype(np.float64)
        self.delta64 = delta.astype(np.float64)
        self.z_steps = oracles.step_sizes(self.z64)
        batch, inputs = z.shape
        units, parameters = theta.shape
        self.summary = CaseSummary(
            layer.name, phi.label, z.dtype.name, inputs, units, batch, parameters
        )
        self.clock = Clock()  # wall time per stage
        self.tallies: dict[tuple[str, str, str], Tally] = {}
        self.comparisons: list[Comparison] = []
        self.invalid: str | None = None
        self.non_differentiable: str | None = None
        self.mass: float | None = None
        self.rank_one = "not applicable"
        # Accumulated over blocks: formula 1 and autograd's reference for it; the finite
        # differences keep their own sums.
        self.inputs_gradient: Tracked | None = None
        self.autograd_inputs: Tracked | None = None
        self.differences = BlockDifferences(
            self.forward, self.z64, layout=plan.layout, probes=plan.probes, seed=plan.seed
        )

    def forward(self, z: Any, theta: Any) -> Any:
        return self.layer.forward(z, theta, self.phi)

    def tally(self, oracle: str, target: str, kind: str = "") -> Tally:
        """The tally of one comparison; kind separates two of one oracle and target."""
        return self.tallies.setdefault((oracle, target, kind), Tally(oracle, target))

    # -- driving ---------------------------------------------------------------------------

    def run(self) -> CheckResult:
        try:
            if "autograd" in self.oracles:
                self.clock.run("structure", self.structure)
            if not (self.mass is not None and self.mass > 0.0):
                units, width = self.theta.shape[0], self.plan.pass_units
                for start in range(0, units, width):
                    self.sweep(start, min(units, start + width))
                    if self.invalid is not None or self.non_differentiable is not None:
                        break
                else:
                    self.finish()
        except CaseError as problem:
            self.invalid = str(problem)
        return self.verdict()

    def structure(self) -> None:
        """Whether moving the parameters of a random half of the units changes the outputs
        of the other half: the share of the change in outputs that lands there.

        The whole layer is evaluated twice on one float64 copy of θ, before and after the
        rows of the moved half are shifted by their finite-difference step. The outputs of
        a unit-partitioned layer read only their own row, so those of the unmoved half come
        out bit for bit the same (the same code on the same buffer); any difference is a
        dependence across units.
        """
        units = self.theta.shape[0]
        if units < 2:
            self.mass = 0.0
            return
        rng = np.random.default_rng([self.plan.seed, 1])
        kept = np.zeros(units, dtype=bool)
        kept[rng.permutation(units)[: units // 2]] = True
        theta64 = np.array(self.theta, dtype=np.float64)
        with np.errstate(all="ignore"):
            before = np.asarray(self.forward(self.z64, theta64))
            for start in range(0, units, self.plan.block_units):
                rows = slice(start, start + self.plan.block_units)
                shift = oracles.step_sizes(theta64[rows])
                shift[kept[rows]] = 0.0
                theta64[rows] += shift
            change = np.abs(np.asarray(self.forward(self.z64, theta64)) - before)
        del theta64
        total = float(np.sum(change))
        crossing = float(np.sum(change[..., kept]))
        self.mass = crossing / total if total > 0 else 0.0

    def sweep(self, start: int, stop: int) -> None:
        """One pass over units start … stop - 1: the float64 forward with its rounding, the
        kink test and autograd's reverse pass for all of them at once (their arrays are the
        size of the pass's rows of θ), then the hand-written side block by block."""
        theta64 = np.asarray(self.theta[start:stop], dtype=np.float64)
        delta64 = self.delta64[:, start:stop]
        d_theta = None
        with np.errstate(all="ignore"):
            if "autograd" in self.oracles:
                outputs, d_theta, d_z = self.clock.run(
                    "autograd", lambda: reverse_mode(self.forward, self.z64, theta64, delta64)
                )
                self.autograd_inputs = accumulate(self.autograd_inputs, d_z)
            else:
                outputs = self.clock.run(
                    "forward", lambda: self.forward(track(self.z64), track(theta64))
                )
            self.clock.run("forward", lambda: self.kinks(theta64, start))
        values = np.asarray(outputs.value)
        if not np.isfinite(values).all():
            n, j = (int(i) for i in np.argwhere(~np.isfinite(values))[0])
            self.invalid = (
                f"the forward of {self.layer.name} is {values[n, j]} at output ({n}, "
                f"{j + start}) for these inputs (outside the layer's domain)"
            )
            return
        if self.invalid is not None:
            return
        for first in range(start, stop, self.plan.block_units):
            last = min(stop, first + self.plan.block_units)
            rows = slice(first - start, last - start)
            self.block(first, last, outputs[:, rows], None if d_theta is None else d_theta[rows])
            if self.invalid is not None or self.non_differentiable is not None:
                return

    def block(self, start: int, stop: int, outputs: Tracked, d_theta: Tracked | None) -> None:
        """Units start … stop - 1: the hand-written side and its comparisons."""
        theta = self.theta[start:stop]
        theta64 = np.asarray(theta, dtype=np.float64)
        delta, delta64 = self.delta[:, start:stop], self.delta64[:, start:stop]
        unit_jacobian, gradient, inputs_share = self.clock.run(
            "hand-written", lambda: self.hand_written(theta, delta, start)
        )
        if self.invalid is not None or self.non_differentiable is not None:
            return
        if "dense" in self.oracles:
            self.clock.run(
                "dense", lambda: self.dense(gradient, unit_jacobian, theta, delta, start)
            )
        if d_theta is not None:
            begin = time.perf_counter()
            self.tally("autograd", "parameters").add(
                "reverse mode", gradient.value, d_theta.value, gradient.error + d_theta.error,
                offset=start, seconds=time.perf_counter() - begin,
            )  # fmt: skip
        if "finite-differences" in self.oracles:
            with np.errstate(all="ignore"):
                self.clock.run(
                    "finite-differences",
                    lambda: self.differences.add_block(
                        self.tally, gradient, inputs_share, theta64, delta64, outputs, start
                    ),
                )

    def kinks(self, theta64: np.ndarray, start: int) -> None:
        """The forward with every input uncertain by twice its step: a kink, tie or
        singularity within reach makes the case non-differentiable. Found in a pass, it is
        looked for again block by block, to name the block."""
        if not self.kink_events(theta64):
            return
        for first in range(0, len(theta64), self.plan.block_units):
            events = self.kink_events(theta64[first : first + self.plan.block_units])
            if events:
                self.mark_events(events, start + first)
                return

    def kink_events(self, theta64: np.ndarray) -> list[tolerance.Event]:
        with tolerance.recording() as events:
            self.forward(
                track(self.z64, 2.0 * self.z_steps),
                track(theta64, 2.0 * oracles.step_sizes(theta64)),
            )
        return events

    def mark_events(self, events: list[tolerance.Event], start: int) -> None:
        for event in events:
            where = f"{event.describe()} (in the block of units from {start})"
            if event.kind == "domain":
                if self.invalid is None:
                    self.invalid = f"the pre-activation leaves the activation's domain: {where}"
            elif self.non_differentiable is None:
                self.non_differentiable = (
                    f"non-differentiable: {where}; the gradient is not defined within the "
                    "finite-difference step"
                )

    def hand_written(
        self, theta: np.ndarray, delta: np.ndarray, start: int
    ) -> tuple[Tracked, Tracked, Tracked]:
        """B_b, A_b and the block's share of δ_in in the case's dtype, with error bounds."""
        hand, events = hand_written_side(self.layer, self.phi, self.z, theta, delta)
        self.mark_events(events, start)
        self.inputs_gradient = accumulate(self.inputs_gradient, hand.inputs_gradient)
        return hand.unit_jacobian, hand.gradient, hand.inputs_gradient

    def dense(
        self,
        gradient: Tracked,
        unit_jacobian: Tracked,
        theta: np.ndarray,
        delta: np.ndarray,
        start: int,
    ) -> None:
        """The block's rows of the block-diagonal product, and the rank-one form."""
        begin = time.perf_counter()
        values = np.asarray(unit_jacobian.value)
        product, method = compact.dense_gradient(delta[None], values[None])
        bound = tolerance.summation_bound(delta, unit_jacobian)
        self.tally("dense", "parameters", "block-diagonal").add(
            method, gradient.value, product[0], bound, offset=start,
            seconds=time.perf_counter() - begin,
        )  # fmt: skip
        if self.layer.rank_one is None:
            return
        begin = time.perf_counter()
        outer, bound = rank_one_reference(self.layer, self.phi, self.z, theta, delta)
        self.tally("dense", "parameters", "rank-one").add(
            "rank-one outer product", gradient.value, outer, bound, offset=start,
            seconds=time.perf_counter() - begin,
        )  # fmt: skip
        self.rank_one = "holds"

    def finish(self) -> None:
        """The comparisons accumulated over blocks: every tally, formula 1, the probes."""
        begin = time.perf_counter()
        self.comparisons = [tally.comparison() for tally in self.tallies.values()]
        hand = self.inputs_gradient
        assert hand is not None
        reference = self.autograd_inputs
        if reference is not None:
            self.comparisons += compare(
                "autograd", "inputs", "reverse mode", np.asarray(hand.value)[None],
                np.asarray(reference.value)[None], (hand.error + reference.error)[None],
                time.perf_counter() - begin,
            )  # fmt: skip
        self.comparisons += self.differences.comparisons(hand, begin)

    # -- the verdict -------------------------------------------------------------------------

    def verdict(self) -> CheckResult:
        seconds = dict(self.clock.seconds)
        seconds["total"] = sum(seconds.values())
        coupling = None
        if self.mass is not None and self.mass > 0.0:
            coupling = (
                f"; {self.mass:.1%} of the gradient of a random half of the units reaches the "
                "other units' parameters"
            )
        blocks = -(-self.theta.shape[0] // self.plan.block_units)
        return case_verdict(
            self.summary, tuple(self.comparisons), seconds,
            invalid=self.invalid, non_differentiable=self.non_differentiable,
            coupling=coupling, mass=self.mass, rank_one=self.rank_one,
            checked_in=f"; checked in {blocks} blocks of {self.plan.block_units} units",
            diagnose=self.diagnose,
        )  # fmt: skip

    def diagnose(self) -> Diagnosis | None:
        """The diagnosis of a mismatch, gathered on `DIAGNOSIS_UNITS` units around the worst
        failing entry's unit: the units of a layer checked here are independent, so the
        sub-case has the same rules and the same bug, at the stacked path's cost (its
        evidence needs per-example Jacobians). None where the sub-case does not fail, or
        the layer's units also read their own inputs (square layers)."""
        if self.layer.square:
            return None
        failing = sorted(
            (c for c in self.comparisons if not c.passed), key=lambda c: -c.worst_ratio
        )
        unit = next((c.worst_entry["unit"] for c in failing if "unit" in c.worst_entry), 0)
        first = max(min(unit - DIAGNOSIS_UNITS // 2, self.theta.shape[0] - DIAGNOSIS_UNITS), 0)
        units = slice(first, first + DIAGNOSIS_UNITS)
        options = Options(self.oracles, "auto", LARGE_PROBES, "report")
        batch = Batch(
            self.layer, self.phi, self.z[None], self.theta[None, units], self.delta[None, :, units]
        )
        (result,) = batch.check(options)
        return result.diagnosis if result.verdict is Verdict.MISMATCH else None
