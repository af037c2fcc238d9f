"""Explaining a mismatch: which kind of gradient bug the evidence points to.

Every gradient checker says "mismatch"; this module says what is wrong. It compares the
hand-written gradient g of every argument with a reference r (and, where available, the
hand-written Jacobian rows with reference rows) and returns the first class, in the order
of `CLASSES`, whose pattern the numbers show:

| class                       | observable pattern                                              |
|-----------------------------|-----------------------------------------------------------------|
| non-finite                  | g is NaN or ±inf where r is finite                              |
| coupling-ignored            | g equals δ ⊙ B from the diagonal blocks, but the layer's        |
|                             | off-diagonal blocks are not zero                                |
| transpose                   | g = rᵀ (square parameter), or for z the product with the        |
|                             | per-example Jacobian instead of its transpose                   |
| sign                        | on every entry where g and r differ, g = -r                     |
| batch-mean-vs-sum           | on the differing entries g = r / N or g = N r                   |
| scale-constant              | on the differing entries g = c r for one c (not 0, ±1, 1/N, N)  |
| bias-only                   | only the gradient of a bias differs                             |
| input-gradient-only         | only ∂E/∂z differs; every parameter gradient is right           |
| wrong-activation-derivative | each Jacobian row is the reference row times its own factor:    |
|                             | g = dout ⊙ h(pre-activation) with h ≠ φ'                        |
| missing-term                | g is 0 where r is not, or per row the error lies along the row's|
|                             | own values (a term through a norm or mean treated as constant)  |
| precision                   | the error exceeds its bound by less than `PRECISION_FACTOR`     |
| unknown                     | anything else                                                   |

"Equals" means within the error model's bound entry by entry (the same bound the check
used), so a diagnosis never rests on a coincidence smaller than rounding.
This module is free of I/O, hypothesis and pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

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

#: An error at most this many times its bound reads as rounding the model did not foresee
#: rather than logic: a logic bug misses by orders of magnitude (a relative error of order
#: one against bounds of order the unit roundoff). A class boundary, not a tolerance: the
#: verdict stays mismatch.
PRECISION_FACTOR = 10.0


@dataclass(frozen=True, eq=False)
class ArgumentEvidence:
    """One argument's hand-written gradient against its reference.

    role is "parameters" or "inputs"; values are the argument's own values (θ or z);
    bias marks the entries that belong to a bias (or None); transposed is the reference
    under the candidate transposition (rᵀ for a square parameter, the product with the
    per-example Jacobian instead of its transpose for z), or None where it has no meaning,
    and transposed_error the bound on that candidate's own error.
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

    @property
    def differing(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return ~(np.abs(self.hand_written - self.reference) <= self.bound)

    @property
    def wrong(self) -> bool:
        return bool(self.differing.any())


@dataclass(frozen=True, eq=False)
class JacobianEvidence:
    """Hand-written Jacobian rows against reference rows: B (N × J × P) or ∂f/∂z
    (N × J × I); row (n, j) belongs to output unit j of example n. preactivation and
    derivative give a_nj and the true φ'(a_nj), to show the implied φ' beside it."""

    name: str
    hand_written: np.ndarray
    reference: np.ndarray
    bound: np.ndarray
    preactivation: np.ndarray | None = None
    derivative: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Evidence:
    """Everything a diagnosis may look at for one failing case."""

    arguments: tuple[ArgumentEvidence, ...]
    batch: int
    jacobians: tuple[JacobianEvidence, ...] = ()
    diagonal_blocks: np.ndarray | None = None  # δ ⊙ B from the reference's diagonal blocks
    off_diagonal_mass: float = 0.0
    diagonal_blocks_error: np.ndarray | float = 0.0


@dataclass(frozen=True)
class Diagnosis:
    """The likely kind of bug, a one-line summary and the evidence for it."""

    kind: str
    summary: str
    evidence: tuple[str, ...] = ()
    factor: float | None = None
    table: tuple[tuple[str, float, float, float], ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        return f"{self.kind}: {self.summary}"


# ---- the tests, one per class ------------------------------------------------------------------


def _matches(g: np.ndarray, candidate: np.ndarray, bound: np.ndarray, where: np.ndarray) -> bool:
    with np.errstate(invalid="ignore", over="ignore"):
        return bool(where.any() and np.all((np.abs(g - candidate) <= bound)[where]))


def _non_finite(evidence: Evidence) -> Diagnosis | None:
    for argument in evidence.arguments:
        bad = ~np.isfinite(argument.hand_written) & np.isfinite(argument.reference)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            return Diagnosis(
                "non-finite",
                f"the hand-written ∂E/∂{argument.name} is {argument.hand_written[index]} at "
                f"{index} where the reference is {argument.reference[index]:.6g}",
                (f"{int(bad.sum())} of {bad.size} entries are not finite",),
            )
    return None


def _coupling_ignored(evidence: Evidence) -> Diagnosis | None:
    blocks = evidence.diagonal_blocks
    if blocks is None or evidence.off_diagonal_mass <= 0.0:
        return None
    for argument in evidence.arguments:
        g = argument.hand_written
        if argument.role == "parameters" and argument.wrong and g.shape == blocks.shape:
            bound = argument.bound + evidence.diagonal_blocks_error
            if _matches(g, blocks, bound, np.ones(g.shape, dtype=bool)):
                return Diagnosis(
                    "coupling-ignored",
                    "the gradient is the compact form δ ⊙ B of the diagonal blocks, but "
                    f"{evidence.off_diagonal_mass:.1%} of the true gradient crosses units",
                    ("output j depends on other units' parameters: A = δ ⊙ B does not apply",),
                )
    return None


def _transpose(evidence: Evidence) -> Diagnosis | None:
    for argument in evidence.arguments:
        g, candidate = argument.hand_written, argument.transposed
        if not argument.wrong or candidate is None or candidate.shape != g.shape:
            continue
        bound = argument.bound + argument.transposed_error
        if _matches(g, candidate, bound, np.ones(g.shape, dtype=bool)):
            what = (
                "the product with the per-example Jacobian instead of its transpose"
                if argument.role == "inputs"
                else "the transpose of the true gradient"
            )
            return Diagnosis("transpose", f"∂E/∂{argument.name} is {what}")
    return None


def _scaled(
    evidence: Evidence, factors: Callable[[ArgumentEvidence], list[float]]
) -> tuple[ArgumentEvidence, float] | None:
    """The first wrong argument whose differing entries are g = c r for a candidate c."""
    for argument in evidence.arguments:
        differing = argument.differing
        if not differing.any():
            continue
        for factor in factors(argument):
            bound = argument.bound * (1.0 + abs(factor))
            if _matches(argument.hand_written, factor * argument.reference, bound, differing):
                return argument, factor
    return None


def _sign(evidence: Evidence) -> Diagnosis | None:
    found = _scaled(evidence, lambda argument: [-1.0])
    if found is None:
        return None
    argument, _ = found
    count = int(argument.differing.sum())
    return Diagnosis(
        "sign",
        f"∂E/∂{argument.name} has the wrong sign",
        (f"g = -r on all {count} entries that differ",),
        factor=-1.0,
    )


def _batch_mean(evidence: Evidence) -> Diagnosis | None:
    n = evidence.batch
    if n < 2:
        return None
    found = _scaled(evidence, lambda argument: [1.0 / n, float(n)])
    if found is None:
        return None
    argument, factor = found
    what = (
        "averaged over the batch where it should be summed"
        if factor < 1
        else ("summed over the batch where it should be averaged")
    )
    return Diagnosis(
        "batch-mean-vs-sum",
        f"∂E/∂{argument.name} is {what} (N = {n})",
        (f"g = r × {factor:.6g} on the entries that differ",),
        factor=factor,
    )


def _least_squares_factor(argument: ArgumentEvidence) -> list[float]:
    """A missing or doubled factor 2 first, then the least-squares c on the differing entries."""
    differing = argument.differing
    g, r = argument.hand_written[differing], argument.reference[differing]
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = float(np.dot(g, r) / np.dot(r, r)) if np.dot(r, r) > 0 else np.nan
    fitted = [factor] if np.isfinite(factor) and factor not in (0.0, 1.0, -1.0) else []
    return [2.0, 0.5, *fitted]


_READINGS = {2.0: " (a factor 2 too many)", 0.5: " (a factor 2 missing)"}


def _scale_constant(evidence: Evidence) -> Diagnosis | None:
    found = _scaled(evidence, _least_squares_factor)
    if found is None:
        return None
    argument, factor = found
    return Diagnosis(
        "scale-constant",
        f"∂E/∂{argument.name} is off by a constant factor {factor:.9g}{_READINGS.get(factor, '')}",
        (f"g = {factor:.9g} r on the {int(argument.differing.sum())} entries that differ",),
        factor=factor,
    )


def _bias_only(evidence: Evidence) -> Diagnosis | None:
    wrong = [a for a in evidence.arguments if a.wrong]
    if not wrong or any(a.bias is None or not a.bias.any() for a in wrong):
        return None
    if all(not (a.differing & ~a.bias).any() for a in wrong):  # type: ignore[operator]
        names = ", ".join(a.name for a in wrong)
        return Diagnosis("bias-only", f"only the bias part of ∂E/∂{names} is wrong")
    return None


def _input_gradient_only(evidence: Evidence) -> Diagnosis | None:
    wrong = [a for a in evidence.arguments if a.wrong]
    parameters = [a for a in evidence.arguments if a.role == "parameters"]
    if wrong and parameters and all(a.role == "inputs" for a in wrong):
        names = ", ".join(a.name for a in wrong)
        return Diagnosis(
            "input-gradient-only",
            f"only ∂E/∂{names} (formula 1) is wrong; every parameter gradient is right",
        )
    return None


def _row_factors(jacobian: JacobianEvidence) -> tuple[np.ndarray, np.ndarray] | None:
    """Per row (n, j): the factor c with hand = c · reference, and whether the rows fit."""
    hand, reference, bound = jacobian.hand_written, jacobian.reference, jacobian.bound
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.sum(reference * reference, axis=-1)
        factors = np.where(
            norm > 0, np.sum(hand * reference, axis=-1) / np.where(norm > 0, norm, 1.0), 1.0
        )
        fitted = factors[..., None] * reference
        fits = np.all(np.abs(hand - fitted) <= bound * (1.0 + np.abs(factors[..., None])), axis=-1)
    return factors, fits


def _wrong_activation_derivative(evidence: Evidence) -> Diagnosis | None:
    for jacobian in evidence.jacobians:
        found = _row_factors(jacobian)
        if found is None:
            continue
        factors, fits = found
        off = np.abs(factors - 1.0) > 0
        rows_differ = np.any(
            np.abs(jacobian.hand_written - jacobian.reference) > jacobian.bound, axis=-1
        )
        if not rows_differ.any() or not np.all(fits):
            continue
        distinct = np.unique(np.round(factors[rows_differ], 12))
        if distinct.size < 2 and np.all(rows_differ):
            continue  # one factor for every row is a scale constant, not φ'
        table = []
        if jacobian.preactivation is not None and jacobian.derivative is not None:
            for n, j in np.argwhere(rows_differ & off)[:8]:
                true = float(jacobian.derivative[n, j])
                table.append(
                    (
                        f"n={n}, j={j}",
                        float(jacobian.preactivation[n, j]),
                        float(factors[n, j]) * true,
                        true,
                    )
                )
        return Diagnosis(
            "wrong-activation-derivative",
            f"each row of {jacobian.name} is the true row times its own factor: the "
            "derivative of the activation is wrong (implied φ' ≠ φ')",
            (
                f"{int(rows_differ.sum())} of {rows_differ.size} rows differ, "
                "each by its own factor",
            ),
            table=tuple(table),
        )
    return None


def _missing_term(evidence: Evidence) -> Diagnosis | None:
    for argument in evidence.arguments:
        differing = argument.differing
        if not differing.any():
            continue
        zero = np.abs(argument.hand_written) <= argument.bound
        if np.all(zero[differing]):
            return Diagnosis(
                "missing-term",
                f"∂E/∂{argument.name} is 0 where the truth is not: a contribution is missing",
                (f"{int(differing.sum())} entries are 0 instead of the reference",),
            )
        if argument.values is not None and argument.hand_written.ndim == 2:
            along = _error_along_own_values(argument)
            if along:
                return Diagnosis(
                    "missing-term",
                    f"per row, the error in ∂E/∂{argument.name} lies along the row's own "
                    "values: a term through a norm or statistic treated as a constant is missing",
                    (f"{along} rows fit error = c · values",),
                )
    return None


def _error_along_own_values(argument: ArgumentEvidence) -> int:
    """How many rows have their error (on the differing entries) proportional to the
    argument's own values there; 0 unless every differing row does."""
    assert argument.values is not None
    rows = 0
    error = argument.reference - argument.hand_written
    for row in range(error.shape[0]):
        where = argument.differing[row]
        if not where.any():
            continue
        values, residual = argument.values[row][where], error[row][where]
        norm = float(np.dot(values, values))
        if norm == 0.0:
            return 0
        factor = float(np.dot(residual, values)) / norm
        if not np.all(np.abs(residual - factor * values) <= argument.bound[row][where]):
            return 0
        rows += 1
    return rows


def _precision(evidence: Evidence) -> Diagnosis | None:
    worst = 0.0
    for argument in evidence.arguments:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.abs(argument.hand_written - argument.reference) / argument.bound
        worst = max(worst, float(np.nanmax(np.where(np.isfinite(ratio), ratio, np.inf))))
    if 1.0 < worst <= PRECISION_FACTOR:
        return Diagnosis(
            "precision",
            f"the error is {worst:.3g} times its bound: rounding beyond the model, not logic",
        )
    return None


#: The classes in order, each beside the test that recognises it.
_TESTS: tuple[tuple[str, Callable[[Evidence], Diagnosis | None]], ...] = (
    ("non-finite", _non_finite),
    ("coupling-ignored", _coupling_ignored),
    ("transpose", _transpose),
    ("sign", _sign),
    ("batch-mean-vs-sum", _batch_mean),
    ("scale-constant", _scale_constant),
    ("bias-only", _bias_only),
    ("input-gradient-only", _input_gradient_only),
    ("wrong-activation-derivative", _wrong_activation_derivative),
    ("missing-term", _missing_term),
    ("precision", _precision),
)
assert tuple(name for name, _ in _TESTS) + ("unknown",) == CLASSES


def diagnose(evidence: Evidence) -> Diagnosis:
    """The first class in `CLASSES` whose pattern the evidence shows."""
    return diagnose_draws([evidence])


def diagnose_draws(draws: Sequence[Evidence]) -> Diagnosis:
    """The first class whose pattern every failing draw shows, as the largest draw shows
    it. One shrunk draw is often too small to tell classes apart (with one entry, every
    error is a "constant factor"); the draws met before shrinking disambiguate."""
    if not draws:
        raise ValueError("diagnose_draws needs at least one draw")
    sizes = [sum(a.hand_written.size for a in evidence.arguments) for evidence in draws]
    largest = int(np.argmax(sizes))
    for _, test in _TESTS:
        found = [test(evidence) for evidence in draws]
        shown = found[largest]
        if shown is not None and all(f is not None for f in found):
            return shown
    wrong = ", ".join(f"∂E/∂{a.name}" for a in draws[largest].arguments if a.wrong) or "nothing"
    return Diagnosis("unknown", f"{wrong} differs in no pattern gradcheck recognises")
