"""The pytest plugin as other projects meet it: the fixture, the marker, the options and
ini keys, the summary section, the report, pytest-xdist, and the example project."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
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
import pytest


def affine_forward(x, w, b):
    return x @ w + b


def affine_backward(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def relu_forward(x):
    return np.maximum(0.0, x)


def relu_backward(dout, x):
    return dout * (x > 0)


def test_affine(gradcheck):
    summary = gradcheck.check_backward(
        affine_forward, affine_backward, signature="(n,i),(i,j),(j)->(n,j)"
    )
    assert summary.passed


@pytest.mark.gradcheck(max_examples=7)
def test_relu(gradcheck):
    summary = gradcheck.check_backward(relu_forward, relu_backward, signature="(n,d)->(n,d)")
    assert summary.examples == 7
"""

WRONG = """
from test_demo_layers import affine_forward


def affine_backward_mean_bias(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.mean(axis=0)


def test_wrong_bias(gradcheck):
    gradcheck.check_backward(
        affine_forward, affine_backward_mean_bias, signature="(n,i),(i,j),(j)->(n,j)"
    )
"""


def _project(pytester: pytest.Pytester, *, wrong: bool = False) -> None:
    pytester.makepyfile(test_demo_layers=LAYERS)
    if wrong:
        pytester.makepyfile(test_demo_wrong=WRONG)
    pytester.syspathinsert()


