"""Cold start: what a fresh process pays before and during its first check, each figure
the median over --repeats fresh child processes, beside baselines measured in the same run.

    python benchmarks/cold_start.py [--repeats 7] [--examples 100] [--from-checkout]
        [--out reports/bench/cold_start.json]

gradcheck is imported from a copy of this checkout's package in a temporary
site-packages directory, compiled, as pip installs it (--from-checkout: from the checkout
itself). The place matters for one figure: on a process's first check hypothesis reads
the source of every loaded module outside site-packages for constants, which costs a
checkout on PYTHONPATH about 0.05 s more than an installed gradcheck.

Measured inside each child with time.perf_counter (the interpreter's own start-up, the
same for every Python program, is not counted):

- import: `import gradcheck` (the budget: ≤ 0.1 s). Baseline: `import numpy`.
- plugin: `import gradcheck.pytest_plugin` after pytest itself is imported, which is what
  pytest pays for gradcheck's plugin in every test run of a project that installs it
  (budget ≤ 0.1 s).
- resolve: `gradcheck.check_backward` after `import gradcheck`, from a fresh process
  (budget ≤ 0.6 s); it loads numpy, so `import numpy` is its baseline.
- first − second: check_backward of a dense tanh layer (max_examples=--examples, the
  default sizes) run twice in one process; the first pays what loads or is built on first
  use (hypothesis, autograd, tables). Each call draws its own cases, so the two calls do
  the same kind of work but not the same cases: the figure is the median over children of
  the difference (budget ≤ 0.2 s). Each child runs in a fresh temporary directory: the
  first call starts from an empty hypothesis database (a fresh checkout or CI job), the
  second from what the first saved there.
- torch, in the same run: `import torch`, and the first and second
  torch.autograd.gradcheck of the same layer (a torch.autograd.Function with the same
  hand-written backward) on --examples random inputs of the same sizes, default mode.

Also recorded: which of numpy, hypothesis, autograd, scipy and torch each stage leaves loaded.
torch is for the benchmarks only (pip install torch==2.13.0, CPU); without it its figures
are skipped.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: (name, seconds): what each figure may take
BUDGETS = {"import": 0.1, "plugin": 0.1, "resolve": 0.6, "first_minus_second": 0.2}
HEAVY = ("numpy", "hypothesis", "autograd", "scipy", "torch")


# ---- the children: each measures one thing in a fresh process -------------------------------
# Each is a `python -c` program whose first statement starts the clock: the interpreter's
# start-up is not counted, and nothing else (typing, json) is loaded before the import
# measured, as in a user's process.

_REPORT = """
import json
import sys
found['loaded'] = [name for name in {heavy!r} if name in sys.modules]
print(json.dumps(found))
"""

CHILD_NUMPY = """
import time
start = time.perf_counter()
import numpy
found = {{'import_numpy': time.perf_counter() - start}}
"""

CHILD_PLUGIN = """
import time
import pytest  # pytest is running already when it loads its plugins
start = time.perf_counter()
import gradcheck.pytest_plugin
found = {{'plugin': time.perf_counter() - start}}
"""

CHILD_GRADCHECK = """
import time
start = time.perf_counter()
import gradcheck
imported = time.perf_counter()
import sys
after_import = [name for name in {heavy!r} if name in sys.modules]
check_backward = gradcheck.check_backward
resolved = time.perf_counter()
after_resolve = [name for name in {heavy!r} if name in sys.modules]
import numpy as np

def forward(x, w, b):
    return np.tanh(x @ w + b)

def backward(dout, x, w, b):
    y = np.tanh(x @ w + b)
    slope = dout * (1.0 - y * y)
    return slope @ w.T, x.T @ slope, slope.sum(axis=0)

seconds = []
for _ in range(2):
    begin = time.perf_counter()
    check_backward(forward, backward, signature='(n,i),(i,j),(j)->(n,j)', max_examples={examples})
    seconds.append(time.perf_counter() - begin)
found = {{'import': imported - start, 'resolve': resolved - imported, 'first': seconds[0],
         'second': seconds[1], 'first_minus_second': seconds[0] - seconds[1],
         'import_loaded': after_import, 'resolve_loaded': after_resolve}}
"""

CHILD_TORCH = """
import time
start = time.perf_counter()
import torch
imported = time.perf_counter() - start
import numpy as np

class Dense(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b):
        y = torch.tanh(x @ w + b)
        ctx.save_for_backward(x, w, y)
        return y

    @staticmethod
    def backward(ctx, dout):
        x, w, y = ctx.saved_tensors
        slope = dout * (1.0 - y * y)
        return slope @ w.T, x.T @ slope, slope.sum(0)

