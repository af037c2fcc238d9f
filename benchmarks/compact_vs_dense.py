"""Compact A = Σ_n diag(δ_n) B_n against the J x JP block-diagonal product, explicit and
block by block: time and peak memory as J·P grows, in the same run.

    python benchmarks/compact_vs_dense.py [--units 8 16 32 64 128 256 512 1024 2048]
        [--batch 4] [--repeats 5] [--explicit-cap 2e9]
        [--out reports/bench/compact_vs_dense.json] [--plot docs/bench/compact_vs_dense.png]

For each J (P = J + 1, a dense layer with I = J inputs) the three forms of formula 2 are
evaluated from the same random δ (N x J) and B (N x J x P):

- compact: `gradcheck.core.compact.compact_gradient`, O(N J P) time and O(J P) memory;
- explicit: δ_n times the explicit block-diagonal matrix blockdiag(B_n) (N x J x JP),
  O(N J² P) time and memory; run only while that matrix fits in --explicit-cap bytes;
- blockwise: the same product one diagonal block at a time, δ_:jᵀ B_:j for every unit j
  (`compact.dense_gradient` above its budget), O(N J P).

Times are medians of --repeats runs; peak memory is tracemalloc's peak during one run
(numpy reports its allocations to tracemalloc), above what was allocated before, and is
given beside the bytes of A (J x P float64).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

from gradcheck.core import compact


def measure(function: Any, repeats: int) -> tuple[float, int, Any]:
    tracemalloc.start()
    result = function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), peak, result


def run(units: list[int], batch: int, repeats: int, explicit_cap: float) -> list[dict[str, Any]]:
    rows = []
    for j in units:
        p = j + 1
        rng = np.random.default_rng(j)
        delta = rng.normal(size=(batch, j))
        unit_jacobian = rng.normal(size=(batch, j, p))
        row: dict[str, Any] = {"units": j, "parameters_per_unit": p, "entries": j * p,
                               "a_bytes": j * p * 8}  # fmt: skip
        seconds, peak, reference = measure(
            lambda d=delta, b=unit_jacobian: compact.compact_gradient(d, b), repeats
        )
        row.update(compact_seconds=seconds, compact_peak_bytes=peak)
        seconds, peak, product = measure(
            lambda d=delta, b=unit_jacobian: compact.dense_gradient(d[None], b[None], budget=0)[0][
                0
            ],
            repeats,
        )
        row.update(blockwise_seconds=seconds, blockwise_peak_bytes=peak,
                   blockwise_max_difference=float(np.abs(product - reference).max()))  # fmt: skip
        if batch * j * j * p * 8 <= explicit_cap:
            seconds, peak, product = measure(
                lambda d=delta, b=unit_jacobian: compact.dense_gradient(
                    d[None], b[None], budget=1 << 62
                )[0][0],
                repeats,
            )
            row.update(explicit_seconds=seconds, explicit_peak_bytes=peak,
                       explicit_max_difference=float(np.abs(product - reference).max()),
                       )  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (times, memories) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in ("compact", "blockwise", "explicit"):
        points = [(r["entries"], r[f"{name}_seconds"], r[f"{name}_peak_bytes"])
                  for r in rows if f"{name}_seconds" in r]  # fmt: skip
        if not points:
            continue
        entries, seconds, peaks = zip(*points, strict=True)
        times.loglog(entries, seconds, "o-", label=name)
        memories.loglog(entries, peaks, "o-", label=name)
    entries = [r["entries"] for r in rows]
    memories.loglog(entries, [r["a_bytes"] for r in rows], "k:", label="bytes of A (J x P)")
    times.set_xlabel("J·P")
    times.set_ylabel("seconds (median)")
    times.set_title("formula 2: compact vs block-diagonal product")
    memories.set_xlabel("J·P")
    memories.set_ylabel("peak bytes (tracemalloc)")
    times.legend()
    memories.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+",
                        default=[8, 16, 32, 64, 128, 256, 512, 1024, 2048])  # fmt: skip
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--explicit-cap", type=float, default=2e9,
                        help="bytes: largest explicit block-diagonal matrix to build")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("reports/bench/compact_vs_dense.json"))
    parser.add_argument("--plot", type=Path, default=Path("docs/bench/compact_vs_dense.png"))
    arguments = parser.parse_args()
    rows = run(arguments.units, arguments.batch, arguments.repeats, arguments.explicit_cap)
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps({"batch": arguments.batch, "rows": rows}, indent=2))
    plot(rows, arguments.plot)
    print(f"wrote {arguments.out} and {arguments.plot}")


if __name__ == "__main__":
    main()
