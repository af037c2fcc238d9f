"""One case in, one CheckResult out.

`check(case)` evaluates a layer type's hand-written unit Jacobian B and input Jacobian in
the case's dtype, forms the compact gradient A = Σ_n diag(δ_n) B_n (formula 2) and the
input gradient δ_in = δ · ∂f/∂z (formula 1), and holds both against the oracles:

- dense: the same A through the J × JP block-diagonal product (explicit, or block by block), and,
  for rank-one layers, through the seed's outer product (δ ⊙ u) vᵀ;
- autograd: ∂E/∂θ and ∂E/∂z by reverse mode in float64, and the whole Jacobian's
  unit-to-unit blocks, which measure the block-diagonal precondition;
- finite-differences: central differences with Richardson extrapolation in float64.

Each entry must lie within the bound of `gradcheck.core.tolerance`. The verdict is the first
that applies of: invalid-input (bad arrays, a forward that is not finite, hand-written
code that raises or returns the wrong shape), non-differentiable (a kink, tie or
singularity within the finite-difference step or the rounding error), mismatch of the
input gradient, coupled (the layer breaks the block-diagonal precondition, declared or
measured), mismatch of the parameter gradient, pass.

This module is the front door: `check`, `check_many` and `check_large` validate their
arguments and send each case down one of two paths, the stacked path
(`gradcheck.catalogue.stacked`: many small cases of one shape in one vectorised pass) or
the large-layer path (`gradcheck.catalogue.large`: one big unit-partitioned layer, block
by block of units, in O(n) memory). Neither path imports this module, and `check_large`
lives here because it falls back to the stacked path for a layer declared coupled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gradcheck.catalogue import large
from gradcheck.catalogue.activations import resolve_activation
from gradcheck.catalogue.cases import Case, check_options, validated
from gradcheck.catalogue.layers import identity_if_unused, resolve_layer_type
from gradcheck.catalogue.stacked import Batch
from gradcheck.core.comparison import SUPPORTED_DTYPES, CaseError
from gradcheck.core.results import ORACLES, CaseSummary, CheckResult, Comparison, Verdict
from gradcheck.errors import GradcheckError

# Case, CheckResult, Comparison and Verdict are defined in cases.py and core/results.py;
# they are re-exported here because `gradcheck.check`'s users meet them together.
__all__ = [
    "ORACLES",
    "SUPPORTED_DTYPES",
    "Case",
    "CaseSummary",
    "CheckResult",
    "Comparison",
    "Verdict",
    "check",
    "check_large",
    "check_many",
]

#: Cases of one layer type, activation, dtype and shape are checked this many at a time.
BATCH_SIZE = 64


def check(
    case: Case,
    *,
    oracles: Sequence[str] = ORACLES,
    finite_differences: str = "auto",
    probes: int = 16,
    kinks: str = "report",
) -> CheckResult:
    """Check one case's hand-written gradients against the oracles.

    oracles: any of "dense", "autograd", "finite-differences".
    finite_differences: "auto", "full", "columns" or "probes" (see gradcheck.core.oracles).
    probes: how many random directions the "probes" layout uses.
    kinks: "report" gives a case at a kink the verdict non-differentiable; "subgradient"
    checks instead that the hand-written derivatives lie between the one-sided
    differences there (a subgradient check).
    Unknown names raise `UnknownNameError`; everything wrong with the case itself comes
    back as an invalid-input verdict whose message names the array and the problem.
    """
    if not isinstance(case, Case):
        raise GradcheckError(
            f"check takes a gradcheck.Case, got {type(case).__name__}: {case!r:.80}"
        )
    return check_many(
        [case], oracles=oracles, finite_differences=finite_differences, probes=probes, kinks=kinks
    )[0]


def check_many(
    cases: Sequence[Case],
    *,
    oracles: Sequence[str] = ORACLES,
    finite_differences: str = "auto",
    probes: int = 16,
    kinks: str = "report",
) -> list[CheckResult]:
    """Check many cases, in order; the same as `check` on each, but cases that share a
    layer type, activation, dtype and shape are stacked and checked in one vectorised pass."""
    options = check_options(oracles, finite_differences, probes, kinks)
    if isinstance(cases, Case) or not isinstance(cases, Sequence):
        raise GradcheckError(f"check_many takes a sequence of gradcheck.Case, got {cases!r:.80}")
    for case in cases:
        if not isinstance(case, Case):
            raise GradcheckError(
                f"expected a gradcheck.Case, got {type(case).__name__}: {case!r:.80}"
            )
    results: list[CheckResult | None] = [None] * len(cases)
    groups: dict[tuple[Any, ...], list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]] = {}
    for index, case in enumerate(cases):
        layer = resolve_layer_type(case.layer_type)
        phi = identity_if_unused(layer, resolve_activation(case.activation))
        try:
            z, theta, delta = validated(case, layer)
        except CaseError as problem:
            results[index] = CheckResult(Verdict.INVALID_INPUT, f"invalid input: {problem}", None)
            continue
        if large.applies(layer, theta.size):  # big layers: block by block, O(n) memory
            results[index] = large.check_validated(layer, phi, z, theta, delta, options)
            continue
        key = (layer, phi, z.dtype, z.shape, theta.shape)
        groups.setdefault(key, []).append((index, z, theta, delta))
    for (layer, phi, *_), members in groups.items():
        for start in range(0, len(members), BATCH_SIZE):
            chunk = members[start : start + BATCH_SIZE]
            stacked = (np.stack([member[k] for member in chunk]) for k in (1, 2, 3))
            batch = Batch(layer, phi, *stacked)
            for (index, *_), result in zip(chunk, batch.check(options), strict=True):
                results[index] = result
    return [result for result in results if result is not None]


def check_large(
    case: Case,
    *,
    oracles: Sequence[str] = ORACLES,
    finite_differences: str = "auto",
    probes: int | None = None,
    block_units: int | None = None,
    seed: int = 0,
) -> CheckResult:
    """Check one case block by block, whatever its size (see `gradcheck.catalogue.large`).

    `check` sends layers with more than `large.LARGE_PARAMETERS` parameters there; calling
    this directly runs the same path on a layer of any size, with the block size and the
    number of probes (default `large.LARGE_PROBES`) given explicitly.
    """
    options = check_options(oracles, finite_differences, probes or 1, "report")
    layer = resolve_layer_type(case.layer_type)
    if layer.coupled:  # per-block forwards would change a coupled layer: the stacked path
        return check(case, oracles=oracles, finite_differences=finite_differences)
    phi = identity_if_unused(layer, resolve_activation(case.activation))
    try:
        z, theta, delta = validated(case, layer)
    except CaseError as problem:
        return CheckResult(Verdict.INVALID_INPUT, f"invalid input: {problem}", None)
    plan = large.make_plan(
        batch=z.shape[0], inputs=z.shape[1], units=theta.shape[0], parameters=theta.shape[1],
        finite_differences=options.finite_differences, probes=probes,
        block_units=theta.shape[0] if layer.square else block_units, seed=seed,
    )  # fmt: skip
    return large.LargeCheck(layer, phi, z, theta, delta, plan, options.oracles).run()