def _summary(output: str) -> list[str]:
    """The lines of the gradcheck summary section."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^=+ gradcheck =+$", line))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("=")), len(lines))
    return lines[start + 1 : end]


def _layer_lines(output: str) -> list[str]:
    return [line for line in _summary(output) if re.match(r"^(PASSED|FAILED|ERROR) ", line)]


def test_loading_the_plugin_imports_nothing_heavy():
    code = (
        "import sys\n"
        "import gradcheck.pytest_plugin\n"
        "print(sorted(m for m in ('numpy', 'autograd', 'hypothesis', 'scipy') if m in sys.modules))\n"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"


def test_the_plugin_is_registered_through_the_pytest11_entry_point():
    entries = importlib.metadata.entry_points(group="pytest11")
    assert "gradcheck.pytest_plugin" in {entry.value for entry in entries}


def test_a_passing_layer_is_listed_with_its_examples_and_worst_ratio(pytester):
    _project(pytester)
    result = pytester.runpytest("--gradcheck-max-examples", "12")
    result.assert_outcomes(passed=2)
    lines = _layer_lines(result.stdout.str())
    assert len(lines) == 2
    affine = next(line for line in lines if "affine_forward" in line)
    relu = next(line for line in lines if "relu_forward" in line)
    assert affine.startswith("PASSED") and "12 examples" in affine  # the command line
    assert "7 examples" in relu  # the marker beats the command line
    ratio = float(re.search(r"worst error/bound ([0-9.e+-]+)", affine).group(1))
    assert 0.0 < ratio <= 1.0
    assert "oracles: autograd, finite-differences" in affine


def test_a_failing_layer_shows_its_shrunk_counterexample(pytester):
    _project(pytester, wrong=True)
    result = pytester.runpytest("--gradcheck-max-examples", "20")
    result.assert_outcomes(passed=2, failed=1)
    output = result.stdout.str()
    assert "the gradient of b (argument 2 of forward)" in output
    assert "sizes n=2, i=1, j=1" in output  # shrunk: a batch of two rows of ones
    assert "x = np.array([[1.0], [1.0]], dtype=np.float64)" in output  # the reproduction
    assert "from test_demo_wrong import affine_backward_mean_bias" in output
    assert "diagnosis: batch-mean-vs-sum" in output  # a mean over the batch where a sum belongs
    failed = [line for line in _layer_lines(output) if line.startswith("FAILED")]
    assert len(failed) == 1 and "affine_forward" in failed[0]


def test_ini_keys_are_read_and_the_command_line_wins(pytester):
    _project(pytester)
    pytester.makeini("[pytest]\ngradcheck_max_examples = 9\n")
    from_ini = pytester.runpytest()
    from_ini.assert_outcomes(passed=2)
    assert "9 examples" in next(l for l in _layer_lines(from_ini.stdout.str()) if "affine" in l)
    from_line = pytester.runpytest("--gradcheck-max-examples", "11")
    assert "11 examples" in next(l for l in _layer_lines(from_line.stdout.str()) if "affine" in l)


def test_a_gradcheck_profile_sets_the_examples(pytester):
    _project(pytester)
    result = pytester.runpytest("--gradcheck-profile", "gradcheck-ci")
    result.assert_outcomes(passed=2)
    from gradcheck.profiles import PROFILES

    expected = PROFILES["gradcheck-ci"]["max_examples"]
    affine = next(l for l in _layer_lines(result.stdout.str()) if "affine" in l)
    assert f"{expected} examples" in affine


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["--gradcheck-profile", "gradcheck-nope"], "unknown gradcheck profile 'gradcheck-nope'"),
        (["--gradcheck-max-examples", "many"], "must be a positive integer"),
    ],
)
def test_bad_options_are_usage_errors(pytester, arguments, words):
    _project(pytester)
    result = pytester.runpytest(*arguments)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert words in result.stderr.str()


def test_the_report_holds_a_cell_per_layer_and_the_failure(pytester):
    _project(pytester, wrong=True)
    result = pytester.runpytest("--gradcheck-max-examples", "10", "--gradcheck-report", "out")
    result.assert_outcomes(passed=2, failed=1)
    report = read_report(pytester.path / "out" / "report.json")
    names = {(cell.layer_type, cell.dtype) for cell in report.cells}
    assert names == {
        ("test_demo_layers.affine_forward", "float64"),
        ("test_demo_layers.relu_forward", "float64"),
    }
    affine = report.cell(
        layer_type="test_demo_layers.affine_forward", activation="functional", dtype="float64"
    )
    assert affine.verdicts["pass"] >= 10 and affine.verdicts["mismatch"] >= 1
    (failure,) = report.failures
    assert failure.layer_type == "test_demo_layers.affine_forward" and failure.verdict == "mismatch"
    assert failure.worst_entries[0].target == "b"
    assert failure.diagnosis == "batch-mean-vs-sum"
    assert "gradcheck report:" in result.stdout.str()


def test_under_xdist_the_outcomes_match_and_the_controller_summarises_once(pytester):
    _project(pytester, wrong=True)
    options = ["--gradcheck-profile", "gradcheck-ci", "--gradcheck-max-examples", "10"]
    serial = pytester.runpytest(*options)
    serial.assert_outcomes(passed=2, failed=1)
    report = pytester.path / "xdist-report"
    parallel = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:cacheprovider", *options, "--gradcheck-report", str(report)
    )
    parallel.assert_outcomes(passed=2, failed=1)
    output = parallel.stdout.str()
    assert len(re.findall(r"^=+ gradcheck =+$", output, flags=re.MULTILINE)) == 1

    def outcomes(lines: list[str]) -> set[tuple[str, str]]:
        return {(line.split()[0], line.split()[1]) for line in lines}

    assert outcomes(_layer_lines(output)) == outcomes(_layer_lines(serial.stdout.str()))
    passed = sorted(l for l in _layer_lines(output) if l.startswith("PASSED"))
    assert passed == sorted(l for l in _layer_lines(serial.stdout.str()) if l.startswith("PASSED"))
    written = read_report(report / "report.json")  # written once, by the controller
    assert len(written.cells) == 2 and len(written.failures) == 1


def test_the_example_project_runs_and_reports_its_wrong_layer(tmp_path):
    project = tmp_path / "numpy_layers"
    shutil.copytree(ROOT / "examples" / "numpy_layers", project)
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(project), environment.get("PYTHONPATH", "")]
    )
    arguments = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    registered = {entry.value for entry in importlib.metadata.entry_points(group="pytest11")}
    if "gradcheck.pytest_plugin" not in registered:  # gradcheck on the path, not installed
        arguments += ["-p", "gradcheck.pytest_plugin"]
    run = subprocess.run(
        arguments, cwd=project, env=environment, capture_output=True, text=True, timeout=300
    )
    output = run.stdout
    assert run.returncode == 1, output + run.stderr
    assert "1 failed, 5 passed" in output
    assert "FAILED tests/test_numpy_layers.py::test_softmax" in output
    assert "the gradient of x (argument 0 of forward)" in output
    assert "sizes n=1, c=2" in output  # shrunk to one row of two classes
    assert "from numpy_layers.functional import softmax_backward" in output
    lines = _layer_lines(output)
    assert sum(line.startswith("PASSED") for line in lines) == 5
    (failed,) = [line for line in lines if line.startswith("FAILED")]
    assert "numpy_layers.functional.softmax_forward" in failed
    assert "25 examples" in next(l for l in lines if "affine_forward" in l)  # the ini key
