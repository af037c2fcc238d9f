"""The verdict of one catalogue case, the same for the stacked and the large-layer path.

The first that applies of: invalid-input, non-differentiable, mismatch of the input
gradient (formula 1 holds for every layer, so its failures come first, coupled or not),
coupled (the layer breaks the block-diagonal precondition, declared or measured; its A
is then not the gradient, so a parameter mismatch is expected and not reported),
mismatch of the parameter gradient, pass. The two paths differ only in words: how the
coupling was measured, and what a pass adds (a kink within the one-sided differences;
the blocks it was checked in).

This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gradcheck.core.comparison import closest_detail, mismatch_message
from gradcheck.core.results import CaseSummary, CheckResult, Comparison, Verdict
from gradcheck.diagnosis.classes import Diagnosis


def case_verdict(
    summary: CaseSummary,
    comparisons: tuple[Comparison, ...],
    seconds: Mapping[str, float],
    *,
    invalid: str | None,
    non_differentiable: str | None,
    coupling: str | None,
    mass: float | None,
    rank_one: str,
    diagnose: Callable[[], Diagnosis | None] = lambda: None,
    at_kink: bool = False,
    checked_in: str = "",
) -> CheckResult:
    """One case's CheckResult.

    coupling: None for a layer found unit-partitioned, else what the coupled message adds
    after the precondition (how much crosses units; may be empty). rank_one: "holds" when
    the rank-one form was compared ("fails" follows from its comparison), else "not
    applicable". diagnose() names the likely bug of a mismatch. at_kink and checked_in
    add to a pass message.
    """
    if invalid is not None:
        return CheckResult(
            Verdict.INVALID_INPUT, f"invalid input: {invalid}", summary, seconds=seconds
        )
    if non_differentiable is not None:
        return CheckResult(Verdict.NON_DIFFERENTIABLE, non_differentiable, summary, seconds=seconds)
    if rank_one == "holds" and any(
        c.method == "rank-one outer product" and not c.passed for c in comparisons
    ):
        rank_one = "fails"

    def result(verdict: Verdict, message: str, diagnosis: Diagnosis | None = None) -> CheckResult:
        return CheckResult(
            verdict, message, summary, comparisons, mass, rank_one, seconds, diagnosis
        )

    failures = sorted(
        (c for c in comparisons if not c.passed),
        key=lambda c: (c.target != "inputs", -c.worst_ratio),
    )
    if failures and (failures[0].target == "inputs" or coupling is None):
        diagnosis = diagnose()
        return result(Verdict.MISMATCH, mismatch_message(failures[0], diagnosis), diagnosis)
    if coupling is not None:
        return result(
            Verdict.COUPLED,
            f"coupled: {summary.layer_type} breaks the block-diagonal precondition (output j "
            f"depends on other units' parameters){coupling}, so the compact form A = δ ⊙ B "
            "is not the parameter gradient",
        )
    kink = " at a kink, within the one-sided differences" if at_kink else ""
    detail = closest_detail(comparisons)
    return result(
        Verdict.PASS, f"pass{kink}: {len(comparisons)} comparisons agree{detail}{checked_in}"
    )
