"""User layers: `gradcheck.check_backward` of a hand-written dense tanh layer beside
torch.autograd.gradcheck on the same function with the same hand-written backward, in the
same run: at scale (one given case, 1 M to 16 M parameters) and small (100 examples).

    python benchmarks/user_scale.py [--sizes 1024 2048 4096] [--repeats 3] [--scale-repeats N]
        [--small-examples 100] [--skip scale power small] [--out reports/bench/user_scale.json]

The layer is the one a user writes: forward(x, w, b) = tanh(x @ w + b) in NumPy and a
backward(dout, x, w, b) -> (dx, dw, db) derived by hand; torch checks a
torch.autograd.Function whose forward and backward are the same formulas on tensors, in
float64. Times are medians of --repeats runs with gradcheck and torch interleaved, so both
see the same load; on a shared machine only the ratios mean anything. Both compute on one
thread (GRADCHECK_BENCH_THREADS=N for N), per core like benchmarks/throughput.py.

- scale: check_backward(..., example=((x, w, b), dout)) with I = J = size, N = 4 (one
  case: what a user checks at this size), against torch's fast mode (one random
  projection) on the same arrays. Also per size: the check's verdict, the structure it
  reports for w and b (partitioned along an axis with δ ⊙ B holding, shared, or
  "undetermined" where the check does not measure it), its oracles, and the peak memory
  of each tool in a fresh child process (the kernel's resident-set high-water mark,
  reset just before the check, above the memory in use before it) over the bytes of the
  arguments x, w, b and dout.
- power: at --power-size, one entry of the hand-written dw 0.1 % off: is it caught by
  check_backward, and by torch's fast mode on a Function with the same bug?
- small: check_backward with max_examples=--small-examples at its default sizes (each
  of n, i, j drawn in 1..4), all three oracles, against torch.autograd.gradcheck in its
  default mode (and in fast mode) on as many random inputs whose sizes are drawn the
  same way. The hypothesis example database lives in a temporary directory made for the
  run (the check's default settings otherwise: what a user's test pays).

torch is for the benchmarks only (pip install torch==2.13.0, CPU); without it the torch
columns are skipped and the gradcheck figures are still reported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Both tools compute on one thread (numpy's BLAS, torch's intra-op pool) unless
# GRADCHECK_BENCH_THREADS says otherwise: on this shared 2-core machine a BLAS pool waiting
# for a busy core made one 1024² forward take 5–30 ms instead of 1 ms, so that timings
# measured the other engineers' load rather than the tools. Set before numpy loads.
THREADS = int(os.environ.get("GRADCHECK_BENCH_THREADS", "1"))
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, str(THREADS))

import numpy as np  # noqa: E402
from resident import in_child, resident_peak  # noqa: E402

BATCH = 4
SIGNATURE = "(n,i),(i,j),(j)->(n,j)"
#: the wrong entry of dw in the power test (input i, unit j) and its factor
ENTRY = (3, 5)
FACTOR = 1.001


def dense_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.tanh(x @ w + b)


def dense_backward(
    dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.tanh(x @ w + b)
    slope = dout * (1.0 - y * y)  # δ ⊙ φ'(a)
    return slope @ w.T, x.T @ slope, slope.sum(axis=0)


def wrong_backward(
    dout: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dense_backward with dw[ENTRY] FACTOR times its value: one entry 0.1 % off."""
    dx, dw, db = dense_backward(dout, x, w, b)
    dw[ENTRY] *= FACTOR
    return dx, dw, db


def case_arrays(size: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, size))
    w = rng.normal(size=(size, size)) / np.sqrt(size)
    b = rng.normal(size=size)
    dout = rng.normal(size=(BATCH, size))
    return x, w, b, dout


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_dense(wrong: bool = False) -> Any:
    """The layer as a torch.autograd.Function with the same hand-written backward."""
    import torch

    torch.set_num_threads(THREADS)

    class Dense(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, w: Any, b: Any) -> Any:
            y = torch.tanh(x @ w + b)
            ctx.save_for_backward(x, w, y)
            return y

        @staticmethod
        def backward(ctx: Any, dout: Any) -> Any:
            x, w, y = ctx.saved_tensors
            slope = dout * (1.0 - y * y)
            dw = x.T @ slope
            if wrong:
                dw[ENTRY] = dw[ENTRY] * FACTOR
            return slope @ w.T, dw, slope.sum(0)

    return Dense.apply


def torch_check(function: Any, arrays: tuple[np.ndarray, ...], fast: bool) -> tuple[float, bool]:
    """Seconds of torch.autograd.gradcheck on (x, w, b) and whether it passed."""
    import torch

    inputs = tuple(torch.tensor(a, requires_grad=True) for a in arrays)
    start = time.perf_counter()
    try:
        passed = torch.autograd.gradcheck(function, inputs, fast_mode=fast)
    except torch.autograd.gradcheck.GradcheckError:
        passed = False
    return time.perf_counter() - start, bool(passed)


