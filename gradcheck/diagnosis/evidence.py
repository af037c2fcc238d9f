"""What a diagnosis reads: per argument the hand-written gradient g beside its reference r,
per output the hand-written Jacobian row beside the reference row, for one failing draw;
and what it says: a `Finding` per class and draw, one `Diagnosis` per failure.

Plain data; the engines' gatherers (`gradcheck.diagnosis.catalogue`,
`gradcheck.diagnosis.user`) fill it, `gradcheck.diagnosis.patterns` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class ArgumentEvidence:
    """One argument's hand-written gradient against its reference.

    role is "parameters" or "inputs"; values are the argument's own values (θ or z, 2-D:
    one row per leading index); bias marks the entries that belong to a bias (or None).
    transposed is the reference under the candidate transposition (rᵀ for a square
    parameter, the product with the per-example Jacobian instead of its transpose for an
    input), or None where it has no meaning, and transposed_error that candidate's own
    error bound. batch is the N of this argument (its batch size; None: the evidence's).
    parts labels each entry with the part it belongs to (a part is what a constant or
    batch factor must fit whole: the argument, or its bias and its other entries, or for
    the catalogue's θ each column); None: the bias and the rest. uncoupled is the
    reference with the cross-unit (or cross-entry) terms of the Jacobian dropped, with its
    own error bound; cross_mass the share of the Jacobian those terms hold (0 when the
    argument is not coupled). rounding is the hand-written side's own rounding bound (part
    of bound, which adds the reference's error), or None.
    """

    name: str
    role: str
    hand_written: np.ndarray
    reference: np.ndarray
    bound: np.ndarray
    values: np.ndarray | None = None
    bias: np.ndarray | None = None
    transposed: np.ndarray | None = None
    transposed_error: np.ndarray | float = 0.0
    batch: int | None = None
    parts: np.ndarray | None = None
    uncoupled: np.ndarray | None = None
    uncoupled_error: np.ndarray | float = 0.0
    cross_mass: float = 0.0
    rounding: np.ndarray | None = None

    @property
    def differing(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return ~(np.abs(self.hand_written - self.reference) <= self.bound)

    @property
    def wrong(self) -> bool:
        return bool(self.differing.any())

    @property
    def labels(self) -> np.ndarray:
        """The part of each entry (see the class docstring)."""
        if self.parts is not None:
            return np.asarray(self.parts)
        if self.bias is not None:
            return np.asarray(self.bias, dtype=np.int64)
        return np.zeros(np.shape(self.hand_written), dtype=np.int64)

    def ratio(self) -> float:
        """The worst error / bound of this argument (inf where g is not finite)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.abs(self.hand_written - self.reference) / self.bound
        if ratio.size == 0:
            return 0.0
        return float(np.max(np.where(np.isnan(ratio), np.inf, ratio)))


@dataclass(frozen=True, eq=False)
class JacobianEvidence:
    """Hand-written Jacobian rows against reference rows, (N × J × entries): row (n, j)
    belongs to output unit j of example n (for the catalogue B = ∂f/∂θ or ∂f/∂z; for a
    user's layer every differentiated argument side by side, read off its backward).

    preactivation and derivative give a_nj and the true φ'(a_nj) where they are known (the
    catalogue). reading gives per row the entry whose derivative is φ' itself (the same
    entry of an elementwise input, or the unit's bias), -1 where there is none, and
    reading_values that entry's value (the pre-activation, for an elementwise input; NaN
    otherwise). linear is False when the backward is not linear in dout (its gradient for
    the drawn dout is not the sum of its Jacobian rows), None when not checked.
    """

    name: str
    hand_written: np.ndarray
    reference: np.ndarray
    bound: np.ndarray
    preactivation: np.ndarray | None = None
    derivative: np.ndarray | None = None
    reading: np.ndarray | None = None
    reading_values: np.ndarray | None = None
    linear: bool | None = None


@dataclass(frozen=True, eq=False)
class Evidence:
    """Everything a diagnosis may look at for one failing draw. batch is the N of the
    draw (each argument may say its own); description shows the draw (its sizes and
    arrays) where a message must show it as a case; dtype is the draw's working dtype."""

    arguments: tuple[ArgumentEvidence, ...]
    batch: int
    jacobians: tuple[JacobianEvidence, ...] = ()
    description: str = ""
    dtype: str = "float64"

    def batch_of(self, argument: ArgumentEvidence) -> int:
        return self.batch if argument.batch is None else argument.batch

    def ratio(self) -> float:
        """The worst error / bound over every argument."""
        return max((a.ratio() for a in self.arguments), default=0.0)


@dataclass(frozen=True)
class Finding:
    """What one class's test saw on one draw, when the draw does not contradict the
    class: informative when the draw shows the pattern (not only is consistent with it,
    as a draw of one entry is with any constant factor)."""

    informative: bool
    summary: str = ""
    evidence: tuple[str, ...] = ()
    factor: float | None = None
    table: tuple[tuple[str, float, float, float], ...] = ()


#: A draw consistent with a class but unable to show it.
SILENT = Finding(False)


@dataclass(frozen=True)
class Diagnosis:
    """The kind of bug, a one-line summary and the evidence for it.

    table holds, for a wrong activation derivative, rows (where, pre-activation, implied
    φ', true φ') (NaN where not known; with the true φ' unknown, implied is the factor
    implied φ' / φ'). draws shows the further random failing draws the decision read,
    as cases (sizes and arrays), when the evidence quotes one of them.
    """

    kind: str
    summary: str
    evidence: tuple[str, ...] = ()
    factor: float | None = None
    table: tuple[tuple[str, float, float, float], ...] = field(default_factory=tuple)
    draws: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind}: {self.summary}"

    def lines(self) -> list[str]:
        """The diagnosis as a message shows it: the class and summary, the evidence, the
        implied φ' table, and the draws it quotes."""
        lines = [f"diagnosis: {self}"]
        lines += [f"  {line}" for line in self.evidence]
        for label, pre, implied, true in self.table[:4]:
            where = f"  {label}: " + ("" if np.isnan(pre) else f"pre-activation {pre:.6g}, ")
            if np.isnan(true):
                lines.append(f"{where}implied φ' = {implied:.6g} × φ'")
            else:
                lines.append(f"{where}implied φ' {implied:.6g}, true φ' {true:.6g}")
        for draw in self.draws:
            body = draw.splitlines() or [""]
            lines.append(f"  {body[0]}")
            lines += [f"    {line.strip()}" for line in body[1:]]
        return lines
