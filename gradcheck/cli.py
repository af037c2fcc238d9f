"""The gradcheck command.

Exit codes follow pytest: 0 all passed, 1 mismatches found, 2 interrupted, 3 internal
error, 4 usage error, 5 nothing was checked.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence

OK, MISMATCH, INTERRUPTED, INTERNAL_ERROR, USAGE_ERROR, NOTHING_CHECKED = range(6)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradcheck",
        description="Prove hand-written neural-network gradients right, or shrink the proof "
        "that they are wrong.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run", help="check the built-in catalogue of layer types and activations"
    )
    run.add_argument("--examples", type=int, default=3, help="cases per cell (default 3)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return parser


def _run(examples: int, seed: int) -> int:
    import numpy as np

    from gradcheck.activations import ACTIVATIONS
    from gradcheck.checker import Case, Verdict, check
    from gradcheck.layers import LAYER_TYPES

    rng = np.random.default_rng(seed)
    counts: Counter[str] = Counter()
    for layer in LAYER_TYPES.values():
        activations = list(ACTIVATIONS.values()) if layer.uses_activation else [None]
        for activation in activations:
            for dtype in (np.float64, np.float32):
                for _ in range(examples):
                    inputs = int(rng.integers(max(2, layer.min_units), 6))
                    units = inputs if layer.square else int(rng.integers(layer.min_units, 6))
                    batch = int(rng.integers(1, 5))
                    theta = rng.normal(size=(units, layer.parameters_per_unit(inputs)))
                    if layer.name == "rbf":
                        theta[:, -1] = np.abs(theta[:, -1]) + 0.1
                    case = Case(
                        layer_type=layer,
                        activation=activation,
                        z=rng.normal(size=(batch, inputs)).astype(dtype),
                        theta=theta.astype(dtype),
                        delta=rng.normal(size=(batch, units)).astype(dtype),
                    )
                    result = check(case)
                    counts[str(result.verdict)] += 1
                    if result.verdict is Verdict.MISMATCH:
                        print(f"{layer.name} / {case.activation}: {result.message}")
    print(", ".join(f"{count} {verdict}" for verdict, count in sorted(counts.items())))
    if not counts:
        return NOTHING_CHECKED
    return MISMATCH if counts[str(Verdict.MISMATCH)] else OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.command is None:
        parser.print_help()
        return USAGE_ERROR
    try:
        return _run(arguments.examples, arguments.seed)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
