"""Whole networks: how fast they are checked, how often a correct one comes near its
bound, and how the bounds widen with depth, all measured in this run on this machine.

Draws correct networks with `gradcheck.strategies.network_stacks` (stacks of one
architecture) for each dtype and depth 1 … max-depth, checks them with all three
oracles, and reports per dtype and depth: the verdicts (a mismatch on a correct network
is a false alarm), the largest and median error/bound ratio over every comparison, and
the median relative bound of δ⁰ against autograd (how much rounding the error model
allows the propagated input gradient, relative to its size). The rate of stacked checks
is compared with checking the same networks one by one.

    python benchmarks/networks.py [--stacks 40] [--max-depth 6] [--out reports/bench/networks.json]

Runs in one process, so the rates are per core.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as fixed_seed

from gradcheck import strategies as gst
from gradcheck.catalogue.checker import Verdict
from gradcheck.catalogue.network_checker import NetworkResult, check_network, check_networks


def draw(dtype: str, depth: int, stacks: int, seed: int) -> list[list[Any]]:
    drawn: list[list[Any]] = []

    @fixed_seed(seed)
    @settings(max_examples=stacks, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(gst.network_stacks(min_layers=depth, max_layers=depth, dtypes=(dtype,),
                              min_size=8, max_size=16))  # fmt: skip
    def collect(stack: list[Any]) -> None:
        drawn.append(stack)

    collect()
    return drawn


def summarise(results: list[NetworkResult]) -> dict[str, Any]:
    verdicts = Counter(str(r.verdict) for r in results)
    ratios = [c.worst_ratio for r in results if r.passed for c in r.comparisons]
    relative = [
        c.worst_bound / abs(c.reference)
        for r in results
        if r.passed
        for c in r.layers[0].comparisons
        if c.oracle == "autograd" and c.target == "inputs" and c.reference != 0
    ]
    return {
        "networks": len(results),
        "verdicts": dict(verdicts),
        "false_alarms": verdicts.get(str(Verdict.MISMATCH), 0),
        "largest_ratio": max(ratios, default=0.0),
        "median_ratio": float(np.median(ratios)) if ratios else 0.0,
        "median_relative_bound_of_delta0": float(np.median(relative)) if relative else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=40, help="stacks per dtype and depth")
    parser.add_argument("--max-depth", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/bench/networks.json"))
    arguments = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)

    rows, stacked_seconds, stacked_count, single_seconds, single_count = [], 0.0, 0, 0.0, 0
    for dtype in ("float64", "float32"):
        for depth in range(1, arguments.max_depth + 1):
            stacks = draw(dtype, depth, arguments.stacks, arguments.seed)
            start = time.perf_counter()
            results = [result for stack in stacks for result in check_networks(stack)]
            stacked_seconds += time.perf_counter() - start
            stacked_count += len(results)
            start = time.perf_counter()
            for network in stacks[0]:  # the same networks one at a time
                check_network(network)
            single_seconds += time.perf_counter() - start
            single_count += len(stacks[0])
            row = {"dtype": dtype, "depth": depth, **summarise(results)}
            rows.append(row)
            print(
                f"{dtype} depth {depth}: {row['networks']} networks, verdicts {row['verdicts']}, "
                f"largest error/bound {row['largest_ratio']:.3g}, median "
                f"{row['median_ratio']:.2g}, median relative bound of δ⁰ "
                f"{row['median_relative_bound_of_delta0']:.3g}"
            )
    rates = {
        "stacked_networks_per_second": stacked_count / stacked_seconds,
        "single_networks_per_second": single_count / single_seconds,
    }
    print(
        f"{stacked_count} networks; stacked {rates['stacked_networks_per_second']:.0f}/s, "
        f"one by one {rates['single_networks_per_second']:.0f}/s per core"
    )
    report = {"machine": platform.platform(), "python": platform.python_version(),
              "arguments": {k: str(v) for k, v in vars(arguments).items()},
              "rows": rows, "rates": rates}  # fmt: skip
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