rng = np.random.default_rng(0)
seconds = []
for _ in range(2):
    inputs = []
    for _ in range({examples}):
        n, i, j = (int(k) for k in rng.integers(1, 5, size=3))
        shapes = ((n, i), (i, j), (j,))
        inputs.append([torch.tensor(rng.normal(size=s), requires_grad=True) for s in shapes])
    begin = time.perf_counter()
    for arguments in inputs:
        torch.autograd.gradcheck(Dense.apply, arguments)
    seconds.append(time.perf_counter() - begin)
found = {{'import_torch': imported, 'torch_first': seconds[0], 'torch_second': seconds[1],
         'torch_first_minus_second': seconds[0] - seconds[1]}}
"""

CHILDREN = {"numpy": CHILD_NUMPY, "plugin": CHILD_PLUGIN, "gradcheck": CHILD_GRADCHECK,
            "torch": CHILD_TORCH}  # fmt: skip


def spawn(kind: str, examples: int, package_root: Path) -> dict[str, Any] | None:
    """One fresh process measuring `kind`, in a fresh temporary directory, importing
    gradcheck from package_root."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(package_root), *filter(None, [environment.get("PYTHONPATH")])]
    )
    program = CHILDREN[kind].format(examples=examples, heavy=HEAVY) + _REPORT.format(heavy=HEAVY)
    command = [sys.executable, "-c", program]
    with tempfile.TemporaryDirectory(prefix="gradcheck-cold-") as directory:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, cwd=directory, env=environment
        )
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def installed_copy(directory: Path) -> Path:
    """This checkout's gradcheck copied into directory/site-packages and compiled, as pip
    installs it. Where it lives matters: hypothesis reads the source of every module
    outside site-packages (its "local" code) for constants on a process's first check,
    which a checkout on PYTHONPATH would pay and an installed gradcheck does not."""
    site = directory / "site-packages"
    shutil.copytree(
        HERE.parent / "gradcheck", site / "gradcheck", ignore=shutil.ignore_patterns("__pycache__")
    )
    compileall.compile_dir(str(site), quiet=1)
    return site


def have_torch() -> bool:
    done = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, check=False)
    return done.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="fresh processes per figure")
    parser.add_argument("--examples", type=int, default=100, help="examples per check")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/cold_start.json"))
    parser.add_argument(
        "--from-checkout", action="store_true", help="import this checkout's gradcheck"
    )
    arguments = parser.parse_args()
    kinds = ["numpy", "plugin", "gradcheck"]
    if have_torch():
        kinds.append("torch")
    else:
        print("torch is not installed (pip install torch==2.13.0): its figures are skipped")
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory(prefix="gradcheck-site-") as directory:
        root = HERE.parent if arguments.from_checkout else installed_copy(Path(directory))
        for _ in range(arguments.repeats):  # interleaved: every kind sees the same load
            for kind in kinds:
                measured = spawn(kind, arguments.examples, root)
                if measured is not None:
                    runs[kind].append(measured)
    medians: dict[str, float] = {}
    loads: dict[str, Any] = {}
    for kind, measured in runs.items():
        for key in measured[0] if measured else ():
            values = [m[key] for m in measured]
            if key == "loaded":
                loads[f"{kind} (end)"] = values[0]
            elif isinstance(values[0], list):
                loads[key] = values[0]
            else:
                medians[key] = statistics.median(values)
    result: dict[str, Any] = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "repeats": arguments.repeats,
        "examples": arguments.examples,
        "gradcheck_from": "checkout" if arguments.from_checkout else "installed copy",
        "command": " ".join(["python", "benchmarks/cold_start.py", *sys.argv[1:]]),
        "seconds": medians,
        "modules_loaded": loads,
        "budgets": BUDGETS,
        "within_budget": {k: medians[k] <= v for k, v in BUDGETS.items() if k in medians},
        "runs": runs,
    }
    ratios = {}
    if "import_numpy" in medians:
        ratios["import_over_import_numpy"] = medians["import"] / medians["import_numpy"]
        ratios["resolve_over_import_numpy"] = medians["resolve"] / medians["import_numpy"]
    if "import_torch" in medians:
        ratios["resolve_over_import_torch"] = medians["resolve"] / medians["import_torch"]
        ratios["second_over_torch_second"] = medians["second"] / medians["torch_second"]
    result["ratios"] = ratios
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(result, indent=2))
    for key, value in medians.items():
        budget = BUDGETS.get(key)
        verdict = (
            ""
            if budget is None
            else f"  (budget {budget} s: {'met' if value <= budget else 'NOT met'})"
        )
        print(f"{key:>28}: {value:7.3f} s{verdict}")
    for key, value in ratios.items():
        print(f"{key:>28}: {value:7.2f}x")
    for key, value in loads.items():
        print(f"{key:>28}: {', '.join(value) or 'none of ' + ', '.join(HEAVY)}")
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()
