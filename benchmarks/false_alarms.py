"""False alarms per 100 000 cases: the catalogue campaign and the magnitude sweep (issue 14).

    python benchmarks/false_alarms.py [--examples 200] [--stacks 4] [--seed 14]
        [--workers 2] [--out reports/bench/false_alarms.json]

The catalogue's hand-written gradients are correct, so every mismatch gradcheck reports on
them is a false alarm. Two populations are counted:

- the campaign: every cell of `gradcheck run` (layer type × activation × dtype, coupled
  layers and networks included), `--examples` drawn cases each, as the command runs them
  (`gradcheck.campaign.run_cells`, with its seed, without an example database). A cell
  stops counting at its first mismatch (the search then shrinks it), so each cell with
  a failure counts it once;
- the magnitude sweep (tests/sweep.py): every unit-partitioned cell, `--stacks` × 4 drawn
  cases each, with θ, z, δ and all three scaled by 10^k (k in -12 … 12 for float64,
  -6 … 6 for float32).

For each false alarm found, the entry the mismatch names is differenced again in x86's
80-bit long double (u = 5.4e-20, Richardson at h, h/2, h/4 on the layer's forward run in
np.longdouble, written here), and the script prints whether the hand-written value or
gradcheck's reference is the one it agrees with: the independent word on which side is
wrong. Prints the figures and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sweep import sweep_cell, unit_partitioned_cells  # the tests' own helper

from gradcheck.campaign import CellOutcome, CellSpec, cells, run_cells
from gradcheck.catalogue.activations import resolve_activation
from gradcheck.catalogue.layers import identity_if_unused, resolve_layer_type
from gradcheck.core.results import Verdict

PER = 100_000


def campaign(examples: int, seed: int, workers: int) -> dict[str, Any]:
    specs = cells()
    totals = {"cases": 0, "mismatches": 0, "cells": len(specs), "failing_cells": []}

    def fold(spec: CellSpec, outcome: CellOutcome) -> None:
        cell = outcome.cell
        totals["cases"] += cell.examples
        totals["mismatches"] += cell.verdicts.get("mismatch", 0)
        for failure in outcome.failures:
            if failure.verdict == "mismatch":
                totals["failing_cells"].append({"cell": spec.key, "message": failure.message})

    run_cells(specs, examples=examples, seed=seed, database=None, workers=workers, on_outcome=fold)
    return totals


def sweep(stacks: int, seed: int) -> tuple[dict[str, Any], list[Any]]:
    totals: dict[str, Any] = {"cases": 0, "mismatches": 0, "unnamed": 0, "cells": 0}
    alarms = []
    for spec in unit_partitioned_cells():
        totals["cells"] += 1
        for found in sweep_cell(spec, stacks=stacks, seed=seed):
            totals["cases"] += 1
            if found.result.verdict is Verdict.MISMATCH:
                totals["mismatches"] += 1
                alarms.append((spec, found))
            elif found.problem is not None:
                totals["unnamed"] += 1
    return totals, alarms


def longdouble_derivative(case: Any, target: str, entry: dict[str, int]) -> float:
    """∂E/∂(entry) of E = Σ δ f(z; θ) by central differences in np.longdouble at h, h/2,
    h/4 and two Richardson steps, on the layer's forward run in long double."""
    layer = resolve_layer_type(case.layer_type)
    phi = identity_if_unused(layer, resolve_activation(case.activation))
    z, theta, delta = (np.asarray(a, dtype=np.longdouble) for a in (case.z, case.theta, case.delta))
    moved_name = "theta" if target == "parameters" else "z"
    index = tuple(entry.values())

    def energy(step: Any) -> Any:
        arrays = {"z": z.copy(), "theta": theta.copy()}
        arrays[moved_name][index] += step
        return np.sum(delta * np.asarray(layer.forward(arrays["z"], arrays["theta"], phi)))

    point = (theta if moved_name == "theta" else z)[index]
    h = np.longdouble(np.cbrt(float(np.finfo(np.longdouble).eps))) * max(1, abs(point))
    d = [(energy(s) - energy(-s)) / (2 * s) for s in (h, h / 2, h / 4)]
    r1 = [(4 * d[k + 1] - d[k]) / 3 for k in range(2)]
    return float((16 * r1[1] - r1[0]) / 15)


