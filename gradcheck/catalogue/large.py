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

**Probes.** Along w = s ⊙ h (s random signs, h the step of each entry), a central
difference of E at ±w and ±2w, extrapolated, estimates ⟨∇E, w⟩ within the bound
|D(w) - D(2w)| + rounding/step of `oracles`; the hand-written side is ⟨A, w'⟩ over the
steps w' actually taken, with bound Σ |w'| (e_A + γ|A|). For an error vector e = A - ∇E,
⟨e, w⟩ = Σ s_i e_i h_i. Fix every sign but that of the largest term e_m h_m: of the two
values s_m = ±1, at least one gives |⟨e, w⟩| ≥ |e_m h_m|. So each probe exceeds the largest
weighted error with probability at least 1/2, and K independent probes all miss it with
probability at most 2^-K; a single wrong entry is met with certainty (its sign does not
matter). `LARGE_PROBES` = 6 gives at most 1/64 for any error pattern whose largest entry
exceeds the bound, at 4 evaluations of the layer per probe. The per-entry guarantee comes
from autograd, which compares every entry of A and δ_in.

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
units with inputs by position.
This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.catalogue.activations import Activation, resolve_activation
from gradcheck.catalogue.blockwise import (
    Tally,
    accumulate,
    probe_comparison,
    projections,
    reverse_mode,
    shifted,
    signed_steps,
)
from gradcheck.catalogue.cases import Case, call_hand_written, check_options, validated
from gradcheck.catalogue.layers import LayerType, identity_if_unused, resolve_layer_type
from gradcheck.core import compact, oracles, tolerance
from gradcheck.core.comparison import CaseError, closest_detail, compare, mismatch_message
from gradcheck.core.results import ORACLES, CaseSummary, CheckResult, Comparison, Verdict
from gradcheck.core.tolerance import Tracked, track

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
#: Probes of θ, and of z, under "auto" (see the module docstring: a miss rate of 2^-6).
LARGE_PROBES = 6


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


def check_large(
    case: Case,
    *,
    oracles: Sequence[str] = ORACLES,
    finite_differences: str = "auto",
    probes: int | None = None,
    block_units: int | None = None,
    seed: int = 0,
) -> CheckResult:
    """Check one case block by block, whatever its size (see the module docstring).

    `check` sends layers with more than LARGE_PARAMETERS parameters here; calling this
    directly runs the same path on a layer of any size, with the block size and the
    number of probes (default LARGE_PROBES) given explicitly.
    """
    options = check_options(oracles, finite_differences, probes or 1, "report")
    layer = resolve_layer_type(case.layer_type)
    if layer.coupled:  # per-block forwards would change a coupled layer: the stacked path
        from gradcheck.catalogue.checker import check

        return check(case, oracles=oracles, finite_differences=finite_differences)
    phi = identity_if_unused(layer, resolve_activation(case.activation))
    try:
        z, theta, delta = validated(case, layer)
    except CaseError as problem:
        return CheckResult(Verdict.INVALID_INPUT, f"invalid input: {problem}", None)
    plan = make_plan(
        batch=z.shape[0], inputs=z.shape[1], units=theta.shape[0], parameters=theta.shape[1],
        finite_differences=options.finite_differences, probes=probes,
        block_units=theta.shape[0] if layer.square else block_units, seed=seed,
    )  # fmt: skip
    return _LargeCheck(layer, phi, z, theta, delta, plan, options.oracles).run()


