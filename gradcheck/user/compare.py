"""Holding a user's gradients against the references, and saying what was found.

`compare` measures one gradient against one reference entry by entry (error / bound, the
worst entries); the `*_comparison` functions build the comparisons of each oracle
(finite differences or, at a kink, the one-sided interval; the dense block-diagonal
product of a unit-Jacobian layer; the compact identity δ ⊙ B of a unit-partitioned
parameter, with the structure analysis behind it); `verdict_of` writes the message.

This module is free of hypothesis and pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from gradcheck.core import compact
from gradcheck.core.comparison import compare as shared_compare
from gradcheck.core.comparison import disagreement, worst_shown
from gradcheck.core.probes import projections
from gradcheck.core.results import Comparison, Verdict
from gradcheck.core.tolerance import gamma, summation_bound
from gradcheck.errors import CoupledLayerError
from gradcheck.user.calls import call_user
from gradcheck.user.differences import ArgumentDifferences
from gradcheck.user.oracles import structure, structure_by_halves
from gradcheck.user.types import UserCase, UserLayer

#: Entries shown per failing gradient in a mismatch message.
SHOWN_ENTRIES = 3

# ---- comparisons -----------------------------------------------------------------------------


def compare(
    oracle: str,
    target: str,
    method: str,
    hand_written: np.ndarray,
    reference: np.ndarray,
    bound: np.ndarray,
    axis_names: Sequence[str],
    seconds: float,
) -> tuple[Comparison, list[tuple[dict[str, int], float, float, float]]]:
    """One Comparison (the catalogue's `compare` on a stack of one), and the worst
    entries a message shows: (entry, hand-written, reference, ratio)."""
    hand = np.asarray(hand_written, dtype=np.float64)
    names = tuple(axis_names) if hand.ndim else ()
    limit = np.broadcast_to(np.asarray(bound, dtype=np.float64), hand.shape)
    (comparison,) = shared_compare(
        oracle, target, method, hand[None], np.asarray(reference)[None], limit[None], seconds,
        entry_names=names,
    )  # fmt: skip
    if not comparison.worst_ratio > 1.0:  # no entry over its bound: none to show
        return comparison, []
    return comparison, worst_shown(hand, reference, limit, names, SHOWN_ENTRIES)


@dataclass
class Findings:
    comparisons: list[Comparison] = field(default_factory=list)
    shown: dict[int, list[tuple[dict[str, int], float, float, float]]] = field(default_factory=dict)
    structure: dict[str, str] = field(default_factory=dict)
    compact_identity: dict[str, str] = field(default_factory=dict)

    def add(
        self, comparison: tuple[Comparison, list[tuple[dict[str, int], float, float, float]]]
    ) -> None:
        self.comparisons.append(comparison[0])
        if comparison[1]:
            self.shown[len(self.comparisons) - 1] = comparison[1]


def differences_comparison(
    fd: ArgumentDifferences,
    at_kink: bool,
    g: np.ndarray,
    hand_error: np.ndarray,
    name: str,
    axes: Sequence[str],
) -> tuple[Comparison, list[tuple[dict[str, int], float, float, float]]]:
    g64 = g.astype(np.float64)
    if fd.directions is not None:  # compared through ⟨g, w_q⟩ along each probe
        hand, hand_bound = projections(fd.directions, g64, hand_error, fd.x)
        entry_names: Sequence[str] = ("probe",)
    else:
        hand, hand_bound, entry_names = g64, np.broadcast_to(hand_error, g.shape), axes
    # Any subgradient: between the one-sided derivatives of E, within their slack. The
    # catalogue tests B output by output instead (`gradcheck.catalogue.stacked`), which
    # needs units that can be moved one at a time; a user's forward is a black box.
    if at_kink:
        low, high = np.minimum(fd.right, fd.left), np.maximum(fd.right, fd.left)
        slack = np.maximum(fd.right_slack, fd.left_slack)
        nearest = np.clip(hand, low, high)
        method = "one-sided differences (subgradient)"
        return compare(
            "finite-differences", name, method, hand, nearest, slack + hand_bound, entry_names, 0.0
        )
    return compare(
        "finite-differences",
        name,
        fd.method,
        hand,
        fd.gradient,
        hand_bound + fd.error,
        entry_names,
        0.0,
    )


def dense_comparison(
    layer: UserLayer, case: UserCase, name: str, axes: Sequence[str]
) -> tuple[Comparison, list[tuple[dict[str, int], float, float, float]]]:
    """The seed's identity on the user's own B: A = δ ⊙ B against the block-diagonal
    product δ · blockdiag(B); the two differ only by the order of their sums."""
    assert layer.unit_jacobian is not None
    unit_jacobian = call_user(
        layer.unit_jacobian, case.arguments, "unit_jacobian", layer.argument_names, case
    )
    unit_jacobian = np.asarray(unit_jacobian)
    gradient = compact.compact_gradient(case.dout, unit_jacobian)
    product, method = compact.dense_gradient(case.dout, unit_jacobian)
    bound = summation_bound(case.dout, unit_jacobian)
    return compare(
        "dense", name, f"block-diagonal product ({method})", gradient, product, bound, axes, 0.0
    )


def structure_comparison(
    layer: UserLayer,
    case: UserCase,
    k: int,
    fd: ArgumentDifferences,
    g: np.ndarray,
    hand_error: np.ndarray,
    dout: np.ndarray,
    outputs: np.ndarray,
    findings: Findings,
    moved: Callable[[np.ndarray], np.ndarray],
) -> None:
    """Structure of parameter k and, where it is unit-partitioned, the compact identity:
    the hand-written gradient against δ ⊙ B with B the per-unit blocks of the
    finite-difference Jacobian. moved(variant) is the float64 forward with parameter k
    replaced: a parameter too large for the Jacobian has its structure measured by
    `structure_by_halves`, and its compact identity is then not compared entry by
    entry (B would cost four evaluations per entry of one unit).

    "Partitioned" rests on every cross-unit entry of the Jacobian being zero within its
    own error, which a layer with small cross-unit terms can meet (an LSTM's W_c reaches
    every unit through h at later steps). δ ⊙ B leaves those entries out, so its bound
    carries them: Σ_(o outside e's unit) |δ_o| (|J_oe| + err_oe), beside the error of the
    blocks it sums, Σ_(o in e's unit) |δ_o| err_oe + γ_R Σ |δ_o J_oe| (R rows summed)."""
    name = layer.argument_names[k]
    unit = layer.signature.unit_name
    if unit is None:
        findings.structure[name] = "undetermined (the output has no unit axis)"
        return
    candidates = [a for a, dim in enumerate(layer.signature.inputs[k]) if dim == unit]
    if fd.jacobian is None or fd.jacobian_error is None:
        verdict, axis = structure_by_halves(moved, fd.x, outputs, candidates)
    else:
        verdict, axis = structure(fd.jacobian, fd.jacobian_error, g.shape, candidates)
    if verdict == "shared" and layer.unit_jacobian is not None:
        raise CoupledLayerError(
            f"{layer.name}: output unit j depends on parameters of other units (θ is not "
            "unit-partitioned along its axis 0), so the compact form A = δ ⊙ B is not its "
            "gradient; check this layer with check_backward instead\n" + case.describe()
        )
    if verdict != "partitioned" or axis is None:
        findings.structure[name] = verdict
        return
    findings.structure[name] = f"partitioned along axis {axis}"
    if fd.jacobian is None or fd.jacobian_error is None:
        findings.structure[name] += " (halves of the units moved; too large for δ ⊙ B)"
        return
    units = outputs.shape[-1]
    owner = np.indices(g.shape)[axis].reshape(-1)  # the unit each entry belongs to
    jacobian = fd.jacobian.reshape(-1, units, owner.size)  # (rows, units, entries)
    jacobian_error = fd.jacobian_error.reshape(jacobian.shape)
    weights = dout.reshape(-1, units)  # δ per (row, unit)
    rows = np.arange(owner.size)
    blocks = jacobian[:, owner, rows]  # B: (rows, entries), entry e's own unit's output
    blocks_error = jacobian_error[:, owner, rows]
    own = weights[:, owner]
    compact_form = np.sum(own * blocks, axis=0).reshape(g.shape)
    error = np.sum(np.abs(own) * blocks_error, axis=0) + gamma(
        weights.shape[0], np.float64
    ) * np.sum(np.abs(own * blocks), axis=0)
    # The cross-unit entries δ ⊙ B drops: zero within their error, but not exactly zero.
    crossing = np.abs(jacobian) + jacobian_error  # (rows, units, entries)
    crossing[:, owner, rows] = 0.0
    error = error + np.einsum("ru,rue->e", np.abs(weights), crossing)
    comparison = compare(
        "dense",
        name,
        "compact identity δ ⊙ B (B: per-unit blocks by finite differences)",
        g,
        compact_form,
        hand_error + error.reshape(g.shape),
        layer.signature.axis_names(k),
        0.0,
    )
    findings.add(comparison)
    findings.compact_identity[name] = "holds" if comparison[0].passed else "fails"


def verdict_of(
    layer: UserLayer,
    findings: Findings,
    ran: Sequence[str],
    skipped: Mapping[str, str],
    models: Mapping[str, str],
) -> tuple[Verdict, str]:
    oracles = ", ".join(ran)
    if skipped:
        oracles += " (" + "; ".join(f"{k} skipped: {v}" for k, v in skipped.items()) + ")"
    model = "; ".join(f"{side}: {text}" for side, text in models.items())
    failures = [i for i, c in enumerate(findings.comparisons) if not c.passed]
    if not failures:
        closest = max(findings.comparisons, key=lambda c: c.worst_ratio, default=None)
        detail = ""
        if closest is not None:
            detail = (
                f" (closest: {closest.oracle} on ∂E/∂{closest.target} at "
                f"{closest.worst_ratio:.2g} of its bound)"
            )
        unresolved = "".join(
            f"\nnot resolved by {c.oracle}: {c.unbounded_entries} entries of ∂E/∂{c.target} "
            f"({c.method})"
            for c in findings.comparisons
            if c.unbounded_entries
        )
        return Verdict.PASS, (
            f"pass: {len(findings.comparisons)} comparisons agree{detail}{unresolved}\n"
            f"oracles: {oracles}\nerror model: {model}"
        )
    order = {name: position for position, name in enumerate(layer.argument_names)}
    failures.sort(
        key=lambda i: (
            order.get(findings.comparisons[i].target, 0),
            -findings.comparisons[i].worst_ratio,
        )
    )
    first = findings.comparisons[failures[0]]
    position = order.get(first.target, 0)
    lines = [
        f"mismatch: the gradient of {first.target} (argument {position} of forward) disagrees "
        f"with {first.oracle} ({first.method}) {disagreement(first)}",
    ]
    wrong = sorted(
        {findings.comparisons[i].target for i in failures}, key=lambda t: order.get(t, 0)
    )
    lines.append(f"wrong gradients: {', '.join(wrong)}; oracles: {oracles}")
    lines.append(f"error model: {model}")
    for i in failures:
        comparison = findings.comparisons[i]
        entries = findings.shown.get(i, [])
        if not entries:
            continue
        lines.append(f"worst entries of ∂E/∂{comparison.target} against {comparison.oracle}:")
        for entry, hand, reference, ratio in entries:
            at = ", ".join(f"{a} {v}" for a, v in entry.items()) or "scalar"
            lines.append(
                f"  at {at}: hand-written {hand:.9g}, reference {reference:.9g}, "
                f"error/bound {ratio:.3g}"
            )
    return Verdict.MISMATCH, "\n".join(lines)
