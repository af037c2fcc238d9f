"""The test of each diagnosis class on one draw.

Each test takes one draw's `Evidence` (and, for the factor classes, the factor under
test) and returns None when the draw contradicts the class, `SILENT` when the draw is
consistent with it but cannot show it, or an informative `Finding` with what it saw.
`gradcheck.diagnosis.classes` runs them in order over every failing draw and says why
each is defined as it is. "Equals" is always within the bound the check itself used,
entry by entry.
"""

from __future__ import annotations

import numpy as np

from gradcheck.diagnosis.evidence import (
    SILENT,
    ArgumentEvidence,
    Evidence,
    Finding,
    JacobianEvidence,
)

#: An error at most this many times its bound reads as rounding the model did not foresee
#: rather than logic: a logic bug misses by orders of magnitude (a relative error of order
#: one against bounds of order the unit roundoff). A class boundary, not a tolerance: the
#: verdict stays mismatch.
PRECISION_FACTOR = 10.0

#: How much coarser float32 rounding is than float64's (u32 / u64 = 2^29): a float64
#: check of a computation done partly in float32 misses by about this times its bound.
FLOAT32_OVER_FLOAT64 = 2.0**29


def _close(g: np.ndarray, candidate: np.ndarray, bound: np.ndarray | float) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        return np.asarray(np.abs(g - candidate) <= bound)


def _wrong(evidence: Evidence) -> list[ArgumentEvidence]:
    return [a for a in evidence.arguments if a.wrong]


def _names(arguments: list[ArgumentEvidence]) -> str:
    return ", ".join(f"∂E/∂{a.name}" for a in arguments)


def _is(arguments: list[ArgumentEvidence]) -> str:
    return "is" if len(arguments) == 1 else "are"


def _entries(count: int) -> str:
    return "the 1 entry" if count == 1 else f"all {count} entries"


def non_finite(evidence: Evidence) -> Finding:
    """The hand-written gradient is NaN or ±inf where the reference is finite, or where
    no reference resolves the entry (NaN: finite differences blind there, autograd not
    finite). Evidence is gathered only where the forward is finite on finite inputs (a
    forward that is not raises NonFiniteOutputError first), so a gradient that is not
    finite there is the backward's own overflow or 0/0, whatever the references say; a
    reference of ±inf is not a resolution that the hand-written one could miss."""
    for argument in evidence.arguments:
        reference = np.asarray(argument.reference)
        bad = ~np.isfinite(argument.hand_written) & ~np.isinf(reference)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            there = (
                f"where the reference is {reference[index]:.6g}"
                if np.isfinite(reference[index])
                else "where no reference resolves it (the forward is finite there)"
            )
            return Finding(
                True,
                f"the hand-written ∂E/∂{argument.name} is {argument.hand_written[index]} at "
                f"{index} {there}: the backward "
                "overflows or divides by zero on finite inputs inside the bounds",
                (f"{int(bad.sum())} of {bad.size} entries of ∂E/∂{argument.name} are not finite",),
            )
    return SILENT


def coupling_ignored(evidence: Evidence) -> Finding | None:
    """Every wrong argument that has a coupled Jacobian equals its reference with the
    cross-unit (or cross-entry) terms dropped: δ ⊙ B of the diagonal blocks, or only the
    diagonal of a softmax-like Jacobian kept; informative when one such argument is wrong."""
    judged = []
    for argument in _wrong(evidence):
        if argument.uncoupled is None or argument.cross_mass <= 0.0:
            continue
        bound = argument.bound + argument.uncoupled_error
        if not np.all(_close(argument.hand_written, argument.uncoupled, bound)):
            return None
        judged.append(argument)
    if not judged:  # no coupled Jacobian beyond its own error here: this draw cannot tell
        return SILENT
    mass = max(a.cross_mass for a in judged)
    return Finding(
        True,
        f"{_names(judged)} {'keeps' if len(judged) == 1 else 'keep'} only the diagonal of a "
        "coupled Jacobian: the gradient is the "
        "reference with the cross-unit terms dropped, and those terms hold "
        f"{mass:.1%} of the Jacobian",
        tuple(
            f"g = r without the cross terms on {_entries(a.hand_written.size)} of ∂E/∂{a.name}"
            for a in judged
        ),
    )


