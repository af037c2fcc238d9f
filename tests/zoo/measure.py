"""How well gradcheck's diagnosis names the zoo's bugs: `python -m tests.zoo.measure`.

Prints one row per entry (expected class, diagnosed class, right or wrong, how many class
names the failure message mentions, and the class its reproduction snippet names: "=" when
the same), then the counts per expected class, the misses and the overall accuracy against
`REQUIRED_ACCURACY` of tests/test_zoo.py.

    python -m tests.zoo.measure                 # the whole zoo
    python -m tests.zoo.measure --twins         # also check every correct twin
    python -m tests.zoo.measure softmax attn    # entries whose name contains a word
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from .bugs import CLASSES, ZOO
from .runner import class_names_in, outcome, reproduce, twin_outcome

REQUIRED_ACCURACY = 0.90  # the same threshold as tests/test_zoo.py


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.zoo.measure", description=__doc__)
    parser.add_argument("words", nargs="*", help="only entries whose name contains a word")
    parser.add_argument("--twins", action="store_true", help="check the correct twins too")
    options = parser.parse_args(argv)
    entries = [e for e in ZOO if not options.words or any(w in e.name for w in options.words)]
    if not entries:
        print("no zoo entry matches", file=sys.stderr)
        return 4

    started = time.perf_counter()
    width = max(len(e.name) for e in entries)
    header = f"{'entry':<{width}}  {'expected':<27}  {'diagnosed':<27}  ok  names  {'repro':<27}"
    if options.twins:
        header += "  twin"
    print(header)
    print("-" * len(header))
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    several = 0
    differ = 0
    misses = []
    for entry in entries:
        found = outcome(entry.name)
        diagnosed = found.diagnosis or (
            "(passed)" if found.summary is not None else type(found.error).__name__
        )
        named = class_names_in(found.message)
        several += len(named) > 1
        ok = found.diagnosis == entry.expected
        total[entry.expected] += 1
        right[entry.expected] += ok
        if not ok:
            misses.append((entry, diagnosed))
        mark = "✓" if ok else "✗"
        again = "-"
        if found.mismatch is not None:
            again = reproduce(entry, found.mismatch) or "(passed)"
            differ += again != found.diagnosis
            again = "=" if again == found.diagnosis else again
        row = f"{entry.name:<{width}}  {entry.expected:<27}  {diagnosed:<27}  {mark:<2}  "
        row += f"{len(named):>5}  {again:<27}"
        if options.twins:
            row += f"  {twin_outcome(entry.name).describe()}"
        print(row, flush=True)

    print()
    print(f"{'expected class':<27}  {'entries':>7}  {'right':>5}")
    for name in CLASSES:
        if total[name]:
            print(f"{name:<27}  {total[name]:>7}  {right[name]:>5}")
    count, good = sum(total.values()), sum(right.values())
    print()
    if misses:
        print("misses (expected -> diagnosed):")
        for entry, diagnosed in misses:
            print(f"  {entry.name}: {entry.expected} -> {diagnosed}")
        print()
    accuracy = good / count
    verdict = "meets" if accuracy >= REQUIRED_ACCURACY else "below"
    print(
        f"accuracy: {good} of {count} right ({accuracy:.1%}), {verdict} the required "
        f"{REQUIRED_ACCURACY:.0%}; {several} of {count} failure messages name several "
        f"classes; {differ} reproduction snippets name another class; "
        f"{time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
