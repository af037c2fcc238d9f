"""Cases per second per core: gradcheck's generators and batched checker against a naive
baseline, both measured in this run on this machine.

The baseline is what a user would write without gradcheck: hypothesis.extra.numpy arrays
for a dense tanh layer and torch.autograd.gradcheck on each example. gradcheck's side
draws small cases of every unit-partitioned layer type and activation with
`gradcheck.strategies.case_stacks` and checks them with all three oracles.

    python benchmarks/throughput.py [--examples 300] [--out reports/bench/throughput.json]

Needs torch for the baseline (pip install torch==2.13.0); without it only gradcheck's
rate is reported. Runs in one process, so the rates are per core.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gradcheck import strategies as gst
from gradcheck.catalogue.checker import Verdict, check_many


def quiet(examples: int) -> settings:
    """Generation only: no database, no deadline, no shrinking (nothing fails)."""
    return settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


def gradcheck_rate(examples: int) -> dict[str, float]:
    counted = {"cases": 0, "mismatches": 0}

    @quiet(examples)
    @given(gst.case_stacks(min_size=32, max_size=64))
    def run(stack):
        results = check_many(stack)
        counted["cases"] += len(results)
        counted["mismatches"] += sum(r.verdict is Verdict.MISMATCH for r in results)

    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    return {
        "cases": counted["cases"],
        "seconds": seconds,
        "mismatches": counted["mismatches"],
        "cases_per_second": counted["cases"] / seconds,
    }


def baseline_rate(examples: int) -> dict[str, float] | None:
    try:
        import torch
    except ImportError:
        return None
    counted = {"cases": 0}
    values = st.floats(-3, 3, allow_nan=False, allow_infinity=False)

    @st.composite
    def dense_cases(draw):
        n, i, j = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
        return (
            draw(arrays(np.float64, (n, i), elements=values)),
            draw(arrays(np.float64, (j, i), elements=values)),
            draw(arrays(np.float64, (j,), elements=values)),
        )

    @quiet(examples)
    @given(dense_cases())
    def run(case):
        z, w, b = (torch.tensor(a, requires_grad=True) for a in case)
        torch.autograd.gradcheck(lambda z, w, b: torch.tanh(z @ w.T + b), (z, w, b))
        counted["cases"] += 1

    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    return {
        "cases": counted["cases"],
        "seconds": seconds,
        "cases_per_second": counted["cases"] / seconds,
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300, help="hypothesis examples per side")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/throughput.json"))
    arguments = parser.parse_args()
    ours = gradcheck_rate(arguments.examples)
    baseline = baseline_rate(arguments.examples)
    result = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "gradcheck": ours,
        "baseline": baseline,
        "ratio": None
        if baseline is None
        else ours["cases_per_second"] / baseline["cases_per_second"],
    }
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(result, indent=2))
    print(
        f"gradcheck: {ours['cases_per_second']:.0f} cases/s ({ours['cases']} cases, "
        f"{ours['mismatches']} mismatches)"
    )
    if baseline is not None:
        print(
            f"baseline (hypothesis arrays + torch.autograd.gradcheck): "
            f"{baseline['cases_per_second']:.0f} cases/s"
        )
        print(f"ratio: {result['ratio']:.1f}x")
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()
