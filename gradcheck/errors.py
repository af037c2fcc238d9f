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


class UsageError(GradcheckError, ValueError):
    """A gradcheck function was called with arguments it cannot use; the message says
    which argument and what it accepts."""


class SignatureError(UsageError):
    """A gufunc-style signature such as "(n,i),(i,j),(j)->(n,j)" could not be parsed."""


class UserCodeError(GradcheckError):
    """A user's forward or backward raised, or returned something gradcheck cannot use.

    function names the user's function ("forward", "backward", ...); case describes the
    inputs that caused it (sizes and arrays). When user code raised, the original
    exception is chained (``raise ... from``), so its traceback is shown too.
    """

    def __init__(self, message: str, *, function: str | None = None, case: Any = None) -> None:
        self.function = function
        self.case = case
        super().__init__(message)


class UserOutputError(UserCodeError):
    """User code returned the wrong number of gradients, or an array of the wrong shape or
    dtype, or something that is not an array."""


class AliasedOutputError(UserOutputError):
    """User code returned an array that shares memory with one of its arguments (pass
    allow_aliases=True where such views are intended)."""


class UserTimeoutError(UserCodeError):
    """User code did not return within the per-example deadline (timeout=) and was stopped."""


class NondeterministicError(UserCodeError):
    """Two calls of a user's function on equal inputs gave different results."""


class InputMutationError(UserCodeError):
    """A user's function changed one of the arrays it was given."""


class NonFiniteOutputError(UserCodeError):
    """A user's forward returned NaN or infinity on finite inputs inside the bounds: the
    layer's own instability, diagnosed non-finite (the message says so and shows the
    input), not a gradient bug."""

    #: the diagnosis class, as on a GradientMismatch
    diagnosis: str | None = "non-finite"


class CoupledLayerError(GradcheckError):
    """A layer checked through its unit Jacobian B breaks the block-diagonal precondition:
    output j depends on other units' parameters, so A = δ ⊙ B is not its gradient."""


_SHORT = {"finite-differences": "differences"}
_SYMBOLS = {"inputs": "∂E/∂z", "parameters": "∂E/∂θ"}


class GradientMismatch(GradcheckError, AssertionError):  # noqa: N818 - the documented name
    """A hand-written gradient disagrees with a reference beyond the error model.

    result is the CheckResult (or a result-like object with message, case, comparisons,
    failures() and diagnosis), case the case, reproduction a Python snippet that rebuilds
    it. diagnosis is the class of bug the evidence points to, one of
    gradcheck.DIAGNOSIS_CLASSES (taken from the result unless given), and explanation the
    whole Diagnosis with its evidence. The message fits on one screen: what failed, the
    case, the diagnosis (named once, with its evidence and any further draws it quotes), a
    table of the worst entries and the reproduction, which states the same class.
    """

    #: rows of the worst-entries table shown in the message
    TABLE_ROWS = 6

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
        self.explanation = getattr(result, "diagnosis", None)
        if diagnosis is None and self.explanation is not None:
            diagnosis = getattr(self.explanation, "kind", None)
        self.diagnosis = diagnosis
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [self.result.message.split("\ndiagnosis: ")[0]]
        summary = self.result.case
        if summary is not None and hasattr(summary, "describe"):  # it says itself what it is
            lines.append(summary.describe())
        elif summary is not None:
            lines.append(
                f"case: {summary.layer_type} / {summary.activation} / {summary.dtype}, "
                f"I={summary.inputs} J={summary.units} N={summary.batch} "
                f"P={summary.parameters_per_unit}"
            )
        if self.explanation is not None and hasattr(self.explanation, "lines"):
            lines += self.explanation.lines()  # the class, its evidence, the draws it quotes
        elif self.explanation is not None:
            lines.append(f"diagnosis: {self.explanation}")
        elif self.diagnosis:
            lines.append(f"diagnosis: {self.diagnosis}")
        lines += self._table()
        if self.reproduction:
            lines += ["", "reproduce with:", "", self.reproduction]
        return "\n".join(lines)

    def _table(self) -> list[str]:
        """The worst entries: index, hand-written, each oracle's reference, error/bound."""
        table = getattr(self.result, "worst_entries", None)  # a result's method, if it has one
        rows = table()[: self.TABLE_ROWS] if table is not None else []
        if not rows:
            return []
        oracles = sorted({oracle for row in rows for oracle in row.references})
        header = f"  {'gradient':<8} {'entry':<22} {'hand-written':>15}"
        header += "".join(f" {_SHORT.get(oracle, oracle):>15}" for oracle in oracles)
        header += f" {'error/bound':>12}"
        table = ["worst entries:", header]
        for row in rows:
            where = ", ".join(f"{k} {v}" for k, v in row.entry.items())
            symbol = _SYMBOLS.get(row.target, f"∂E/∂{row.target}")
            line = f"  {symbol:<8} {where:<22} {row.hand_written:>15.9g}"
            for oracle in oracles:
                value = row.references.get(oracle)
                line += f" {'':>15}" if value is None else f" {value:>15.9g}"
            table.append(line + f" {row.ratio:>12.3g}")
        return table