def exact_products(case: Any, method: str, entry: dict[str, int]) -> Fraction:
    """A_jp = Σ_n δ_nj B_njp exactly (Fraction) from the case's own B, or from its rank-one
    factors u, v for the outer product: the dense oracle compares two roundings of it."""
    layer = resolve_layer_type(case.layer_type)
    phi = identity_if_unused(layer, resolve_activation(case.activation))
    z, theta, delta = (np.asarray(a) for a in (case.z, case.theta, case.delta))
    j, p = entry["unit"], entry["parameter"]
    if method == "rank-one outer product" and layer.rank_one is not None:
        u, v = (np.asarray(a) for a in layer.rank_one(z, theta, phi))
        terms = [Fraction(float(delta[n, j])) * Fraction(float(u[n, j])) * Fraction(float(v[n, p]))
                 for n in range(len(delta))]  # fmt: skip
    else:
        b = np.asarray(layer.unit_jacobian(z, theta, phi))
        terms = [
            Fraction(float(delta[n, j])) * Fraction(float(b[n, j, p])) for n in range(len(delta))
        ]
    return sum(terms, Fraction(0))


def confirm(spec: CellSpec, found: Any) -> str:
    failing = [c for c in found.result.comparisons if not c.passed]
    if not failing:
        return "no failing comparison"
    worst = max(failing, key=lambda c: c.worst_ratio)
    if "probe" in worst.worst_entry:
        return "a probe: no entry to difference"
    if worst.oracle == "dense":  # two roundings of one product: held against it exactly
        exact = exact_products(found.case, worst.method, dict(worst.worst_entry))
        eta = float(np.finfo(np.asarray(found.case.z).dtype).smallest_subnormal)
        apart = [
            abs(Fraction(value) - exact) / Fraction(eta)
            for value in (worst.hand_written, worst.reference)
        ]
        return (
            f"exact product {float(exact):.12g}; hand-written {worst.hand_written:.12g} and "
            f"{worst.method} {worst.reference:.12g} are {float(apart[0]):.3g} and "
            f"{float(apart[1]):.3g} smallest subnormals from it: two roundings of one correct "
            "product, further apart than the bound allowed"
        )
    exact = longdouble_derivative(found.case, worst.target, dict(worst.worst_entry))
    hand, reference = worst.hand_written, worst.reference
    side = "hand-written" if abs(hand - exact) <= abs(reference - exact) else "reference"
    return (
        f"long double: {exact:.12g}; hand-written {hand:.12g}, reference {reference:.12g} "
        f"({worst.oracle}): the {side} is the one it agrees with"
    )


def per(count: int, cases: int) -> float:
    return PER * count / cases if cases else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="cases per campaign cell")
    parser.add_argument("--stacks", type=int, default=4, help="drawn stacks per sweep cell")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="reports/bench/false_alarms.json")
    parser.add_argument("--sweep-only", action="store_true", help="skip the campaign")
    parser.add_argument("--shown", type=int, default=20, help="false alarms confirmed")
    args = parser.parse_args()

    started = time.perf_counter()
    found_campaign: dict[str, Any] = {"cases": 0, "mismatches": 0, "cells": 0, "failing_cells": []}
    if not args.sweep_only:
        found_campaign = campaign(args.examples, args.seed, args.workers)
    campaign_seconds = time.perf_counter() - started
    started = time.perf_counter()
    found_sweep, alarms = sweep(args.stacks, args.seed)
    sweep_seconds = time.perf_counter() - started

    print(f"campaign: {found_campaign['cases']} cases in {found_campaign['cells']} cells, "
          f"{found_campaign['mismatches']} false alarms = "
          f"{per(found_campaign['mismatches'], found_campaign['cases']):.3g} per 100 000 "
          f"({campaign_seconds:.0f} s)")  # fmt: skip
    for failing in found_campaign["failing_cells"]:
        print(f"  {failing['cell']}: {failing['message'].splitlines()[0][:200]}")
    print(f"sweep: {found_sweep['cases']} cases in {found_sweep['cells']} cells, "
          f"{found_sweep['mismatches']} false alarms = "
          f"{per(found_sweep['mismatches'], found_sweep['cases']):.3g} per 100 000; "
          f"{found_sweep['unnamed']} other verdicts naming no cause "
          f"({sweep_seconds:.0f} s)")  # fmt: skip
    for spec, found in alarms[: args.shown]:
        print(f"  {spec.key}, {found.scaled} × 1e{found.exponent}: {confirm(spec, found)}")
    cases = found_campaign["cases"] + found_sweep["cases"]
    mismatches = found_campaign["mismatches"] + found_sweep["mismatches"]
    print(f"both: {mismatches} false alarms in {cases} cases = {per(mismatches, cases):.3g} "
          "per 100 000")  # fmt: skip
    record = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "arguments": vars(args),
        "campaign": {**found_campaign, "seconds": campaign_seconds},
        "sweep": {**found_sweep, "seconds": sweep_seconds},
        "false_alarms_per_100000": per(mismatches, cases),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
