"""Issue 15's signatures where users meet them: `gradcheck check` specs through the real
command, and the pytest plugin's `gradcheck` fixture and marker (pytester)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# In-process pytester runs drop the modules a run imported; numpy cannot be imported twice
# in one process, so the heavy modules are imported here, before any run.
import gradcheck.user.api  # noqa: F401
from gradcheck.report import read_report

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]

LAYERS = """
import numpy as np


def mean_pool(x):
    n, c, h, w = x.shape
    return x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def mean_pool_backward(dout, x):
    n, c, h, w = x.shape
    dx = np.zeros_like(x)
    dx[:, :, : h // 2 * 2, : w // 2 * 2] = dout.repeat(2, axis=2).repeat(2, axis=3) / 4
    return dx


def cross_entropy(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(labels)), labels].mean()


def cross_entropy_backward(dout, logits, labels):
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(labels)), labels] -= 1.0
    return dout * p / len(labels)


def cross_entropy_backward_wrong(dout, logits, labels):
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return dout * p / p.sum(axis=1, keepdims=True) / len(labels)


def two_outputs(x, w):
    a = x @ w
    return a, np.tanh(a), (x, w)


def two_outputs_backward(da, dt, cache):
    x, w = cache
    g = da + dt * (1.0 - np.tanh(x @ w) ** 2)
    return g @ w.T, x.T @ g


def two_outputs_backward_wrong(da, dt, cache):
    x, w = cache
    g = da + dt * np.tanh(x @ w) ** 2  # 1 - tanh² written as tanh²
    return g @ w.T, x.T @ g


class Embedding:
    def forward(self, indices):
        self.indices = indices
        return self.W[indices]

    def backward(self, dout):
        self.dW = np.zeros_like(self.W)
        np.add.at(self.dW, self.indices, dout)
"""

SPECS = """
from user_demo_layers import *

POOL = {
    "forward": mean_pool,
    "backward": mean_pool_backward,
    "signature": "(n,c,h,w)->(n,c,h//2,w//2)",
    "constraints": ("h % 2 == 0",),
}
WRONG_LABELS = {
    "forward": cross_entropy,
    "backward": cross_entropy_backward_wrong,
    "signature": "(n,j),(n)int[0,j)->()",
    "constraints": ("j >= 2",),
}
CACHED = {
    "style": "cached",
    "forward": two_outputs,
    "backward": two_outputs_backward,
    "signature": "(n,i),(i,j)->(n,j),(n,j)",
}
WRONG_CACHED = {**CACHED, "backward": two_outputs_backward_wrong}
EMBEDDING = {
    "style": "object",
    "layer": Embedding,
    "parameters": ["W"],
    "signature": "(n,t)int[0,v),(v,d)->(n,t,d)",
}
"""


def _command(tmp_path: Path, target: str) -> tuple[int, str, str]:
    (tmp_path / "user_demo_layers.py").write_text(LAYERS)
    (tmp_path / "specs.py").write_text(SPECS)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    done = subprocess.run(
        [sys.executable, "-m", "gradcheck", "check", target, "--examples", "4"]
        + ["--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=240,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("spec", ["POOL", "CACHED", "EMBEDDING"])
def test_the_command_checks_specs_with_the_new_signatures(tmp_path, spec):
    code, out, err = _command(tmp_path, f"specs:{spec}")
    assert code == 0, out + err
    assert out.startswith("PASSED") and "4 examples" in out
    report = read_report(tmp_path / "out" / "report.json")
    assert report.cells and not report.failures


def test_the_command_reports_a_wrong_layer_with_labels_shrunk(tmp_path):
    code, out, err = _command(tmp_path, "specs:WRONG_LABELS")
    assert code == 1 and "FAILED" in out
    assert "sizes n=1, j=2" in err  # the smallest the constraint j >= 2 allows
    assert "labels = np.array([0], dtype=np.int64)" in err
    assert "constraints=('j >= 2',)," in err
    (failure,) = read_report(tmp_path / "out" / "report.json").failures
    assert failure.case.theta == [[0]]  # the labels, as drawn


def test_the_command_reports_a_wrong_layer_with_two_outputs(tmp_path):
    code, out, err = _command(tmp_path, "specs:WRONG_CACHED")
    assert code == 1 and "FAILED" in out
    assert "example=((x, w), (dout0, dout1))," in err
    (failure,) = read_report(tmp_path / "out" / "report.json").failures
    assert len(failure.case.delta) == 2  # one dout per output
    assert "two_outputs" in (tmp_path / "out" / "report.md").read_text()
    assert (tmp_path / "out" / "report.html").exists()


PLUGIN_TESTS = """
import pytest
from user_demo_layers import *


@pytest.mark.gradcheck(max_examples=5)
def test_pool(gradcheck):
    summary = gradcheck.check_backward(
        mean_pool, mean_pool_backward, signature="(n,c,h,w)->(n,c,h//2,w//2)"
    )
    assert summary.examples == 5


def test_labels(gradcheck):
    gradcheck.check_backward(
        cross_entropy,
        cross_entropy_backward,
        signature="(n,j),(n)int[0,j)->()",
        constraints=("j >= 2",),
    )


def test_two_outputs(gradcheck):
    gradcheck.check_backward_cached(
        two_outputs, two_outputs_backward, signature="(n,i),(i,j)->(n,j),(n,j)"
    )


def test_wrong_labels(gradcheck):
    gradcheck.check_backward(
        cross_entropy,
        cross_entropy_backward_wrong,
        signature="(n,j),(n)int[0,j)->()",
        constraints=("j >= 2",),
    )
"""


def test_the_plugin_checks_layers_with_the_new_signatures(pytester):
    pytester.makepyfile(user_demo_layers=LAYERS, test_new_signatures=PLUGIN_TESTS)
    pytester.syspathinsert()
    result = pytester.runpytest("--gradcheck-max-examples", "7")
    result.assert_outcomes(passed=3, failed=1)
    output = result.stdout.str()
    lines = [line for line in output.splitlines() if re.match(r"^(PASSED|FAILED) \S+ \(", line)]
    assert len(lines) == 4
    assert any("mean_pool" in line and "5 examples" in line for line in lines)  # the marker
    assert any("two_outputs (cached): 7 examples" in line for line in lines)
    assert "sizes n=1, j=2" in output and "labels = np.array([0], dtype=np.int64)" in output