def gradcheck_example(size: int, backward: Any = dense_backward) -> tuple[float, Any]:
    """Seconds of check_backward on the one given case of this size, and its LayerCheck
    (a mismatch is returned, not raised)."""
    from gradcheck import GradientMismatch, check_backward
    from gradcheck.user.run import collect

    x, w, b, dout = case_arrays(size)
    start = time.perf_counter()
    with collect() as checks, contextlib.suppress(GradientMismatch):
        check_backward(dense_forward, backward, signature=SIGNATURE, example=((x, w, b), dout))
    return time.perf_counter() - start, checks[-1]


# ---- memory, in a child process -----------------------------------------------------------


def child(tool: str, size: int) -> dict[str, Any]:
    """Peak resident memory of one check above what was in use before it (bytes)."""
    arrays = case_arrays(size)
    if tool == "gradcheck":
        from gradcheck import check_backward

        # a warm-up on a tiny case, so that the imports are not counted as the check's
        small = case_arrays(2)
        check_backward(dense_forward, dense_backward, signature=SIGNATURE,
                       example=(small[:3], small[3]))  # fmt: skip
    else:
        function = torch_dense()
        torch_check(function, case_arrays(2)[:3], fast=True)
    with resident_peak() as found:
        if tool == "gradcheck":
            check_backward(dense_forward, dense_backward, signature=SIGNATURE,
                           example=(arrays[:3], arrays[3]))  # fmt: skip
        else:
            torch_check(function, arrays[:3], fast=True)
    return found


def memory(tool: str, size: int) -> dict[str, Any] | None:
    return in_child(__file__, tool, size)


# ---- the sections --------------------------------------------------------------------------


def scale(sizes: list[int], repeats: int, torch_ok: bool) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        x, w, b, dout = case_arrays(size)
        argument_bytes = x.nbytes + w.nbytes + b.nbytes + dout.nbytes
        ours, fast, per_stage = [], [], []
        summary = None
        for _ in range(repeats):
            with stages() as found:
                seconds, summary = gradcheck_example(size)
            ours.append(seconds)
            per_stage.append(found)
            if torch_ok:
                fast.append(torch_check(torch_dense(), (x, w, b), fast=True)[0])
        assert summary is not None
        row: dict[str, Any] = {
            "size": size,
            "parameters": w.size + b.size,
            "argument_bytes": argument_bytes,
            "gradcheck_seconds": statistics.median(ours),
            "gradcheck_runs": ours,
            "gradcheck_outcome": summary.outcome,
            "gradcheck_stage_seconds": _median_stages(per_stage),
            "structure": dict(summary.structure),
            "compact_identity": dict(summary.compact_identity),
            "oracles": dict(summary.oracles),
            "skipped": dict(summary.skipped),
            "worst_ratio": summary.worst_ratio,
        }
        if torch_ok:
            row["torch_fast_seconds"] = statistics.median(fast)
            row["torch_fast_runs"] = fast
            row["ratio_to_torch_fast"] = row["gradcheck_seconds"] / row["torch_fast_seconds"]
        for tool in ("gradcheck", "torch-fast") if torch_ok else ("gradcheck",):
            measured = memory(tool, size)
            if measured is not None:
                key = tool.replace("-", "_")
                row[f"{key}_rss_peak_bytes"] = measured["rss_peak_bytes"]
                row[f"{key}_peak_over_arguments"] = measured["rss_peak_bytes"] / argument_bytes
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("runs")}), flush=True)
    return rows


def power(size: int, torch_ok: bool) -> dict[str, Any]:
    seconds, summary = gradcheck_example(size, wrong_backward)
    report: dict[str, Any] = {
        "size": size,
        "entry_of_dw": ENTRY,
        "factor": FACTOR,
        "gradcheck": {
            "caught": summary.outcome == "failed",
            "outcome": summary.outcome,
            "seconds": seconds,
            "message": summary.message.splitlines()[:2],
        },
    }
    if torch_ok:
        fast_seconds, passed = torch_check(torch_dense(wrong=True), case_arrays(size)[:3], True)
        report["torch_fast"] = {"caught": not passed, "seconds": fast_seconds}
    return report


