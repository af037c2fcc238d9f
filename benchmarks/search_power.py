"""Search power (issue 16): how often a seeded search catches numerical-instability bugs,
and what the wider value draws cost, both against the draws before issue 16 in this run.

For each bug of tests/instability.py: the fraction of seeds whose search catches it
within hypothesis's default 100 examples, drawing values from the small table only
(`VALUE_DRAWS` "table": before) and from the whole declared domain ("domain": after),
and the same for its stable twin (which must pass on every seed). Then examples per
second of `check_backward` on correct layers under both draws (the plugin and `gradcheck
check` run this same loop), and of the drawing alone: gradcheck's byte blob against
`hypothesis.extra.numpy.arrays` of `floats(min_value, max_value)`, the strategy that
draws edges, subnormals and spread magnitudes itself.

    python benchmarks/search_power.py [--seeds 20] [--examples 100] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from instability import BUGS, catch, seeded  # the tests' own bugs

import gradcheck
from gradcheck.core.values import VALUE_DRAWS

MODES = ("table", "domain")


def catch_rates(seeds: int, examples: int) -> list[dict[str, Any]]:
    rows = []
    for bug in BUGS:
        row: dict[str, Any] = {"bug": bug.name, "expected": bug.caught_as}
        for mode in MODES:
            token = VALUE_DRAWS.set(mode)
            try:
                wrong = Counter(
                    catch(bug, bug.wrong, s, max_examples=examples) for s in range(seeds)
                )
                right = Counter(
                    catch(bug, bug.right, s, max_examples=examples) for s in range(seeds)
                )
            finally:
                VALUE_DRAWS.reset(token)
            row[mode] = {
                "caught": wrong[bug.caught_as] / seeds,
                "wrong outcomes": dict(wrong),
                "twin passes": right["pass"] / seeds,
                "twin outcomes": dict(right),
            }
        rows.append(row)
        print(
            f"{bug.name:38s} caught before {row['table']['caught']:6.0%}  after "
            f"{row['domain']['caught']:6.0%}   twin passes before "
            f"{row['table']['twin passes']:5.0%} after {row['domain']['twin passes']:5.0%}",
            flush=True,
        )
        for mode in MODES:
            odd = {k: v for k, v in row[mode]["wrong outcomes"].items() if k != bug.caught_as}
            if odd or row[mode]["twin passes"] < 1:
                print(
                    f"    {mode}: wrong {row[mode]['wrong outcomes']} "
                    f"twin {row[mode]['twin outcomes']}"
                )
    return rows


def _sigmoid(x):
    import autograd.numpy as anp

    return 0.5 * (anp.tanh(0.5 * x) + 1.0)


def throughput(examples: int, repeats: int) -> dict[str, Any]:
    """Examples per second of check_backward on the stable twins (nothing fails, so no
    shrinking), derandomized, each mode timed `repeats` times interleaved; medians."""
    layers = [
        bug
        for bug in BUGS
        if bug.name
        in (
            "sigmoid_exp_overflow",
            "softmax_global_max_backward",
            "dense_sigmoid_exp_overflow_float32",
        )
    ]
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    counts: dict[str, int] = {}
    for _ in range(repeats):
        for mode in MODES:
            token = VALUE_DRAWS.set(mode)
            try:
                start = time.perf_counter()
                total = 0
                for bug in layers:
                    summary = gradcheck.check_backward(
                        bug.twin_forward,
                        bug.right,
                        signature=bug.signature,
                        name=f"rate/{bug.name}",
                        settings=seeded(examples),
                        **bug.options,
                    )
                    total += summary.examples
                times[mode].append(time.perf_counter() - start)
                counts[mode] = total
            finally:
                VALUE_DRAWS.reset(token)
    rates = {mode: counts[mode] / float(np.median(times[mode])) for mode in MODES}
    return {"examples per second": rates, "ratio after / before": rates["domain"] / rates["table"]}


def drawing(examples: int, repeats: int) -> dict[str, Any]:
    """Cases drawn per second, nothing checked: gradcheck's blob decoded into a (4, 4)
    float64 array in the domain (-2000, 2000), against arrays(float64, (4, 4),
    elements=floats(-2000, 2000)) of hypothesis.extra.numpy."""
    from gradcheck.core.values import domain_values

    quiet = settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )

    def blob(raw: bytes) -> np.ndarray:
        cells = np.frombuffer(raw, dtype=np.uint8)
        return domain_values(
            int(cells[0]), cells[1:].reshape(4, 4), (-2000.0, 2000.0), np.dtype("float64")
        )

    strategies = {
        "gradcheck blob": st.binary(min_size=17, max_size=17).map(blob),
        "hypothesis floats": arrays(
            np.float64,
            (4, 4),
            elements=st.floats(-2000.0, 2000.0, exclude_min=True, exclude_max=True),
        ),
    }
    seconds: dict[str, list[float]] = {name: [] for name in strategies}
    for _ in range(repeats):
        for name, strategy in strategies.items():

            @quiet
            @given(strategy)
            def draw(values: np.ndarray) -> None:
                assert values.shape == (4, 4)

            start = time.perf_counter()
            draw()
            seconds[name].append(time.perf_counter() - start)
    rates = {name: examples / float(np.median(s)) for name, s in seconds.items()}
    return {
        "cases per second": rates,
        "ratio floats / blob": rates["hypothesis floats"] / rates["gradcheck blob"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    print(f"catch rates within {args.examples} examples, {args.seeds} seeds (target >= 95%):")
    rates = catch_rates(args.seeds, args.examples)
    speed = throughput(args.examples, args.repeats)
    print(
        "check_backward examples per second (stable twins): "
        + ", ".join(
            f"{'before' if m == 'table' else 'after'} {r:.1f}"
            for m, r in speed["examples per second"].items()
        )
        + f"; after / before {speed['ratio after / before']:.2f}"
    )
    draws = drawing(max(args.examples, 300), args.repeats)
    print(
        "drawing alone, cases per second: "
        + ", ".join(f"{n} {r:.0f}" for n, r in draws["cases per second"].items())
        + f"; floats / blob {draws['ratio floats / blob']:.2f}"
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "machine": platform.platform(),
            "seeds": args.seeds,
            "examples": args.examples,
            "catch rates": rates,
            "throughput": speed,
            "drawing": draws,
        }
        args.out.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