def transpose(evidence: Evidence) -> Finding | None:
    """Every wrong argument equals its transposition candidate."""
    wrong = _wrong(evidence)
    for argument in wrong:
        candidate = argument.transposed
        if candidate is None or candidate.shape != argument.hand_written.shape:
            return None
        bound = argument.bound + argument.transposed_error
        if not np.all(_close(argument.hand_written, candidate, bound)):
            return None
    if not wrong:
        return None
    inputs = [a for a in wrong if a.role == "inputs"]
    what = (
        "the product with the per-example Jacobian instead of its transpose"
        if inputs
        else "the transpose of the true gradient"
    )
    return Finding(
        True,
        f"{_names(wrong)} {_is(wrong)} {what}",
        tuple(f"g = rᵀ on {_entries(a.hand_written.size)} of ∂E/∂{a.name}" for a in wrong),
    )


def sign(evidence: Evidence) -> Finding | None:
    """On every entry where g and r differ, g = -r."""
    wrong = _wrong(evidence)
    for argument in wrong:
        where = argument.differing
        close = _close(argument.hand_written, -argument.reference, 2.0 * argument.bound)
        if not np.all(close[where]):
            return None
    if not wrong:
        return None
    count = sum(int(a.differing.sum()) for a in wrong)
    return Finding(
        True,
        f"{_names(wrong)} {'has' if len(wrong) == 1 else 'have'} the wrong sign",
        (f"g = -r on {_entries(count)} that differ",),
        factor=-1.0,
    )


def _parts_fit(argument: ArgumentEvidence, factor: float) -> np.ndarray | None:
    """The entries of the argument's wrong parts when g = factor · r on every one of them
    (a part is wrong when any of its entries differs), else None."""
    labels = argument.labels
    wrong_parts = np.unique(labels[argument.differing])
    inside = np.isin(labels, wrong_parts)
    bound = argument.bound * (1.0 + abs(factor))
    if not np.all(_close(argument.hand_written, factor * argument.reference, bound)[inside]):
        return None
    return inside


def _where(argument: ArgumentEvidence, inside: np.ndarray) -> str:
    """Which entries a factor was fitted on, for the evidence line."""
    count = int(inside.sum())
    if count == inside.size:
        return f"{_entries(count)} of ∂E/∂{argument.name}"
    return f"{_entries(count)} of the parts of ∂E/∂{argument.name} that differ (the rest is right)"


def batch_mean(evidence: Evidence, exponent: float) -> Finding | None:
    """Every wrong part of every wrong argument is g = N^exponent · r on all its entries,
    N the argument's batch size in this draw (so the factor follows N across draws)."""
    wrong = _wrong(evidence)
    lines = []
    factor = 1.0
    for argument in wrong:
        n = evidence.batch_of(argument)
        if n < 2:
            return None
        factor = float(n) ** exponent
        inside = _parts_fit(argument, factor)
        if inside is None:
            return None
        lines.append(
            f"g = r {'/' if exponent < 0 else '×'} N on {_where(argument, inside)} (N = {n})"
        )
    if not wrong:
        return None
    what = (
        "averaged over the batch where it should be summed"
        if exponent < 0
        else "summed over the batch where it should be averaged"
    )
    return Finding(True, f"{_names(wrong)} {_is(wrong)} {what}", tuple(lines), factor=factor)