def _median_stages(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per stage, the median over runs of its seconds ("total": inside check_example)."""
    names = sorted({stage for found in runs for stage in found})
    return {stage: statistics.median(found.get(stage, 0.0) for found in runs) for stage in names}


def small_inputs(examples: int, seed: int) -> list[tuple[np.ndarray, ...]]:
    """Random (x, w, b) whose sizes n, i, j are drawn in 1..4, as check_backward draws them."""
    rng = np.random.default_rng(seed)
    inputs = []
    for _ in range(examples):
        n, i, j = (int(k) for k in rng.integers(1, 5, size=3))
        inputs.append((rng.normal(size=(n, i)), rng.normal(size=(i, j)), rng.normal(size=j)))
    return inputs


@contextlib.contextmanager
def stages() -> Iterator[dict[str, float]]:
    """Seconds per stage of gradcheck's per-example check (`UserResult.seconds`: user
    code, error model, finite differences, autograd, compare), summed over the examples
    checked inside the block; the rest of a check's wall time is hypothesis and the run
    loop around the examples."""
    import gradcheck.user.run as run

    found: dict[str, float] = {}
    original = getattr(run, "check_example", None)
    if original is None:  # an engine that checks elsewhere: no stages, the rest stands
        yield found
        return

    def timed(*arguments: Any, **keywords: Any) -> Any:
        result = original(*arguments, **keywords)
        for stage, seconds in getattr(result, "seconds", {}).items():
            found[stage] = found.get(stage, 0.0) + seconds
        return result

    run.check_example = timed
    try:
        yield found
    finally:
        run.check_example = original


@contextlib.contextmanager
def scratch_directory() -> Iterator[None]:
    """Run in a fresh temporary directory: the hypothesis database of this run only."""
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="gradcheck-bench-") as directory:
        os.chdir(directory)
        try:
            yield
        finally:
            os.chdir(here)


def small(examples: int, repeats: int, torch_ok: bool) -> dict[str, Any]:
    from gradcheck import check_backward

    ours, default, fast, per_stage = [], [], [], []
    summary = None
    with scratch_directory():
        # warm-ups: the imports and one-time costs belong to benchmarks/cold_start.py
        check_backward(dense_forward, dense_backward, signature=SIGNATURE, max_examples=2)
        if torch_ok:
            torch_check(torch_dense(), small_inputs(1, seed=1000)[0], fast=False)
        for repeat in range(repeats):
            with stages() as found:
                start = time.perf_counter()
                summary = check_backward(
                    dense_forward, dense_backward, signature=SIGNATURE, max_examples=examples
                )
                ours.append(time.perf_counter() - start)
            per_stage.append(found)
            if torch_ok:
                inputs = small_inputs(examples, seed=repeat)
                function = torch_dense()
                for mode, times in ((False, default), (True, fast)):
                    start = time.perf_counter()
                    for arrays in inputs:
                        torch_check(function, arrays, fast=mode)
                    times.append(time.perf_counter() - start)
    assert summary is not None
    result: dict[str, Any] = {
        "examples": examples,
        "gradcheck_seconds": statistics.median(ours),
        "gradcheck_runs": ours,
        "gradcheck_examples_checked": summary.examples,
        "gradcheck_oracles": dict(summary.oracles),
        "gradcheck_outcome": summary.outcome,
        "gradcheck_stage_seconds": _median_stages(per_stage),
    }
    if torch_ok:
        result["torch_default_seconds"] = statistics.median(default)
        result["torch_fast_seconds"] = statistics.median(fast)
        result["torch_default_runs"], result["torch_fast_runs"] = default, fast
        result["ratio_to_torch_default"] = result["gradcheck_seconds"] / statistics.median(default)
        result["ratio_to_torch_fast"] = result["gradcheck_seconds"] / statistics.median(fast)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--scale-repeats", type=int, default=None,
                        help="runs per size in the scale section (default: --repeats)")  # fmt: skip
    parser.add_argument("--power-size", type=int, default=1024)
    parser.add_argument("--small-examples", type=int, default=100)
    parser.add_argument("--skip", nargs="*", default=[], choices=["scale", "power", "small"])
    parser.add_argument("--out", type=Path, default=Path("reports/bench/user_scale.json"))
    parser.add_argument("--child", nargs=2, metavar=("TOOL", "SIZE"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(child(arguments.child[0], int(arguments.child[1]))))
        return
    torch_ok = have_torch()
    torch_version = None
    if torch_ok:
        import torch

        torch_version = torch.__version__
    else:
        print("torch is not installed (pip install torch==2.13.0): its columns are skipped")
    result: dict[str, Any] = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "batch": BATCH,
        "repeats": arguments.repeats,
        "torch": torch_version,
        "threads": THREADS,
        "command": " ".join(["python", "benchmarks/user_scale.py", *sys.argv[1:]]),
    }
    out = arguments.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every section, so that a later failure loses nothing
        out.write_text(json.dumps(result, indent=2))

    if "small" not in arguments.skip:
        result["small"] = small(arguments.small_examples, arguments.repeats, torch_ok)
        save()
        print(json.dumps({k: v for k, v in result["small"].items() if not k.endswith("runs")}))
    if "power" not in arguments.skip:
        result["power"] = power(arguments.power_size, torch_ok)
        save()
        print(json.dumps(result["power"]), flush=True)
    if "scale" not in arguments.skip:
        repeats = arguments.scale_repeats or arguments.repeats
        result["scale"] = scale(arguments.sizes, repeats, torch_ok)
        save()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
