"""The diagnosis classes by name, in their order of precedence (the design's table).

Kept apart from the numbers (`gradcheck.diagnosis.classes`) so that
`gradcheck.DIAGNOSIS_CLASSES` costs no numpy import.
"""

from __future__ import annotations

CLASSES = (
    "non-finite",
    "coupling-ignored",
    "transpose",
    "sign",
    "batch-mean-vs-sum",
    "scale-constant",
    "bias-only",
    "input-gradient-only",
    "wrong-activation-derivative",
    "missing-term",
    "precision",
    "unknown",
)

#: The public name (`gradcheck.DIAGNOSIS_CLASSES`): what `GradientMismatch.diagnosis`,
#: `CheckResult.diagnosis.kind` and a report's `diagnosis` field may hold.
DIAGNOSIS_CLASSES = CLASSES
