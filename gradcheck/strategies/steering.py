"""`assert_gradients_correct` and `steer`: check cases inside a hypothesis test and steer its
search.

Apart from the strategies because it runs checks rather than drawing: it reports to
hypothesis (event, target, note) and raises GradientMismatch with a reproduction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import currently_in_test_context, event, note, target

from gradcheck.catalogue.checker import Case, CheckResult, Verdict, check_many
from gradcheck.catalogue.reproduce import reproduction
from gradcheck.errors import GradientMismatch


def assert_gradients_correct(*cases: Case, **options: Any) -> list[CheckResult]:
    """Check cases inside a hypothesis test, and steer the search.

    Records an event() per layer type and activation, `steer`s the search towards the
    worst case, note()s each failing case's
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
    steer(cases, results)
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


def steer(stack: Sequence[Case], results: Sequence[CheckResult]) -> None:
    """Point the search at the cases nearest a false alarm or a missed bug: hypothesis
    climbs towards the stack's largest error/bound ratio among passing cases, and towards
    the octave (log2) of its largest |z|, |θ| and |pre-activation| (the activation's
    argument, where a row's e^±x overflows), where overflow and cancellation live."""
    ratios = [
        comparison.worst_ratio
        for result in results
        if result.verdict is Verdict.PASS
        for comparison in result.comparisons
        if math.isfinite(comparison.worst_ratio)
    ]
    target(max(ratios, default=0.0), label="largest error / bound")
    largest = {"z": 0.0, "θ": 0.0, "pre-activation": 0.0}
    for case in stack:
        arrays = {"z": case.z, "θ": case.theta}
        if case.layer_type.preactivation is not None and case.layer_type.uses_activation:
            arrays["pre-activation"] = case.layer_type.preactivation(case.z, case.theta)
        for name, array in arrays.items():
            magnitude = float(np.max(np.abs(array), initial=0.0))
            if math.isfinite(magnitude):
                largest[name] = max(largest[name], magnitude)
    for name, magnitude in largest.items():
        octave = math.log2(magnitude) if magnitude > 0.0 else -1100.0  # below any float
        target(octave, label=f"octave of max |{name}|")
