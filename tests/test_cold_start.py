"""What a fresh process loads at each step of its way to a check (issue 19's cold start):
`import gradcheck` loads none of the heavy libraries, resolving `check_backward` loads
numpy alone, and a check loads hypothesis and autograd but never scipy. The times
themselves are measured by benchmarks/cold_start.py, not asserted here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

HEAVY = ("numpy", "hypothesis", "autograd", "scipy")


def _loaded_after(statements: str, where: Path | None = None) -> list[str]:
    """The heavy libraries a fresh interpreter holds after running the statements."""
    code = f"import sys\n{statements}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=where
    )
    return ast.literal_eval(shown.stdout.strip())


def test_importing_gradcheck_loads_nothing_heavy():
    assert _loaded_after("import gradcheck") == []


def test_the_exception_classes_load_nothing_heavy():
    assert _loaded_after("from gradcheck import GradientMismatch, UserCodeError") == []


def test_resolving_check_backward_loads_numpy_alone():
    assert _loaded_after("import gradcheck\ngradcheck.check_backward") == ["numpy"]


def test_a_check_loads_hypothesis_and_autograd_but_not_scipy(tmp_path: Path):
    statements = (
        "import numpy as np\n"
        "import gradcheck\n"
        "def forward(x, w):\n"
        "    return np.tanh(x @ w)\n"
        "def backward(dout, x, w):\n"
        "    g = dout * (1 - np.tanh(x @ w) ** 2)\n"
        "    return g @ w.T, x.T @ g\n"
        "gradcheck.check_backward(forward, backward, signature='(n,i),(i,j)->(n,j)',\n"
        "                         max_examples=3)\n"
    )
    # in tmp_path: the check's hypothesis database stays out of the repository
    assert _loaded_after(statements, tmp_path) == ["autograd", "hypothesis", "numpy"]