def scale_factor(evidence: Evidence) -> float | None:
    """The least-squares c of g ≈ c r over the entries of the wrong parts, or None."""
    g_all, r_all = [], []
    for argument in _wrong(evidence):
        labels = argument.labels
        inside = np.isin(labels, np.unique(labels[argument.differing]))
        g_all.append(argument.hand_written[inside])
        r_all.append(argument.reference[inside])
    if not g_all:
        return None
    g, r = np.concatenate(g_all), np.concatenate(r_all)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        norm = float(np.dot(r, r))
        factor = float(np.dot(g, r)) / norm if norm > 0 else np.nan
    return factor if np.isfinite(factor) else None


_READINGS = {2.0: " (a factor 2 too many)", 0.5: " (a factor 2 missing)"}


def scale_constant(evidence: Evidence, factor: float) -> Finding | None:
    """One c fits g = c · r on every entry of every wrong part, and c · r is told apart
    from 0 (a c within rounding of 0 is a gradient that is 0: not a factor)."""
    wrong = _wrong(evidence)
    if not wrong:
        return None
    nonzero = 0
    lines = []
    for argument in wrong:
        inside = _parts_fit(argument, factor)
        if inside is None:
            return None
        scaled = np.abs(factor * argument.reference[inside])
        if not np.any(scaled > argument.bound[inside]):
            return None
        nonzero += int(np.sum(np.abs(argument.reference[inside]) > argument.bound[inside]))
        lines.append(f"g = {factor:.9g} r on {_where(argument, inside)}")
    shown = min((2.0, 0.5), key=lambda c: abs(c - factor))
    reading = _READINGS[shown] if abs(shown - factor) <= 1e-9 * shown else ""
    return Finding(
        nonzero >= 2,  # one entry fits any factor
        f"{_names(wrong)} {_is(wrong)} off by a constant factor {factor:.9g}{reading}",
        tuple(lines),
        factor=factor,
    )


def bias_only(evidence: Evidence) -> Finding | None:
    """Every entry that differs belongs to a bias; every other gradient is right."""
    wrong = _wrong(evidence)
    if not wrong:
        return None
    for argument in wrong:
        if argument.bias is None or (argument.differing & ~argument.bias).any():
            return None
    count = sum(int(a.differing.sum()) for a in wrong)
    return Finding(
        True,
        f"only the bias part of {_names(wrong)} is wrong",
        (f"{count} bias entr{'y differs' if count == 1 else 'ies differ'}; the rest is right",),
    )


def input_gradient_only(evidence: Evidence) -> Finding | None:
    """Only input gradients differ, and the layer has parameters, all right."""
    wrong = _wrong(evidence)
    parameters = [a for a in evidence.arguments if a.role == "parameters"]
    if not wrong or not parameters or any(a.role != "inputs" for a in wrong):
        return None
    return Finding(
        True,
        f"only {_names(wrong)} (formula 1) is wrong; every parameter gradient is right",
        (f"{', '.join(a.name for a in parameters)}: right",),
    )


