"""Scale: a full gradcheck of dense tanh layers from 16x16 to 4096x4096 (float64) beside
torch.autograd.gradcheck in fast and slow mode on the same function, in the same run.

    python benchmarks/scale.py [--sizes 16 64 256 1024 2048 4096] [--repeats 3]
        [--slow-cap 60] [--out reports/bench/scale.json] [--plot docs/bench/scale.png]

The layer is f(z; θ) = tanh(W z + b) with I = J = size, θ = [W, b] (J x (I + 1)), a batch of
N = 4 examples and a random upstream gradient δ; torch checks the same function
tanh(z Wᵀ + b) of the same (z, W, b) in float64. Times are medians of --repeats runs,
gradcheck and torch interleaved so that both see the same load; only the ratios mean
anything on a shared machine. torch's slow mode runs while its predicted time (the last
measured one scaled by n², as it differentiates every entry through the whole layer)
stays under --slow-cap seconds.

Peak memory is measured in a fresh child process per tool and size, from the kernel's
resident-set high-water mark (VmHWM, reset through /proc/self/clear_refs just before the
check; falls back to ru_maxrss without a reset): torch allocates outside Python, so
tracemalloc would not see it, and RSS treats both tools alike. For gradcheck the child
also reports tracemalloc's peak (numpy's own allocations). Both are given above the
memory in use before the check (inputs included there), as a multiple of θ's bytes.

Beside each full check: its seconds per stage (`CheckResult.seconds`), the same check
with one probe (finite_differences="probes", probes=1: torch's fast mode makes one random
projection), and the least any check of the layer must spend, the catalogue's
hand-written B, ∂f/∂z, A and δ_in on plain arrays with no bound and no oracle.

Also measured, in the same run:
- power: a 1024 x 1024 layer whose hand-written B has one wrong entry (0.1 % off); is it
  caught by gradcheck, and by torch's fast mode on a torch.autograd.Function with the
  same bug in its backward;
- columns: at 256 x 256, the exact column-compressed finite differences (gradcheck with
  the finite-differences oracle alone, 4(P + I) evaluations) against full finite
  differences (each of the n entries of θ perturbed alone, 4n evaluations of the layer).
  Full differences take minutes there: by default they are timed on --full-entries
  entries and scaled to all n (each entry costs the same; --full-entries 0 times all).

torch is only for this script: pip install torch==2.13.0 (CPU). Without it the torch
columns are skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from resident import in_child, resident_peak

BATCH = 4
#: torch's slow mode is tried without an earlier measurement only up to this many parameters.
SLOW_FIRST = 5000


def case_arrays(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(BATCH, size))
    theta = rng.normal(size=(size, size + 1)) / np.sqrt(size)
    delta = rng.normal(size=(BATCH, size))
    return z, theta, delta


def gradcheck_run(size: int, layer: Any = "dense", **options: Any) -> Any:
    from gradcheck import Case, check

    z, theta, delta = case_arrays(size)
    case = Case(layer_type=layer, activation="tanh", z=z, theta=theta, delta=delta)
    start = time.perf_counter()
    result = check(case, **options)
    return time.perf_counter() - start, result


def plain_hand_written_seconds(size: int) -> float:
    """The least any check of this layer must spend: the catalogue's hand-written B and
    ∂f/∂z, A and δ_in on plain arrays, in the blocks the large path uses, with no error
    bound and no oracle."""
    from gradcheck.catalogue.activations import ACTIVATIONS
    from gradcheck.catalogue.large import make_plan
    from gradcheck.catalogue.layers import LAYER_TYPES
    from gradcheck.core import compact

    z, theta, delta = case_arrays(size)
    phi, dense = ACTIVATIONS["tanh"], LAYER_TYPES["dense"]
    plan = make_plan(batch=BATCH, inputs=size, units=size, parameters=size + 1)
    start = time.perf_counter()
    for first in range(0, size, plan.block_units):
        rows = slice(first, first + plan.block_units)
        compact.compact_gradient(delta[:, rows], dense.unit_jacobian(z, theta[rows], phi))
        compact.input_gradient(delta[:, rows], dense.input_jacobian(z, theta[rows], phi))
    return time.perf_counter() - start


def torch_inputs(size: int) -> tuple[Any, ...]:
    import torch

    z, theta, _ = case_arrays(size)
    return (
        torch.tensor(z, requires_grad=True),
        torch.tensor(theta[:, :-1], requires_grad=True),
        torch.tensor(theta[:, -1], requires_grad=True),
    )


def dense_tanh(z: Any, w: Any, b: Any) -> Any:
    import torch

    return torch.tanh(z @ w.T + b)


def torch_run(size: int, fast: bool, function: Any = dense_tanh) -> tuple[float, bool]:
    import torch

    inputs = torch_inputs(size)
    start = time.perf_counter()
    try:
        passed = torch.autograd.gradcheck(function, inputs, fast_mode=fast)
    except torch.autograd.gradcheck.GradcheckError:
        passed = False
    return time.perf_counter() - start, bool(passed)


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ---- memory, in a child process ---------------------------------------------------------------


def child(tool: str, size: int) -> dict[str, Any]:
    """Peak memory of one check above what was in use before it (bytes)."""
    import tracemalloc

    if tool.startswith("torch"):
        import torch

        inputs = torch_inputs(size)
    else:
        import gradcheck.catalogue.large  # noqa: F401

        z, theta, delta = case_arrays(size)
    traced = None
    with resident_peak() as found:
        if tool == "gradcheck":
            from gradcheck import Case, check

            tracemalloc.start()
            check(Case(layer_type="dense", activation="tanh", z=z, theta=theta, delta=delta))
            traced = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        else:
            import torch

            torch.autograd.gradcheck(dense_tanh, inputs, fast_mode=tool == "torch-fast")
    return {**found, "tracemalloc_peak_bytes": traced}


def memory(tool: str, size: int) -> dict[str, Any] | None:
    return in_child(__file__, tool, size)


# ---- power: one wrong entry of B --------------------------------------------------------------

ENTRY = (1, 3, 5)  # (example n, unit j, parameter p) of the wrong entry of B
FACTOR = 1.001  # B[n, j, p] is 0.1 % off


def mutant_layer(marker: np.ndarray) -> Any:
    """The dense layer with B[n, j, p] multiplied by FACTOR for the unit whose θ row is
    `marker` (found by content, so the bug follows the unit into any block)."""
    from gradcheck import LAYER_TYPES

    dense = LAYER_TYPES["dense"]
    n, _, p = ENTRY

    def unit_jacobian(z: Any, theta: Any, phi: Any) -> Any:
        b = dense.unit_jacobian(z, theta, phi)
        rows = np.all(np.asarray(getattr(theta, "value", theta)) == marker, axis=-1)
        scale = np.ones(b.shape)
        scale[..., n, rows, p] = FACTOR
        return b * scale

    return replace(dense, name="dense (one wrong entry of B)", unit_jacobian=unit_jacobian)


def torch_mutant() -> Any:
    import torch

    n, j, p = ENTRY

    class WrongEntry(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, z: Any, w: Any, b: Any) -> Any:
            y = torch.tanh(z @ w.T + b)
            ctx.save_for_backward(z, w, y)
            return y

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            z, w, y = ctx.saved_tensors
            slope = grad * (1 - y * y)  # δ ⊙ φ'(a)
            grad_w = slope.T @ z
            # B[n, j, p] = φ'(a_nj) z_np is FACTOR times too large: A[j, p] gets the excess
            grad_w[j, p] = grad_w[j, p] + (FACTOR - 1.0) * slope[n, j] * z[n, p]
            return slope @ w, grad_w, slope.sum(0)

    return WrongEntry.apply


def power(size: int) -> dict[str, Any]:
    _, theta, _ = case_arrays(size)
    layer = mutant_layer(theta[ENTRY[1]])
    seconds, result = gradcheck_run(size, layer)
    failing = sorted({f"{c.oracle} ({c.method})" for c in result.failures()})
    report: dict[str, Any] = {
        "size": size, "entry": ENTRY, "factor": FACTOR,
        "gradcheck": {"verdict": str(result.verdict), "caught": str(result.verdict) == "mismatch",
                      "failing": failing, "seconds": seconds, "message": result.message},
    }  # fmt: skip
    if have_torch():
        fast_seconds, passed = torch_run(size, True, torch_mutant())
        report["torch_fast"] = {"caught": not passed, "seconds": fast_seconds}
    return report


# ---- columns against full finite differences ----------------------------------------------------


def full_differences_seconds(size: int, entries: int | None = None, chunk: int = 256) -> float:
    """∂E/∂θ by central differences with each entry of θ perturbed alone (the layout
    "full" of gradcheck.core.oracles), in chunks of entries to bound memory. With `entries`,
    only the first that many are differentiated and the time is scaled to all n: every
    entry costs the same four evaluations of the whole layer."""
    from gradcheck.catalogue.activations import ACTIVATIONS
    from gradcheck.catalogue.layers import LAYER_TYPES
    from gradcheck.core import oracles

    z, theta, delta = case_arrays(size)
    phi = ACTIVATIONS["tanh"]
    dense = LAYER_TYPES["dense"]

    def energies(variants: np.ndarray) -> np.ndarray:
        values = np.einsum("sknj,knj->sk", dense.forward(z[None], variants, phi), delta[None])
        return values[..., None, None]

    start = time.perf_counter()
    count = theta.size if entries is None else min(entries, theta.size)
    for first in range(0, count, chunk):
        entries = np.arange(first, min(count, first + chunk))
        groups = np.zeros((len(entries), theta.size), dtype=bool)
        groups[np.arange(len(entries)), entries] = True
        oracles.central_differences(
            theta[None], groups.reshape((-1,) + theta.shape), energies,
            np.zeros((1, 1, 1)), outputs_per_variant=delta.size, method="full",
        )  # fmt: skip
    return (time.perf_counter() - start) * theta.size / count


def columns(size: int, repeats: int, full_repeats: int, full_entries: int | None) -> dict[str, Any]:
    column_times = []
    for _ in range(repeats):
        seconds, result = gradcheck_run(
            size, oracles=("finite-differences",), finite_differences="columns"
        )
        assert str(result.verdict) == "pass", result.message
        column_times.append(seconds)
    full_times = [full_differences_seconds(size, full_entries) for _ in range(full_repeats)]
    column, full = statistics.median(column_times), statistics.median(full_times)
    return {"size": size, "columns_seconds": column, "full_seconds": full,
            "speedup": full / column, "columns_runs": column_times,
            "full_runs": full_times, "full_entries_timed": full_entries}  # fmt: skip


# ---- the run ---------------------------------------------------------------------------------


def scale(sizes: list[int], repeats: int, slow_cap: float) -> list[dict[str, Any]]:
    torch_ok = have_torch()
    rows = []
    slow_last: tuple[int, float] | None = None
    for size in sizes:
        n = size * (size + 1)
        ours, fast, stages, plain, one_probe = [], [], [], [], []
        verdict = None
        for _ in range(repeats):
            seconds, result = gradcheck_run(size)
            ours.append(seconds)
            stages.append(result.seconds)
            verdict = str(result.verdict)
            plain.append(plain_hand_written_seconds(size))
            one_probe.append(gradcheck_run(size, finite_differences="probes", probes=1)[0])
            if torch_ok:
                fast.append(torch_run(size, True)[0])
        row: dict[str, Any] = {
            "size": size,
            "parameters": n,
            "theta_bytes": n * 8,
            "gradcheck_seconds": statistics.median(ours),
            "gradcheck_runs": ours,
            "gradcheck_verdict": verdict,
            "gradcheck_stage_seconds": {
                stage: statistics.median(s.get(stage, 0.0) for s in stages) for stage in stages[0]
            },
            "plain_hand_written_seconds": statistics.median(plain),
            "gradcheck_one_probe_seconds": statistics.median(one_probe),
        }
        if torch_ok:
            row["torch_fast_seconds"] = statistics.median(fast)
            row["torch_fast_runs"] = fast
            row["ratio_to_torch_fast"] = row["gradcheck_seconds"] / row["torch_fast_seconds"]
            for key in ("plain_hand_written", "gradcheck_one_probe"):
                row[f"{key}_ratio_to_torch_fast"] = (
                    row[f"{key}_seconds"] / row["torch_fast_seconds"]
                )
            # Without a measurement at a smaller size, only small layers are tried.
            if slow_last is None:
                predicted = 0.0 if n <= SLOW_FIRST else math.inf
            else:
                predicted = slow_last[1] * (n / slow_last[0]) ** 2
            if predicted <= slow_cap:
                slow = [torch_run(size, False)[0] for _ in range(repeats if predicted < 5 else 1)]
                row["torch_slow_seconds"] = statistics.median(slow)
                row["ratio_to_torch_slow"] = row["gradcheck_seconds"] / row["torch_slow_seconds"]
                slow_last = (n, row["torch_slow_seconds"])
        for tool in ("gradcheck", "torch-fast") if torch_ok else ("gradcheck",):
            measured = memory(tool, size)
            if measured is not None:
                key = tool.replace("-", "_")
                row[f"{key}_rss_peak_bytes"] = measured["rss_peak_bytes"]
                row[f"{key}_rss_peak_over_theta"] = measured["rss_peak_bytes"] / (n * 8)
                if measured["tracemalloc_peak_bytes"] is not None:
                    row[f"{key}_tracemalloc_peak_over_theta"] = measured[
                        "tracemalloc_peak_bytes"
                    ] / (n * 8)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("runs")}), flush=True)
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (times, memories) = plt.subplots(1, 2, figsize=(11, 4.2))
    n = [r["parameters"] for r in rows]
    times.loglog(n, [r["gradcheck_seconds"] for r in rows], "o-", label="gradcheck (full check)")
    for key, label in (("torch_fast_seconds", "torch gradcheck, fast mode"),
                       ("torch_slow_seconds", "torch gradcheck, slow mode")):  # fmt: skip
        points = [(r["parameters"], r[key]) for r in rows if key in r]
        if points:
            times.loglog(*zip(*points, strict=True), "s--", label=label)
    times.set_xlabel("parameters n = J(I + 1)")
    times.set_ylabel("seconds (median)")
    times.set_title(f"dense tanh, float64, N = {BATCH}")
    times.legend()
    for key, label in (("gradcheck_rss_peak_over_theta", "gradcheck (RSS)"),
                       ("gradcheck_tracemalloc_peak_over_theta", "gradcheck (tracemalloc)"),
                       ("torch_fast_rss_peak_over_theta", "torch fast mode (RSS)")):  # fmt: skip
        points = [(r["parameters"], r[key]) for r in rows if key in r]
        if points:
            memories.semilogx(*zip(*points, strict=True), "o-", label=label)
    memories.axhline(4.0, color="grey", linestyle=":", label="target: 4x θ")
    memories.set_xlabel("parameters n")
    memories.set_ylabel("peak memory / bytes of θ")
    memories.set_ylim(0, 12)
    memories.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[16, 32, 64, 128, 256, 512, 1024, 2048, 4096])  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--slow-cap", type=float, default=60.0,
                        help="seconds: skip torch slow mode when predicted longer")  # fmt: skip
    parser.add_argument("--power-size", type=int, default=1024)
    parser.add_argument("--columns-size", type=int, default=256)
    parser.add_argument("--full-repeats", type=int, default=1,
                        help="runs of full finite differences (about a minute at 256)")  # fmt: skip
    parser.add_argument("--full-entries", type=int, default=8192,
                        help="entries timed by full differences, scaled to n (0: all)")  # fmt: skip
    parser.add_argument("--skip", nargs="*", default=[], choices=["scale", "power", "columns"])
    parser.add_argument("--out", type=Path, default=Path("reports/bench/scale.json"))
    parser.add_argument("--plot", type=Path, default=Path("docs/bench/scale.png"))
    parser.add_argument("--child", nargs=2, metavar=("TOOL", "SIZE"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(child(arguments.child[0], int(arguments.child[1]))))
        return
    torch: Any = None
    if have_torch():
        import torch
    else:
        print("torch is not installed (pip install torch==2.13.0): its columns are skipped")
    result: dict[str, Any] = {
        "machine": platform.machine(), "python": platform.python_version(),
        "cpus": os.cpu_count(), "batch": BATCH, "repeats": arguments.repeats,
        "torch": None if torch is None else torch.__version__,
        "torch_threads": None if torch is None else torch.get_num_threads(),
    }  # fmt: skip
    arguments.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every section, so that a later failure loses nothing
        arguments.out.write_text(json.dumps(result, indent=2))

    if "scale" not in arguments.skip:
        result["scale"] = scale(arguments.sizes, arguments.repeats, arguments.slow_cap)
        save()
        plot(result["scale"], arguments.plot)
        print(f"wrote {arguments.plot}")
    if "power" not in arguments.skip:
        result["power"] = power(arguments.power_size)
        save()
        print(json.dumps(result["power"]), flush=True)
    if "columns" not in arguments.skip:
        result["columns"] = columns(
            arguments.columns_size,
            arguments.repeats,
            arguments.full_repeats,
            arguments.full_entries or None,
        )
        save()
        print(json.dumps(result["columns"]), flush=True)
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()
