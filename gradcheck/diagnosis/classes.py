"""Explaining a mismatch: which kind of gradient bug the evidence points to, decided once.

Every gradient checker says "mismatch"; this module says what is wrong. `decide` reads
the failing case the user is shown and the further draws that fail too (a user's layer:
random draws `gradcheck.user.run` makes from a fixed seed, which the reproduction snippet
makes again; a catalogue case: the same case with its batch stacked twice, see
`gradcheck.diagnosis.catalogue`), and returns the first class, in the order of
`CLASSES`, that no draw contradicts and at least one draw shows:

| class                       | decided by (`gradcheck.diagnosis.patterns`)                     |
|-----------------------------|-----------------------------------------------------------------|
| non-finite                  | the shown case: g is NaN or ±inf where r is finite              |
| coupling-ignored            | every wrong argument with a coupled Jacobian equals r with the  |
|                             | cross-unit (cross-entry) terms dropped: δ ⊙ B of the diagonal   |
|                             | blocks, or only the diagonal of a softmax-like Jacobian kept    |
| transpose                   | every wrong argument equals its transposition candidate (rᵀ of a|
|                             | square parameter; for an input, the product with the per-example|
|                             | Jacobian instead of its transpose)                              |
| sign                        | on every entry where g and r differ, g = -r                     |
| batch-mean-vs-sum           | every wrong part is g = r / N (or N r) on ALL its entries, N the|
|                             | argument's batch size in each draw: the factor follows N        |
| scale-constant              | one c fits g = c r on ALL entries of every wrong part in every  |
|                             | draw, c r told apart from 0 (c = -4e-17 is a zero, not a factor)|
| bias-only                   | every entry that differs belongs to a bias (the catalogue's bias|
|                             | columns; a user's 1-D parameter named as one, not a scale γ)    |
| input-gradient-only         | only input gradients differ; the parameters' are right          |
| wrong-activation-derivative | the backward is linear in dout and each Jacobian row is the     |
|                             | reference row times its own factor, not one factor for all      |
|                             | (a row whose reference is 0, φ' = 0, cannot contradict it)      |
| missing-term                | every wrong argument is 0 where r is not, or per row (or per    |
|                             | column, the same axis in every draw) its error is a + b · its   |
|                             | own values: the intercept is a dropped mean, b a dropped norm   |
| precision                   | the error is within PRECISION_FACTOR of its bound, or (float64) |
|                             | of what float32 arithmetic would give                           |
| unknown                     | anything else                                                   |

A part is what a factor must fit whole: an argument, or its bias and its other entries
apart (the catalogue's θ: each column, one kind of parameter). A draw is informative
for a class when it shows the pattern, not merely fails to contradict it: one entry fits
any constant factor, two entries any line a + b · x, and errors within PRECISION_FACTOR
of their bound show no pattern at all, so such draws only must not contradict.

The order is the design's (/work/shared/DESIGN.md), with one reading made explicit: every
class from coupling-ignored to missing-term needs a draw whose error exceeds
PRECISION_FACTOR times its bound. By the table's letter precision came last, so a correct
formula evaluated in float32 (error three times the bound) was claimed by
wrong-activation-derivative, whose row factors fit any small perturbation; now such a
failure shows no logic pattern and is precision. The tests of neighbouring classes
exclude each other where the table's order alone would not: a constant factor must fit
every entry (a mask taken from the output is a factor on some entries and 1 on the
rest: wrong-activation-derivative), a batch factor must follow N (a factor 2 at N = 2
and 2 again at N = 3 is scale-constant), a constant c must be told apart from 0.

The decision is made once, here, and the message, the report and
`GradientMismatch.diagnosis` all show this one `Diagnosis`; its evidence is quoted from
the shown case when that case shows the pattern, and otherwise from a draw that is then
shown as a case too. This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from gradcheck.diagnosis import patterns
from gradcheck.diagnosis.evidence import (
    SILENT,
    ArgumentEvidence,
    Diagnosis,
    Evidence,
    Finding,
    JacobianEvidence,
)
from gradcheck.diagnosis.names import CLASSES
from gradcheck.diagnosis.patterns import PRECISION_FACTOR

__all__ = [
    "CLASSES",
    "PRECISION_FACTOR",
    "ArgumentEvidence",
    "Diagnosis",
    "Evidence",
    "JacobianEvidence",
    "decide",
    "diagnose",
]

#: How many further draws a message shows as cases.
SHOWN_DRAWS = 3

Test = Callable[[Evidence, Any], "Finding | None"]


def _once(test: Callable[[Evidence], Finding | None]) -> Test:
    return lambda evidence, _: test(evidence)


def _no_parameter(draws: Sequence[Evidence]) -> Iterable[Any]:
    return (None,)


def _exponents(draws: Sequence[Evidence]) -> Iterable[Any]:
    return (-1.0, 1.0)


def _axes(draws: Sequence[Evidence]) -> Iterable[Any]:
    return (1, 0)


def _scale_candidates(draws: Sequence[Evidence]) -> Iterable[Any]:
    """The least-squares factor of each draw, the largest draw first."""
    ordered = sorted(draws, key=lambda e: -sum(a.hand_written.size for a in e.arguments))
    seen: list[float] = []
    for evidence in ordered:
        factor = patterns.scale_factor(evidence) if _readable(evidence) else None
        if factor is not None and all(abs(factor - c) > 1e-9 * abs(c) for c in seen):
            seen.append(factor)
            yield factor


#: The classes from coupling-ignored to missing-term, in order: each with the parameters
#: its test is tried with (a factor, an exponent of N) and the test.
_LOGIC: tuple[tuple[str, Callable[[Sequence[Evidence]], Iterable[Any]], Test], ...] = (
    ("coupling-ignored", _no_parameter, _once(patterns.coupling_ignored)),
    ("transpose", _no_parameter, _once(patterns.transpose)),
    ("sign", _no_parameter, _once(patterns.sign)),
    ("batch-mean-vs-sum", _exponents, patterns.batch_mean),
    ("scale-constant", _scale_candidates, patterns.scale_constant),
    ("bias-only", _no_parameter, _once(patterns.bias_only)),
    ("input-gradient-only", _no_parameter, _once(patterns.input_gradient_only)),
    ("wrong-activation-derivative", _no_parameter, _once(patterns.wrong_activation_derivative)),
    ("missing-term", _axes, patterns.missing_term),
)
assert ("non-finite", *(kind for kind, _, _ in _LOGIC), "precision", "unknown") == CLASSES


def _readable(evidence: Evidence) -> bool:
    """Whether a logic pattern can be read off this draw: its errors exceed rounding, and
    its gradients are finite (a NaN shows no factor)."""
    finite = all(np.all(np.isfinite(a.hand_written)) for a in evidence.arguments)
    return finite and evidence.ratio() > PRECISION_FACTOR


def _findings(draws: Sequence[Evidence], test: Test, parameter: Any) -> list[Finding] | None:
    findings = []
    for evidence in draws:
        found = test(evidence, parameter) if _readable(evidence) else SILENT
        if found is None:
            return None
        findings.append(found)
    return findings


def decide(shown: Evidence, draws: Sequence[Evidence] = ()) -> Diagnosis:
    """The one diagnosis of a failure: the first class in `CLASSES` that no failing draw
    (the shown case first, then the further draws) contradicts and one of them shows."""
    everything = (shown, *draws)
    found = patterns.non_finite(shown)
    if found.informative:
        return _diagnosis("non-finite", [found, *(SILENT for _ in draws)], everything)
    for kind, parameters, test in _LOGIC:
        for parameter in parameters(everything):
            findings = _findings(everything, test, parameter)
            if findings is not None and any(f.informative for f in findings):
                return _diagnosis(kind, findings, everything)
    rounding = [patterns.precision(evidence) for evidence in everything]
    if all(f is not None for f in rounding):
        return _diagnosis("precision", rounding, everything)  # type: ignore[arg-type]
    wrong = ", ".join(f"∂E/∂{a.name}" for a in shown.arguments if a.wrong) or "nothing"
    return Diagnosis("unknown", f"{wrong} differs in no pattern gradcheck recognises")


def diagnose(evidence: Evidence) -> Diagnosis:
    """The diagnosis of one failing case on its own (the catalogue's)."""
    return decide(evidence)


def _diagnosis(kind: str, findings: list[Finding], draws: Sequence[Evidence]) -> Diagnosis:
    """The Diagnosis of a decided class: the evidence as the shown case shows it, or as
    the first draw that shows it (then shown as a case), and how many draws agree."""
    quoted = (
        0 if findings[0].informative else next(i for i, f in enumerate(findings) if f.informative)
    )
    found = findings[quoted]
    where = "on the case above" if quoted == 0 else f"on draw {quoted} below"
    lines = [f"{where}: {line}" for line in found.evidence]
    if quoted:
        lines.insert(0, "the case above is consistent with it but too small to show it")
    further = len(draws) - 1
    shown: list[str] = []
    if further:
        agree = sum(f.informative for f in findings[1:])
        listed = "listed below" if further <= SHOWN_DRAWS else f"{SHOWN_DRAWS} listed below"
        lines.append(
            f"{further} further failing draw{'s' * (further > 1)} ({listed}; the reproduction "
            f"checks {'them' if further > 1 else 'it'} again): {agree} show"
            f"{'s' * (agree == 1)} the same pattern, none contradicts it"
        )
        if kind == "batch-mean-vs-sum":
            pairs = {
                (round(max(f.factor, 1.0 / f.factor)), f.factor)
                for f in findings
                if f.informative and f.factor
            }
            lines.append(
                "the factor follows N: "
                + ", ".join(f"× {c:.4g} at N = {n}" for n, c in sorted(pairs))
            )
        listing = sorted(range(1, len(draws)), key=lambda k: (k != quoted, k))[:SHOWN_DRAWS]
        for k in sorted(listing):
            text = findings[k].evidence[0] if findings[k].evidence else "consistent with it"
            head, _, rest = (draws[k].description or "(not shown)").partition("\n")
            shown.append(f"draw {k}: {head} — {text}" + (f"\n{rest}" if rest else ""))
    table = findings[0].table or tuple(
        (f"draw {quoted}, {label}", pre, implied, true) for label, pre, implied, true in found.table
    )
    return Diagnosis(kind, found.summary, tuple(lines), found.factor, table, tuple(shown))
