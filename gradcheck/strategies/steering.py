"""`assert_gradients_correct`: check cases inside a hypothesis test.

Apart from the strategies because it runs checks rather than drawing: it reports to
hypothesis (event, note) and raises GradientMismatch with a reproduction.

It calls no `target()`: hypothesis's optimiser hill-climbs a bytes choice as one
big-endian integer moved by at most 2**20, and a case is one blob of bytes (see
`gradcheck.strategies.layer_cases`), so the target phase could only change the blob's
last three bytes (δ's grid, mostly outside the drawn corner) and re-ran one case for the
second half of the budget: 50 distinct cases in 100 examples. With targets on the
error/bound ratio and the octaves of |z|, |θ| and the pre-activation, rows whose φ'
overflows (tests/catalogue_instability.py) were caught on 19 seeds in 20; without, on 20.
"""

from __future__ import annotations

from typing import Any

from hypothesis import currently_in_test_context, event, note

from gradcheck.catalogue.checker import Case, CheckResult, Verdict, check_many
from gradcheck.catalogue.reproduce import reproduction
from gradcheck.errors import GradientMismatch


def assert_gradients_correct(*cases: Case, **options: Any) -> list[CheckResult]:
    """Check cases inside a hypothesis test.

    Records an event() per layer type and activation, note()s each failing case's
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
    for result in results:
        summary = result.case
        if summary is not None:
            event(f"{summary.layer_type} / {summary.activation} / {summary.dtype}")
        event(f"verdict: {result.verdict}")
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
