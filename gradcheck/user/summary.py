"""What one check of a user's layer found, as plain data: `LayerCheck`.

Importing this module is cheap (no numpy, autograd or hypothesis): the pytest plugin
reads the summaries its xdist workers send back as JSON and prints them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gradcheck.report import (
    Cell,
    Counterexample,
    Failure,
    decode_float,
    encode_float,
    printable,
)

#: The outcomes of a check.
OUTCOMES = ("running", "passed", "failed", "error")


@dataclass
class LayerCheck:
    """What one check of a layer found.

    outcome: "passed", "failed" (a gradient mismatch) or "error" (user code or usage);
    message: the error's message when it did not pass. examples: examples checked;
    rejected: draws redrawn at a non-differentiable point. worst_ratio: the largest
    error/bound of any comparison (above 1 is a miss), worst: which oracle on which
    gradient. oracles: how many examples each oracle ran in; skipped: why an oracle did
    not run. error_models: per side (backward, autograd, forward), how many examples used
    each model ("running" or the fallback's reason). structure: per parameter
    "partitioned along axis k", "shared", "unused" or "undetermined"; compact_identity:
    per partitioned parameter, whether the hand-written gradient equals δ ⊙ B ("holds" or
    "fails"). cells: the report's statistics per dtype; failure: the report's record of
    the shrunk counterexample. test: the pytest node that ran the check, if any.
    """

    name: str
    style: str
    signature: str
    outcome: str = "running"
    message: str = ""
    examples: int = 0
    rejected: int = 0
    worst_ratio: float | None = None
    worst: str = ""
    oracles: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    error_models: dict[str, dict[str, int]] = field(default_factory=dict)
    structure: dict[str, str] = field(default_factory=dict)
    compact_identity: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    cells: dict[str, Cell] = field(default_factory=dict)
    failure: Failure | None = None
    test: str | None = None
    _shapes: dict[str, set[str]] = field(default_factory=dict, repr=False)
    _identity: dict[str, set[str]] = field(default_factory=dict, repr=False)

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    def add(self, result: Any) -> None:
        """Fold in one example's result (a `gradcheck.user.engine.UserResult`)."""
        self.seconds += float(result.seconds.get("total", 0.0))
        if str(result.verdict) == "non-differentiable":
            self.rejected += 1
            return
        self.examples += 1
        dtype = result.case.dtype
        cell = self.cells.setdefault(
            dtype, Cell(layer_type=self.name, activation=self.style, dtype=dtype)
        )
        cell.add(result)
        for oracle in result.oracles:
            self.oracles[oracle] = self.oracles.get(oracle, 0) + 1
        for oracle, reason in result.skipped.items():
            self.skipped.setdefault(oracle, reason)
        for side, model in result.error_models.items():
            kind = "running" if model.startswith("running") else model
            counts = self.error_models.setdefault(side, {})
            counts[kind] = counts.get(kind, 0) + 1
        for comparison in result.comparisons:
            ratio = comparison.worst_ratio
            if self.worst_ratio is None or not ratio <= self.worst_ratio:  # NaN wins
                self.worst_ratio = ratio
                self.worst = f"{comparison.oracle} on ∂E/∂{comparison.target}"
        for name, verdict in result.structure.items():
            self._shapes.setdefault(name, set()).add(verdict)
        for name, verdict in result.compact_identity.items():
            self._identity.setdefault(name, set()).add(verdict)
        self.structure = {name: _aggregate(seen) for name, seen in self._shapes.items()}
        self.compact_identity = {
            name: "fails" if "fails" in seen else "holds" for name, seen in self._identity.items()
        }

    def add_error(self, error: BaseException, dtype: str, reproduction: str = "") -> None:
        """Record that the check ended with `error` (the user's code raised, or the check
        could not run): outcome "error", and in the report a cell of `dtype` counting the
        verdict "error" with a failure that keeps the exception's class and message, so
        that the error is in report.json, report.md and report.html like any failure."""
        kind = type(error).__name__
        self.outcome, self.message = "error", f"{kind}: {error}"
        case = getattr(error, "case", None)
        dtype = str(getattr(getattr(case, "dtype", None), "name", dtype))
        cell = self.cells.setdefault(
            dtype, Cell(layer_type=self.name, activation=self.style, dtype=dtype)
        )
        cell.add_error()
        arguments = getattr(case, "arguments", None) or ()
        douts = getattr(case, "douts", None)
        delta = getattr(case, "dout", None) if douts is None else [d.tolist() for d in douts]
        self.failure = Failure(
            layer_type=self.name,
            activation=self.style,
            dtype=dtype,
            verdict="error",
            message=str(error),
            exception=kind,
            case=Counterexample.of(
                activation=self.style,
                z=arguments[0] if arguments else [],
                theta=list(arguments[1:]),
                delta=[] if delta is None else delta,
            ),
            reproduction=reproduction or f"# {self.name}: the check raised {kind}",
        )

    def describe(self) -> str:
        """A line for a terminal summary (more for the structure and a failure); control
        characters from user code (ANSI escapes in a name or message) shown escaped."""
        return printable(self._describe())

    def _describe(self) -> str:
        ratio = "n/a" if self.worst_ratio is None else f"{self.worst_ratio:.3g}"
        oracles = ", ".join(self.oracles) or "none"
        redrawn = f" ({self.rejected} redrawn)" if self.rejected else ""
        line = (
            f"{self.outcome.upper():<6} {self.name} ({self.style}): {self.examples} examples"
            f"{redrawn}, worst error/bound {ratio}"
            + (f" ({self.worst})" if self.worst else "")
            + f", oracles: {oracles}"
        )
        if "autograd" in self.skipped and "autograd" not in self.oracles:
            line += " (autograd skipped: " + self.skipped["autograd"] + ")"
        if self.structure:
            parts = []
            for name, verdict in self.structure.items():
                identity = self.compact_identity.get(name)
                parts.append(f"{name} {verdict}" + (f", δ ⊙ B {identity}" if identity else ""))
            line += "\n       structure: " + "; ".join(parts)
        if self.outcome != "passed" and self.message:
            line += "\n       " + self.message.splitlines()[0]
        return line

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "style": self.style,
            "signature": self.signature,
            "outcome": self.outcome,
            "message": self.message,
            "examples": self.examples,
            "rejected": self.rejected,
            "worst_ratio": None if self.worst_ratio is None else encode_float(self.worst_ratio),
            "worst": self.worst,
            "oracles": dict(self.oracles),
            "skipped": dict(self.skipped),
            "error_models": {side: dict(counts) for side, counts in self.error_models.items()},
            "structure": dict(self.structure),
            "compact_identity": dict(self.compact_identity),
            "seconds": self.seconds,
            "cells": [cell.to_json_dict() for cell in self.cells.values()],
            "failure": None if self.failure is None else self.failure.to_json_dict(),
            "test": self.test,
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> LayerCheck:
        """The LayerCheck `to_json_dict` wrote."""
        cells = [Cell.from_json_dict(c) for c in data.get("cells", [])]
        failure = data.get("failure")
        worst = data.get("worst_ratio")
        return cls(
            name=data["name"],
            style=data["style"],
            signature=data["signature"],
            outcome=data["outcome"],
            message=data.get("message", ""),
            examples=data.get("examples", 0),
            rejected=data.get("rejected", 0),
            worst_ratio=None if worst is None else decode_float(worst),
            worst=data.get("worst", ""),
            oracles=dict(data.get("oracles", {})),
            skipped=dict(data.get("skipped", {})),
            error_models={k: dict(v) for k, v in data.get("error_models", {}).items()},
            structure=dict(data.get("structure", {})),
            compact_identity=dict(data.get("compact_identity", {})),
            seconds=float(data.get("seconds", 0.0)),
            cells={cell.dtype: cell for cell in cells},
            failure=None if failure is None else Failure.from_json_dict(failure),
            test=data.get("test"),
        )


def _aggregate(seen: set[str]) -> str:
    """A parameter's structure over many examples: sharing seen once is sharing; an
    example with one output unit or an unused parameter tells nothing against the rest."""
    if "shared" in seen:
        return "shared"
    partitioned = sorted(v for v in seen if v.startswith("partitioned"))
    if partitioned:
        return " or ".join(partitioned)
    if seen == {"unused"}:
        return "unused"
    return next((v for v in sorted(seen) if v != "unused"), "undetermined")