def check_validated(
    layer: LayerType,
    phi: Activation,
    z: np.ndarray,
    theta: np.ndarray,
    delta: np.ndarray,
    options: Any,
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
    return _LargeCheck(layer, phi, z, theta, delta, plan, options.oracles).run()


# ---- comparisons made block by block -----------------------------------------------------


# ---- the check -------------------------------------------------------------------------------


class _LargeCheck:
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
        self.seconds: dict[str, float] = {}
        self.tallies: dict[tuple[str, str, str], Tally] = {}
        self.comparisons: list[Comparison] = []
        self.invalid: str | None = None
        self.non_differentiable: str | None = None
        self.mass: float | None = None
        self.rank_one = "not applicable"
        # Accumulated over blocks: formula 1 and its references, and the probes' sums.
        self.inputs_gradient: Tracked | None = None
        self.autograd_inputs: Tracked | None = None
        self.column_inputs: Tracked | None = None
        self.energies: Tracked | None = None  # (4, K): E at θ ± w_k, θ ± 2w_k
        self.projections: Tracked | None = None  # (4, K): ⟨A, steps taken⟩
        self.input_energies: Tracked | None = None  # (4, K): E at z ± v_k, z ± 2v_k
        self.input_variants: np.ndarray | None = None  # (4, K, N, I): z ± v_k, z ± 2v_k
        self.input_directions: np.ndarray | None = None  # (4, K, N, I): steps taken in z

    def forward(self, z: Any, theta: Any) -> Any:
        return self.layer.forward(z, theta, self.phi)

    def timed(self, stage: str, function: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return function()
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start

    def tally(self, oracle: str, target: str, kind: str = "") -> Tally:
        """The tally of one comparison; kind separates two of one oracle and target."""
        return self.tallies.setdefault((oracle, target, kind), Tally(oracle, target))

    # -- driving ---------------------------------------------------------------------------

    def run(self) -> CheckResult:
        try:
            if "autograd" in self.oracles:
                self.timed("structure", self.structure)
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
                outputs, d_theta, d_z = self.timed(
                    "autograd", lambda: reverse_mode(self.forward, self.z64, theta64, delta64)
                )
                self.autograd_inputs = accumulate(self.autograd_inputs, d_z)
            else:
                outputs = self.timed(
                    "forward", lambda: self.forward(track(self.z64), track(theta64))
                )
            self.timed("forward", lambda: self.kinks(theta64, start))
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
        unit_jacobian, gradient = self.timed(
            "hand-written", lambda: self.hand_written(theta, delta, start)
        )
        if self.invalid is not None or self.non_differentiable is not None:
            return
        if "dense" in self.oracles:
            self.timed("dense", lambda: self.dense(gradient, unit_jacobian, theta, delta, start))
        if d_theta is not None:
            begin = time.perf_counter()
            self.tally("autograd", "parameters").add(
                "reverse mode", gradient.value, d_theta.value, gradient.error + d_theta.error,
                offset=start, seconds=time.perf_counter() - begin,
            )  # fmt: skip
        if "finite-differences" in self.oracles:
            with np.errstate(all="ignore"):
                self.timed(
                    "finite-differences",
                    lambda: self.differences(gradient, theta64, delta64, outputs, start),
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
    ) -> tuple[Tracked, Tracked]:
        """B_b, A_b and the block's share of δ_in in the case's dtype, with error bounds."""
        batch, inputs = self.z.shape
        units, parameters = theta.shape
        layer, phi = self.layer, self.phi
        z, theta_t, delta_t = track(self.z), track(theta), track(delta)
        compaction = layer.parameter_gradient or compact.compact_gradient
        with tolerance.recording() as events:
            unit_jacobian = call_hand_written(
                self.layer,
                "unit_jacobian",
                lambda: layer.unit_jacobian(z, theta_t, phi),
                (batch, units, parameters),
            )
            input_jacobian = call_hand_written(
                self.layer,
                "input_jacobian",
                lambda: layer.input_jacobian(z, theta_t, phi),
                (batch, units, inputs),
            )
            gradient = call_hand_written(
                self.layer,
                "parameter_gradient",
                lambda: compaction(delta_t, unit_jacobian),
                (units, parameters),
            )
            share = compact.input_gradient(delta_t, input_jacobian)
        self.mark_events(events, start)
        self.inputs_gradient = accumulate(self.inputs_gradient, share)
        return unit_jacobian, gradient

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
        u, v = self.layer.rank_one(self.z, theta, self.phi)
        outer = compact.rank_one_gradient(delta, u, v)
        magnitude = np.abs(delta * u).astype(np.float64).T @ np.abs(v)
        bound = 2.0 * tolerance.gamma(delta.shape[0] + 2, self.z.dtype) * magnitude
        self.tally("dense", "parameters", "rank-one").add(
            "rank-one outer product", gradient.value, outer, bound, offset=start,
            seconds=time.perf_counter() - begin,
        )  # fmt: skip
        self.rank_one = "holds"

    # -- finite differences ------------------------------------------------------------------

    def differences(
        self,
        gradient: Tracked,
        theta64: np.ndarray,
        delta64: np.ndarray,
        outputs: Tracked,
        start: int,
    ) -> None:
        forward_error = np.asarray(outputs.error)
        arguments = (self.forward, self.z64[None], theta64[None], delta64[None])
        if self.plan.layout == "columns":
            begin = time.perf_counter()
            reference = oracles.parameter_differences(
                *arguments, forward_error[None], layout="columns"
            )
            self.tally("finite-differences", "parameters").add(
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
            oracles._energy_rounding(delta64, np.asarray(outputs.value), forward_error, (0, 1))
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
        rng = np.random.default_rng([self.plan.seed, 2, start])
        directions = signed_steps(rng, self.plan.probes, theta64)
        variants = shifted(theta64, directions)
        outputs = np.asarray(self.forward(self.z64, variants.reshape((-1,) + theta64.shape)))
        del variants
        values = np.einsum("vnj,nj->v", outputs, delta64).reshape(4, self.plan.probes)
        del outputs
        self.energies = accumulate(self.energies, Tracked(values, np.full(values.shape, rounding)))
        projected = projections(directions, gradient, theta64)
        self.projections = accumulate(self.projections, projected)

    def probe_inputs(self, theta64: np.ndarray, delta64: np.ndarray, rounding: float) -> None:
        """This block's share of E at z ± v_k, z ± 2v_k (the same v_k for every block)."""
        if self.input_directions is None:
            rng = np.random.default_rng([self.plan.seed, 3])
            self.input_directions = signed_steps(rng, self.plan.probes, self.z64)
            self.input_variants = shifted(self.z64, self.input_directions)
        variants = self.input_variants
        assert variants is not None
        outputs = np.asarray(self.forward(variants.reshape((-1,) + self.z64.shape), theta64))
        values = np.einsum("vnj,nj->v", outputs, delta64).reshape(variants.shape[:2])
        self.input_energies = accumulate(
            self.input_energies, Tracked(values, np.full(values.shape, rounding))
        )

    def finish(self) -> None:
        """The comparisons accumulated over blocks: every tally, formula 1, the probes."""
        begin = time.perf_counter()
        self.comparisons = [tally.comparison() for tally in self.tallies.values()]
        hand = self.inputs_gradient
        assert hand is not None
        for oracle, reference, method in (
            ("autograd", self.autograd_inputs, "reverse mode"),
            ("finite-differences", self.column_inputs, "finite differences (columns)"),
        ):
            if reference is not None:
                self.comparisons += compare(
                    oracle, "inputs", method, np.asarray(hand.value)[None],
                    np.asarray(reference.value)[None], (hand.error + reference.error)[None],
                    time.perf_counter() - begin,
                )  # fmt: skip
        count = self.plan.probes
        if self.energies is not None and self.projections is not None:
            self.comparisons.append(
                probe_comparison("parameters", self.energies, self.projections, count)
            )
        if self.input_energies is not None and self.input_directions is not None:
            projected = projections(self.input_directions, hand, self.z64)
            self.comparisons.append(
                probe_comparison("inputs", self.input_energies, projected, count)
            )

    # -- the verdict -------------------------------------------------------------------------

    def verdict(self) -> CheckResult:
        seconds = dict(self.seconds)
        seconds["total"] = sum(seconds.values())
        comparisons = tuple(self.comparisons)
        rank_one = self.rank_one
        if rank_one == "holds" and any(
            c.method == "rank-one outer product" and not c.passed for c in comparisons
        ):
            rank_one = "fails"

        def result(verdict: Verdict, message: str) -> CheckResult:
            return CheckResult(
                verdict, message, self.summary, comparisons, self.mass, rank_one, seconds
            )

        if self.invalid is not None:
            return CheckResult(
                Verdict.INVALID_INPUT, f"invalid input: {self.invalid}", self.summary,
                seconds=seconds,
            )  # fmt: skip
        if self.non_differentiable is not None:
            return CheckResult(
                Verdict.NON_DIFFERENTIABLE, self.non_differentiable, self.summary,
                seconds=seconds,
            )  # fmt: skip
        failures = sorted(
            (c for c in comparisons if not c.passed),
            key=lambda c: (c.target != "inputs", -c.worst_ratio),
        )
        if failures and failures[0].target == "inputs":
            return result(Verdict.MISMATCH, mismatch_message(failures[0]))
        if self.mass is not None and self.mass > 0.0:
            return result(
                Verdict.COUPLED,
                f"coupled: {self.layer.name} breaks the block-diagonal precondition (output j "
                f"depends on other units' parameters); {self.mass:.1%} of the gradient of a "
                "random half of the units reaches the other units' parameters, so the "
                "compact form A = δ ⊙ B is not the parameter gradient",
            )
        if failures:
            return result(Verdict.MISMATCH, mismatch_message(failures[0]))
        detail = closest_detail(comparisons)
        blocks = -(-self.theta.shape[0] // self.plan.block_units)
        return result(
            Verdict.PASS,
            f"pass: {len(comparisons)} comparisons agree{detail}; checked in {blocks} "
            f"blocks of {self.plan.block_units} units",
        )
