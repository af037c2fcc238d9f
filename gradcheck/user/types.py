"""The plain data of checking a user's layer: the layer in functional form, one drawn
case, and the result of one example.

This module is free of hypothesis and pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradcheck.core.results import Comparison, Outcome, Verdict
from gradcheck.user.signature import Signature

#: Seconds one example may take, by default, before the user's code is stopped.
DEFAULT_TIMEOUT = 60.0
#: Arrays with more entries than this are summarised (shape and range) in messages.
SHOWN_ARRAY_SIZE = 24


@dataclass(frozen=True)
class UserLayer:
    """A user's layer in functional form, whatever style it was written in.

    forward(*args) -> out; backward(dout, *args) -> one gradient per `wrt` argument.
    parameters: the arguments whose structure is analysed. bounds: per argument, an open
    interval its values stay in (or None). unit_jacobian(z, θ) -> B for the unit-Jacobian
    style, whose θ (argument 1) must be unit-partitioned along its axis 0.
    """

    name: str
    style: str
    forward: Callable[..., Any]
    backward: Callable[..., Any]
    signature: Signature
    argument_names: tuple[str, ...]
    wrt: tuple[int, ...]
    parameters: tuple[int, ...]
    bounds: tuple[tuple[float, float] | None, ...]
    unit_jacobian: Callable[..., Any] | None = None


@dataclass(frozen=True)
class Options:
    """kinks: "redraw" (a draw at a kink is non-differentiable) or "subgradient" (the
    hand-written gradient must lie between the one-sided differences there). autograd:
    None detects it, True requires it, False skips it. timeout: seconds one example may
    take before the user's code is stopped (None: no limit). allow_aliases: accept
    outputs that share memory with the arguments."""

    kinks: str = "redraw"
    autograd: bool | None = None
    timeout: float | None = None
    allow_aliases: bool = False


@dataclass
class Memo:
    """What one check learns across its examples: why autograd was skipped (only
    reported: every example tries autograd again, so that replaying a case during
    shrinking reproduces it exactly), and the evidence of the failing draws, which the
    diagnosis reads together."""

    autograd_skipped: str | None = None
    timed_out: Any = None  # the UserTimeoutError of a hanging example, raised again at once
    # the latest mismatch's evidence, gathered only when called (gradcheck.user.run diagnoses)
    failing: list[Any] = field(default_factory=list)
    aliased: Any = None  # the AliasedOutputError of the smallest passing case that aliased

    def alias(self, error: Any) -> None:
        """Keep the aliasing of the smallest case: it is raised only after the search,
        when no wrong gradient was found (which would be the bigger news)."""
        if self.aliased is None or error.case.entries < self.aliased.case.entries:
            self.aliased = error


def format_array(value: np.ndarray) -> str:
    if value.size > SHOWN_ARRAY_SIZE:
        low, high = (f(value).item() for f in (np.min, np.max))
        shown = (f"{low:.6g}", f"{high:.6g}") if value.dtype.kind == "f" else (low, high)
        return (
            f"<{value.dtype.name} array of shape {value.shape}, values in [{shown[0]}, {shown[1]}]>"
        )
    return repr(value.tolist())  # float reprs round-trip; float32 values are exact in them


@dataclass(frozen=True, eq=False)
class UserCase:
    """One draw for a user's layer: the named sizes, the forward's arguments and dout.
    The float arguments and dout share one dtype; int and bool arguments keep theirs.

    With several outputs, douts holds one dout per output and dout is their join
    (`gradcheck.user.outputs`), which the oracles work on; with one, douts is None.
    """

    sizes: Mapping[str, int]
    arguments: tuple[np.ndarray, ...]
    dout: np.ndarray
    names: tuple[str, ...]
    douts: tuple[np.ndarray, ...] | None = None

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.dout.dtype

    @property
    def output_douts(self) -> tuple[np.ndarray, ...]:
        """One dout per output, in the order the backward takes them."""
        return self.douts if self.douts is not None else (self.dout,)

    @property
    def dout_names(self) -> tuple[str, ...]:
        douts = self.output_douts
        return ("dout",) if len(douts) == 1 else tuple(f"dout{k}" for k in range(len(douts)))

    def arrays(self) -> tuple[tuple[str, np.ndarray], ...]:
        return (
            *zip(self.names, self.arguments, strict=True),
            *zip(self.dout_names, self.output_douts, strict=True),
        )

    @property
    def entries(self) -> int:
        """How many numbers the case holds (arguments and dout)."""
        return sum(array.size for _, array in self.arrays())

    def describe(self) -> str:
        sizes = ", ".join(f"{name}={size}" for name, size in self.sizes.items()) or "none"
        lines = [f"sizes {sizes}, dtype {self.dtype.name}"]
        lines += [f"  {name} = {format_array(value)}" for name, value in self.arrays()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={size}" for name, size in self.sizes.items())
        arrays = ", ".join(f"{name}={value.tolist()!r}" for name, value in self.arrays())
        return f"UserCase({self.dtype.name}, {sizes}, {arrays})"


@dataclass(frozen=True)
class UserCaseSummary:
    """The case as the report keys it: layer_type is the layer's name, activation the
    style of the layer ("functional", "cached", "object", "unit-jacobian")."""

    layer_type: str
    activation: str
    dtype: str
    sizes: Mapping[str, int]
    arrays: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        sizes = ", ".join(f"{name}={size}" for name, size in self.sizes.items()) or "none"
        lines = [f"case: {self.layer_type} ({self.activation}) / {self.dtype}, sizes {sizes}"]
        lines += [f"  {name} = {text}" for name, text in self.arrays]
        return "\n".join(lines)


@dataclass(frozen=True)
class UserResult(Outcome):
    """The outcome of one example: a verdict, every comparison, what ran and how the
    errors were bounded (`error_models`: side -> model), and the structure found
    (parameter -> "partitioned along axis k" / "shared" / "unused" / "undetermined")."""

    verdict: Verdict
    message: str
    case: UserCaseSummary
    comparisons: tuple[Comparison, ...] = ()
    seconds: Mapping[str, float] = field(default_factory=dict)
    oracles: tuple[str, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)
    error_models: Mapping[str, str] = field(default_factory=dict)
    structure: Mapping[str, str] = field(default_factory=dict)
    compact_identity: Mapping[str, str] = field(default_factory=dict)
    diagnosis: Any = None  # a gradcheck.diagnosis.classes.Diagnosis, for a mismatch