def _row_factors(jacobian: JacobianEvidence) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Per row: the factor c with hand = c · reference (NaN on a zero reference row), how
    uncertain c is, and whether the rows differ; None when some row with a reference is
    not c · reference."""
    hand, reference, bound = jacobian.hand_written, jacobian.reference, jacobian.bound
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        nonzero = np.any(np.abs(reference) > bound, axis=-1)
        norm = np.sum(reference * reference, axis=-1)
        factors = np.where(
            nonzero, np.sum(hand * reference, axis=-1) / np.where(norm > 0, norm, 1), np.nan
        )
        fitted = np.nan_to_num(factors)[..., None] * reference
        slack = bound * (1.0 + np.abs(np.nan_to_num(factors))[..., None])
        fits = np.all(np.abs(hand - fitted) <= slack, axis=-1)
        peak = np.max(np.abs(reference), axis=-1)
        spread = np.where(nonzero, np.max(bound, axis=-1) / np.where(peak > 0, peak, 1), np.inf)
    # A zero reference row (φ'(a) = 0: a saturated tanh, a ReLU's flat side) says nothing
    # of ∂a, so any hand row there is h(a) · ∂a for some h(a): it cannot contradict.
    if not np.all(fits | ~nonzero):
        return None
    differ = np.any(~(np.abs(hand - reference) <= bound), axis=-1)
    return factors, spread, differ


def _table(
    jacobian: JacobianEvidence, factors: np.ndarray, differ: np.ndarray
) -> tuple[tuple[str, float, float, float], ...]:
    """(where, pre-activation, implied φ', true φ') for up to 8 rows that differ."""
    table = []
    for n, j in np.argwhere(differ)[:8]:
        label = f"n={n}, j={j}"
        factor = float(factors[n, j])
        if jacobian.derivative is not None and jacobian.preactivation is not None:
            true = float(jacobian.derivative[n, j])
            table.append((label, float(jacobian.preactivation[n, j]), factor * true, true))
            continue
        entry = -1 if jacobian.reading is None else int(jacobian.reading[n, j])
        pre = np.nan if jacobian.reading_values is None else float(jacobian.reading_values[n, j])
        if entry >= 0:
            true = float(jacobian.reference[n, j, entry])
            table.append((label, pre, float(jacobian.hand_written[n, j, entry]), true))
        elif np.isfinite(factor):
            table.append((label, pre, factor, np.nan))
    return tuple(table)


def _distinct(factors: np.ndarray, spread: np.ndarray) -> bool:
    """Whether the row factors take two values told apart beyond their uncertainty."""
    known = np.isfinite(factors)
    values, widths = factors[known], spread[known]
    if values.size < 2:
        return False
    low, high = int(np.argmin(values)), int(np.argmax(values))
    return bool(values[high] - values[low] > 2.0 * (widths[high] + widths[low]) + 1e-12)


def wrong_activation_derivative(evidence: Evidence) -> Finding | None:
    """Each Jacobian row is the reference row times its own factor (g = dout ⊙ h(a) with h
    not φ'), the backward is linear in dout, and the factors are not one constant."""
    informative = None
    consistent: Finding | None = None
    for jacobian in evidence.jacobians:
        if jacobian.linear is False:
            return None
        found = _row_factors(jacobian)
        if found is None:
            return None
        factors, spread, differ = found
        if not differ.any():
            continue
        if consistent is None:  # too small to show it, but its implied φ' can be shown
            consistent = Finding(False, table=_table(jacobian, factors, differ))
        zero_rows = differ & ~np.isfinite(factors)
        if informative is None and (
            _distinct(factors, spread) or (zero_rows.any() and np.isfinite(factors).any())
        ):
            informative = (jacobian, factors, differ)
    if informative is None:
        return consistent or (SILENT if not evidence.jacobians else None)
    jacobian, factors, differ = informative
    shown = factors[differ & np.isfinite(factors)]
    span = ""
    if shown.size:
        low, high = float(shown.min()), float(shown.max())
        span = f" by factors from {low:.3g} to {high:.3g}" if high > low else f" by {low:.3g}"
    rest = "; the other rows are right" if differ.sum() < differ.size else ""
    return Finding(
        True,
        f"each row of {jacobian.name} is the true row times its own factor: the derivative "
        "of the activation is wrong (implied φ' beside the true φ' below)",
        (f"{int(differ.sum())} of {differ.size} rows differ,{span}{rest}",),
        table=_table(jacobian, factors, differ),
    )


def _line(values: np.ndarray, error: np.ndarray, bound: np.ndarray) -> bool | None:
    """Whether error = b · values (informative with 2 points) or a + b · values
    (informative with 3) fits within the bound: True informative, False consistent, None
    neither."""
    slack = 2.0 * bound
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        norm = float(np.dot(values, values))
        if norm > 0:
            b = float(np.dot(values, error)) / norm
            if np.all(np.abs(error - b * values) <= slack):
                return values.size >= 2
        design = np.stack([np.ones_like(values), values], axis=1)
        coefficients = np.linalg.lstsq(design, error, rcond=None)[0]
        if np.all(np.abs(error - design @ coefficients) <= slack):
            return values.size >= 3
    return None


def _along_own_values(argument: ArgumentEvidence, axis: int) -> tuple[bool, int] | None:
    """Per row (axis 1) or column (axis 0) of the argument's 2-D view: the error on the
    differing entries is a + b · the argument's own values there. (informative, slices)"""
    assert argument.values is not None
    values = np.asarray(argument.values, dtype=np.float64)
    shape = values.shape
    error = (argument.reference - argument.hand_written).reshape(shape)
    differing, bound = argument.differing.reshape(shape), argument.bound.reshape(shape)
    if axis == 0:
        values, error, differing, bound = values.T, error.T, differing.T, bound.T
    informative, slices = False, 0
    for row in range(values.shape[0]):
        where = differing[row]
        if not where.any():
            continue
        found = _line(values[row][where], error[row][where], bound[row][where])
        if found is None:
            return None
        informative |= found
        slices += 1
    return informative, slices


def missing_term(evidence: Evidence, axis: int) -> Finding | None:
    """Every wrong argument is 0 where the truth is not, or per row (axis 1) or per column
    (axis 0) of its 2-D view, the same axis in every draw, its error is a + b · its own
    values: a path through a statistic of the argument (a norm, mean or variance treated
    as a constant) is dropped."""
    wrong = _wrong(evidence)
    if not wrong:
        return None
    what = "row" if axis == 1 else "column"
    informative = False
    lines, summaries = [], []
    for argument in wrong:
        differing = argument.differing
        if np.all((np.abs(argument.hand_written) <= argument.bound)[differing]):
            informative = True
            summaries.append(f"∂E/∂{argument.name} is 0 where the truth is not")
            count = int(differing.sum())
            lines.append(
                f"{count} entr{'y' if count == 1 else 'ies'} of ∂E/∂{argument.name} "
                f"{'is' if count == 1 else 'are'} 0 instead of r"
            )
            continue
        if argument.values is None or np.ndim(argument.values) != 2:
            return None
        found = _along_own_values(argument, axis)
        if found is None:
            return None
        informative |= found[0]
        summaries.append(f"per {what}, the error in ∂E/∂{argument.name} is a + b · {argument.name}")
        lines.append(
            f"{found[1]} {what}{'s' * (found[1] != 1)} fit error = a + b · {argument.name} "
            "(its own values)"
        )
    return Finding(
        informative,
        "; ".join(summaries) + ": a contribution is missing (a path through a statistic "
        "such as a norm or mean, treated as a constant)",
        tuple(lines),
    )


def precision(evidence: Evidence) -> Finding | None:
    """The error is within PRECISION_FACTOR of its bound; or, in a float64 check, within
    the bound with the hand-written side's rounding charged as PRECISION_FACTOR times
    float32's (a part computed in float32): rounding, not logic."""
    worst = evidence.ratio()
    if worst <= PRECISION_FACTOR:
        return Finding(
            True,
            f"the error is {worst:.3g} times its bound: rounding beyond the model, not logic",
            (f"the largest error is {worst:.3g} times its bound",),
        )
    if evidence.dtype != "float64":
        return None
    for argument in evidence.arguments:
        if not argument.wrong:
            continue
        if argument.rounding is None:
            return None
        wider = argument.bound + PRECISION_FACTOR * FLOAT32_OVER_FLOAT64 * argument.rounding
        if not np.all(_close(argument.hand_written, argument.reference, wider)):
            return None
    return Finding(
        True,
        f"the error is {worst:.3g} times its float64 bound, but within what float32 "
        "arithmetic of the same gradient would give: a part computed in float32 (rounding, "
        "not logic)",
        (f"the largest error is {worst:.3g} times its float64 bound",),
    )
