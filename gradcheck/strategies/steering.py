"""`assert_gradients_correct`: check cases inside a hypothesis test and steer its search.

Apart from the strategies because it runs checks rather than drawing: it reports to
hypothesis (event, target, note) and raises GradientMismatch with a reproduction.
"""

from __future__ import annotations

from typing import Any

from hypothesis import currently_in_test_context, event, note, target

from gradcheck.catalogue.checker import Case, CheckResult, Verdict, check_many
from gradcheck.catalogue.reproduce import reproduction
from gradcheck.errors import GradientMismatch


def assert_gradients_correct(*cases: Case, **options: Any) -> list[CheckResult]:
    """Check cases inside a hypothesis test, and steer the search.

    Records an event() per layer type and activation, target()s the largest error/bound
    ratio so that hypothesis hunts for the worst case, note()s each failing case's
    comparisons, and raises GradientMismatch (an AssertionError) on the first mismatch
    with the message and a reproduction snippet. Options go to `check_many`.
    """
    results = check_many(cases, **options)
    if not currently_in_test_context():
        for case, result in zip(cases, results, strict=True):
            if result.verdict is Verdict.MISMATCH:
                snippet = reproduction(case, result.diagnosis)
                raise GradientMismatch(result, case=case, reproduction=snippet)
        return results
    worst = 0.0
    for result in results:
        summary = result.case
        if summary is not None:
            event(f"{summary.layer_type} / {summary.activation} / {summary.dtype}")
        event(f"verdict: {result.verdict}")
        if result.verdict is Verdict.PASS and result.comparisons:
            worst = max(worst, max(c.worst_ratio for c in result.comparisons))
    target(worst, label="largest error / bound")
    for case, result in zip(cases, results, strict=True):
        if result.verdict is Verdict.MISMATCH:
            snippet = reproduction(case, result.diagnosis)
            for comparison in result.failures():
                note(
                    f"{comparison.oracle} on {comparison.target}: {comparison.worst_entry} "
                    f"hand-written {comparison.hand_written!r}, reference "
                    f"{comparison.reference!r}, error/bound {comparison.worst_ratio:.3g}"
                )
            raise GradientMismatch(result, case=case, reproduction=snippet)
    return results
