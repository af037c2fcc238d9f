"""Exceptions raised by gradcheck.

Every error about bad usage or bad user code derives from `GradcheckError`, so a caller
can catch one type. This module imports nothing heavy: the pytest plugin imports it on
every test run of every project that installs gradcheck.
"""

from __future__ import annotations

from typing import Any


class GradcheckError(Exception):
    """Base class of every error gradcheck raises on purpose."""


class UnknownNameError(GradcheckError, LookupError):
    """A layer type, activation or oracle was named that the catalogue does not hold."""

    def __init__(self, kind: str, name: object, choices: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.choices = choices
        shown = ", ".join(choices)
        super().__init__(f"unknown {kind} {name!r}; choose one of: {shown}")

    def __str__(self) -> str:  # LookupError would otherwise quote the message
        return str(self.args[0])


class GradientMismatch(GradcheckError, AssertionError):  # noqa: N818 - the documented name
    """A hand-written gradient disagrees with a reference beyond the error model.

    Carries the CheckResult, the case and a reproduction snippet; `diagnosis` names the
    kind of bug the evidence points to, when one is recognised.
    """

    def __init__(
        self,
        result: Any,
        *,
        case: Any = None,
        reproduction: str | None = None,
        diagnosis: str | None = None,
    ) -> None:
        self.result = result
        self.case = case
        self.reproduction = reproduction
        self.diagnosis = diagnosis
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [self.result.message]
        summary = self.result.case
        if summary is not None:
            lines.append(
                f"case: {summary.layer_type} / {summary.activation} / {summary.dtype}, "
                f"I={summary.inputs} J={summary.units} N={summary.batch} "
                f"P={summary.parameters_per_unit}"
            )
        if self.diagnosis:
            lines.append(f"diagnosis: {self.diagnosis}")
        for comparison in self.result.failures():
            where = ", ".join(f"{k} {v}" for k, v in comparison.worst_entry.items())
            lines.append(
                f"  {comparison.oracle:<18} {comparison.target:<10} at {where}: hand-written "
                f"{comparison.hand_written:.9g}, reference {comparison.reference:.9g}, "
                f"error/bound {comparison.worst_ratio:.3g}"
            )
        if self.reproduction:
            lines += ["", "reproduce with:", "", self.reproduction]
        return "\n".join(lines)
