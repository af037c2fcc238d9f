"""Test-only builders for the report tests: real CheckResults of a small campaign.

No tests here. Results come from `gradcheck.check` on cases built like tests/cases.py
does: correct layers, a coupled control, a planted mutant (a real mismatch), a case on a
kink and invalid input; each is checked once per process and reused.
"""

from __future__ import annotations

import functools

import numpy as np
from cases import random_case
from mutants import MUTANTS

from gradcheck import Case, CheckResult, check
from gradcheck.catalogue.layers import LayerType
from gradcheck.report import Cell, CostPoint, Failure, Report

MUTANT = next(m for m in MUTANTS if m.name == "compaction sign flipped")
SETTINGS = {
    "command": "gradcheck run --examples 2 --seed 0",
    "seed": 0,
    "examples_per_cell": 2,
    "layer_types": ["dense", "rbf", "softmax_dense"],
    "activations": ["tanh", "relu"],
    "dtypes": ["float64", "float32"],
    "oracles": ["dense", "autograd", "finite-differences"],
    "shard": None,
    "workers": 1,
    "target": None,
}
ENVIRONMENT = {
    "python": "3.11.7",
    "numpy": "2.0.0",
    "autograd": "1.7.0",
    "hypothesis": "6.100.0",
    "gradcheck": "0.1.0",
    "platform": "Linux-test",
}


def _cases() -> list[Case]:
    cases = []
    for dtype in (np.float64, np.float32):
        for seed in range(2):
            cases.append(random_case("dense", "tanh", dtype=dtype, seed=seed))
            cases.append(random_case("rbf", dtype=dtype, seed=seed))
        cases.append(random_case("softmax_dense", dtype=dtype))
        cases.append(MUTANT.case(dtype))
    # On relu's kink: unit 0's pre-activation 2·1 + (-1)·2 + 0 is exactly 0.
    cases.append(
        Case(
            layer_type="dense",
            activation="relu",
            z=np.array([[1.0, 2.0]]),
            theta=np.array([[2.0, -1.0, 0.0], [1.0, 1.0, 0.5]]),
            delta=np.array([[0.7, -1.3]]),
        )
    )
    bad = random_case("dense", "relu", seed=3)
    z = np.array(bad.z)
    z[0, 1] = np.nan
    cases.append(Case(layer_type="dense", activation="relu", z=z, theta=bad.theta, delta=bad.delta))
    return cases


@functools.lru_cache(maxsize=1)
def checked() -> tuple[tuple[Case, CheckResult], ...]:
    """Every case with its result (checked once per test process)."""
    return tuple((case, check(case)) for case in _cases())


def key_of(case: Case, result: CheckResult) -> tuple[str, str, str]:
    """The cell a result belongs to, also for a result without a case summary."""
    if result.case is not None:
        return (result.case.layer_type, result.case.activation, result.case.dtype)
    layer = case.layer_type.name if isinstance(case.layer_type, LayerType) else case.layer_type
    return (str(layer), str(case.activation), np.asarray(case.z).dtype.name)


def reproduction(case: Case) -> str:
    layer = case.layer_type.name if isinstance(case.layer_type, LayerType) else case.layer_type
    arrays = ", ".join(
        f"{name}=np.array({np.asarray(getattr(case, name)).tolist()!r})"
        for name in ("z", "theta", "delta")
    )
    return (
        "import numpy as np\nimport gradcheck\n\n"
        f"case = gradcheck.Case(layer_type={layer!r}, activation={case.activation!r}, {arrays})\n"
        "print(gradcheck.check(case).message)\n"
    )


def build_report(
    pairs: tuple[tuple[Case, CheckResult], ...] | None = None, *, shard: str | None = None
) -> Report:
    """A report of the given (case, result) pairs, as a campaign would fold them."""
    pairs = checked() if pairs is None else pairs
    report = Report(
        created="2024-05-01T12:00:00Z",
        environment=dict(ENVIRONMENT),
        settings={**SETTINGS, "shard": shard},
    )
    for case, result in pairs:
        layer_type, activation, dtype = key_of(case, result)
        report.cell(layer_type=layer_type, activation=activation, dtype=dtype).add(result)
        if result.verdict.value in ("mismatch", "invalid-input"):
            report.failures.append(
                Failure.from_check_result(
                    result,
                    z=case.z,
                    theta=case.theta,
                    delta=case.delta,
                    reproduction=reproduction(case),
                    diagnosis="sign" if result.verdict.value == "mismatch" else None,
                    layer_type=layer_type,
                    activation=activation,
                )
            )
    return report


def cost_points() -> list[CostPoint]:
    """Cost points shaped like real measurements: compact O(J·P), dense O(J²·P)."""
    points = []
    for units in (2, 8, 32, 128):
        parameters = 9
        points.append(
            CostPoint(
                units=units,
                parameters_per_unit=parameters,
                batch=4,
                compact_seconds=2e-6 * units * parameters,
                dense_seconds=3e-7 * units * units * parameters if units <= 32 else None,
                compact_bytes=8 * units * parameters,
                dense_bytes=8 * units * units * parameters if units <= 32 else None,
            )
        )
    return points


def full_report() -> Report:
    """The campaign's report with cost points and a finished status."""
    report = build_report()
    report.cost = cost_points()
    report.status = "complete"
    return report


def hostile_cell() -> Cell:
    """A cell whose names came from hostile user code."""
    return Cell(layer_type="<script>alert(1)</script>", activation="a|b", dtype="float64")
