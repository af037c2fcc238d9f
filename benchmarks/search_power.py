"""Search power (issue 16): how often a seeded search catches numerical-instability bugs,
and what the wider value draws cost, both against the draws before issue 16 in this run.

For each bug of tests/instability.py: the fraction of seeds whose search catches it
within hypothesis's default 100 examples, drawing values from the small table only
(`VALUE_DRAWS` "table": before) and from the whole declared domain ("domain": after),
and the same for its stable twin (which must pass on every seed); the same for the
catalogue rows of tests/catalogue_instability.py, searched through
`gradcheck.strategies.cases` (twin: the catalogue's own row). Then examples per second of
`check_backward` on correct layers under both draws (the plugin and `gradcheck check` run
this same loop), cases per second of `gradcheck run`'s loop on a few catalogue cells, and
of the drawing alone: gradcheck's byte blob against
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from catalogue_instability import CATALOGUE_BUGS  # the tests' own bugs
from catalogue_instability import catch as catalogue_catch
from instability import BUGS, catch, seeded

import gradcheck
from gradcheck.campaign import cells, run_cell
from gradcheck.core.values import VALUE_DRAWS

MODES = ("table", "domain")


def rate_row(
    name: str,
    expected: str,
    wrong: Callable[[int], str],
    right: Callable[[int], str],
    seeds: int,
) -> dict[str, Any]:
    """One bug's outcomes over `seeds` seeded searches in both modes: wrong(seed) searches
    the wrong code, right(seed) its stable twin; prints one line (and the odd outcomes)."""
    row: dict[str, Any] = {"bug": name, "expected": expected}
    for mode in MODES:
        token = VALUE_DRAWS.set(mode)
        try:
            caught = Counter(wrong(s) for s in range(seeds))
            twins = Counter(right(s) for s in range(seeds))
        finally:
            VALUE_DRAWS.reset(token)
        row[mode] = {
            "caught": caught[expected] / seeds,
            "wrong outcomes": dict(caught),
            "twin passes": twins["pass"] / seeds,
            "twin outcomes": dict(twins),
        }
    print(
        f"{name:38s} caught before {row['table']['caught']:6.0%}  after "
        f"{row['domain']['caught']:6.0%}   twin passes before "
        f"{row['table']['twin passes']:5.0%} after {row['domain']['twin passes']:5.0%}",
        flush=True,
    )
    for mode in MODES:
        odd = {k: v for k, v in row[mode]["wrong outcomes"].items() if k != expected}
        if odd or row[mode]["twin passes"] < 1:
            print(
                f"    {mode}: wrong {row[mode]['wrong outcomes']} twin {row[mode]['twin outcomes']}"
            )
    return row


def catch_rates(seeds: int, examples: int) -> list[dict[str, Any]]:
    """The user layers' bugs (tests/instability.py), through check_backward."""
    return [
        rate_row(
            bug.name,
            bug.caught_as,
            lambda s, bug=bug: catch(bug, bug.wrong, s, max_examples=examples),
            lambda s, bug=bug: catch(bug, bug.right, s, max_examples=examples),
            seeds,
        )
        for bug in BUGS
    ]


def catalogue_catch_rates(seeds: int, examples: int) -> list[dict[str, Any]]:
    """The catalogue rows' bugs (tests/catalogue_instability.py), through
    `gradcheck.strategies.cases` and assert_gradients_correct."""
    return [
        rate_row(
            bug.name,
            bug.caught_as,
            lambda s, bug=bug: catalogue_catch(bug.wrong, s, examples=examples),
            lambda s, bug=bug: catalogue_catch(bug.right, s, examples=examples),
            seeds,
        )
        for bug in CATALOGUE_BUGS
    ]


def campaign_throughput(examples: int, repeats: int) -> dict[str, Any]:
    """Cases per second of `gradcheck run`'s loop (`gradcheck.campaign.run_cell`: stacks
    drawn by case_stacks, checked by check_many) on a few cells, each mode timed `repeats`
    times interleaved; medians. Nothing fails, so nothing shrinks."""
    specs = [
        spec
        for spec in cells()
        if spec.key
        in (
            "dense / tanh / float64",
            "dense / sigmoid / float32",
            "weightnorm / softplus / float64",
            "gated / gelu / float32",
        )
    ]
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    counts: dict[str, int] = {}
    for _ in range(repeats):
        for mode in MODES:
            token = VALUE_DRAWS.set(mode)
            try:
                outcomes = [
                    run_cell(spec, examples=examples, seed=0, database=None) for spec in specs
                ]
            finally:
                VALUE_DRAWS.reset(token)
            times[mode].append(sum(outcome.seconds for outcome in outcomes))
            counts[mode] = sum(outcome.cell.examples for outcome in outcomes)
    rates = {mode: counts[mode] / float(np.median(times[mode])) for mode in MODES}
    return {"cases per second": rates, "ratio after / before": rates["domain"] / rates["table"]}


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
    print("catalogue rows, through gradcheck.strategies.cases:")
    catalogue_rates = catalogue_catch_rates(args.seeds, args.examples)
    speed = throughput(args.examples, args.repeats)
    print(
        "check_backward examples per second (stable twins): "
        + ", ".join(
            f"{'before' if m == 'table' else 'after'} {r:.1f}"
            for m, r in speed["examples per second"].items()
        )
        + f"; after / before {speed['ratio after / before']:.2f}"
    )
    campaign = campaign_throughput(10 * args.examples, args.repeats)
    print(
        "gradcheck run's loop, cases per second: "
        + ", ".join(
            f"{'before' if m == 'table' else 'after'} {r:.1f}"
            for m, r in campaign["cases per second"].items()
        )
        + f"; after / before {campaign['ratio after / before']:.2f}"
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
            "catalogue catch rates": catalogue_rates,
            "throughput": speed,
            "campaign throughput": campaign,
            "drawing": draws,
        }
        args.out.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
