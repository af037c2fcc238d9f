"""The command as CI and a new user run it: shards merged through the real command,
errors as cells, exit codes, signals and the files of --out (issue 18)."""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gradcheck import campaign, cli
from gradcheck.cli import output
from gradcheck.report import read_report


def gradcheck(*arguments: str, cwd: Path | None = None, timeout: float = 240):
    """The real command in its own process: (exit code, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "gradcheck", *arguments],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )
    return done.returncode, done.stdout, done.stderr


def test_shards_of_separate_processes_merge(tmp_path):
    # Each shard is its own process with its own command line, --out, --workers and no
    # --seed; three layer types, so shard 2/2 (maxout) selects other layer types than 1/2.
    selection = ["--examples", "2", "--layer-types", "dense,maxout,rbf"]
    selection += ["--activations", "tanh", "--dtypes", "float64"]
    for n in (2,):
        paths = []
        for k in range(1, n + 1):
            out = tmp_path / f"{k}of{n}"
            workers = str(k)
            code, _, err = gradcheck(
                "run", *selection, "--shard", f"{k}/{n}", "--out", str(out),
                "--workers", workers, "--no-html",
            )  # fmt: skip
            assert code == cli.OK, err
            paths.append(str(out / "report.json"))
        merged = tmp_path / f"merged{n}.json"
        code, _, err = gradcheck(
            "report", "--merge", *paths, "--format", "json", "--out", str(merged)
        )
        assert code == cli.OK, err
        report = read_report(merged)
        assert report.settings["shard"] is None and report.status == "complete"
        assert {cell.layer_type for cell in report.cells} == {"dense", "maxout", "rbf"}
        assert "--shard" not in report.settings["command"]
        assert json.loads(merged.read_text())["summary"]["cells"] == 3
    shards = [read_report(tmp_path / f"{k}of2/report.json") for k in (1, 2)]
    assert {c.layer_type for c in shards[1].cells} == {"maxout"}  # the layer types differed


LAYERS = """
import sys

import numpy as np

import gradcheck

SIG = "(n,i),(i,j)->(n,j)"


def forward(x, w):
    return x @ w


def backward(dout, x, w):
    return dout @ w.T, x.T @ dout


def raising_backward(dout, x, w):
    raise RuntimeError("boom in backward")


def short_forward(x, w):  # the wrong shape: UserOutputError
    return (x @ w)[:, :0]


def noisy_forward(x, w):  # NondeterministicError
    return x @ w + np.random.default_rng().normal()


def aliased_forward(x):  # returns its argument: AliasedOutputError
    return x


def aliased_backward(dout, x):
    return (dout,)


def exiting_backward(dout, x, w):
    sys.exit(7)


def every_kind():
    options = {"max_examples": 5}
    gradcheck.check_backward(forward, raising_backward, signature=SIG, name="raises", **options)
    gradcheck.check_backward(short_forward, backward, signature=SIG, name="short", **options)
    gradcheck.check_backward(noisy_forward, backward, signature=SIG, name="noisy", **options)
    gradcheck.check_backward(
        aliased_forward, aliased_backward, signature="(n,i)->(n,i)", name="aliased", **options
    )
    gradcheck.check_backward(forward, backward, signature=SIG, name="right", **options)


RAISES = {"forward": forward, "backward": raising_backward, "signature": SIG, "max_examples": 5}
EXITS = {"forward": forward, "backward": exiting_backward, "signature": SIG, "max_examples": 5}
UNKNOWN = {"forward": forward, "backward": backward, "signature": SIG, "colour": "red"}
MISSING = {"forward": forward, "signature": SIG}
"""


def _project(tmp_path: Path) -> Path:
    (tmp_path / "my_layers.py").write_text(LAYERS)
    (tmp_path / "broken_layers.py").write_text("import numpy\nraise ValueError('broken module')\n")
    return tmp_path


def test_errors_are_cells_of_the_report_and_every_check_runs(tmp_path):
    project = _project(tmp_path)
    code, _, err = gradcheck("check", "my_layers:every_kind", "--out", "out", cwd=project)
    assert code == cli.MISMATCH, err
    report = read_report(project / "out/report.json")
    errors = {cell.layer_type: cell.verdicts["error"] for cell in report.cells}
    # every check ran, though the first raised; each error is a cell of verdict "error"
    assert errors == {"raises": 1, "short": 1, "noisy": 1, "aliased": 1, "right": 0}
    raised = {f.layer_type: f.exception for f in report.failures if f.verdict == "error"}
    assert raised["short"] == "UserOutputError"
    assert raised["noisy"] == "NondeterministicError"
    assert raised["aliased"] == "AliasedOutputError"
    assert raised["raises"] == "UserCodeError"
    assert "boom in backward" in next(
        f.message for f in report.failures if f.layer_type == "raises"
    )
    markdown = (project / "out/report.md").read_text()
    assert "AliasedOutputError" in markdown and "| error |" in markdown.replace("|error|", "")
    html = (project / "out/report.html").read_text()
    assert "NondeterministicError" in html and 'class="verdict error"' in html


def test_a_layer_whose_code_raises_still_gets_a_report(tmp_path):
    project = _project(tmp_path)
    code, _, err = gradcheck("check", "my_layers:RAISES", "--out", "out", "--no-html", cwd=project)
    assert code == cli.MISMATCH, err
    (failure,) = read_report(project / "out/report.json").failures
    assert failure.verdict == "error" and "boom in backward" in failure.message


def test_check_exit_codes_follow_the_table(tmp_path):
    project = _project(tmp_path)
    code, _, err = gradcheck("check", "broken_layers:X", "--out", "out", cwd=project)
    assert code == cli.USAGE_ERROR and "broken module" in err and "Traceback" not in err
    code, _, err = gradcheck("check", "my_layers:UNKNOWN", "--out", "out", cwd=project)
    assert code == cli.USAGE_ERROR and "'colour'" in err and "'signature'" in err
    code, _, err = gradcheck("check", "my_layers:MISSING", "--out", "out", cwd=project)
    assert code == cli.USAGE_ERROR and "'backward'" in err
    code, _, err = gradcheck("check", "my_layers:EXITS", "--out", "out", "--no-html", cwd=project)
    assert code == cli.MISMATCH, err  # not 7: the layer's exit is its error
    (failure,) = read_report(project / "out/report.json").failures
    assert failure.verdict == "error" and "sys.exit(7)" in failure.message


def test_the_plugin_reports_errors_as_cells(tmp_path):
    project = _project(tmp_path)
    (project / "test_errors.py").write_text(
        "import pytest\n"
        "from gradcheck.errors import UserCodeError\n"
        "from my_layers import SIG, aliased_backward, aliased_forward, backward, noisy_forward\n"
        "def test_noisy(gradcheck):\n"
        "    with pytest.raises(UserCodeError):\n"
        "        gradcheck.check_backward(noisy_forward, backward, signature=SIG, name='noisy')\n"
        "def test_aliased(gradcheck):\n"
        "    with pytest.raises(UserCodeError):\n"
        "        gradcheck.check_backward(aliased_forward, aliased_backward,\n"
        "                                 signature='(n,i)->(n,i)', name='aliased')\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--gradcheck-report",
         "rep", "--gradcheck-max-examples", "5", "test_errors.py"],
        capture_output=True, text=True, cwd=project, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = read_report(project / "rep/report.json")
    cells = {cell.layer_type: cell for cell in report.cells}
    assert cells["noisy"].verdicts["error"] == 1 and cells["aliased"].verdicts["error"] == 1
    assert cells["aliased"].has_problems  # not a blue pass
    kinds = {f.layer_type: f.exception for f in report.failures}
    assert kinds == {"noisy": "NondeterministicError", "aliased": "AliasedOutputError"}


# ---- --out, its lock, --workers -----------------------------------------------------------

ONE_CELL = ["--examples", "1", "--layer-types", "dense", "--activations", "identity"]
ONE_CELL += ["--dtypes", "float64", "--workers", "1"]


def main(capsys, *arguments: str):
    code = cli.main(list(arguments))
    out, err = capsys.readouterr()
    return code, out, err


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_out_naming_a_file_is_a_usage_error(capsys, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("not a directory")
    code, _, err = main(capsys, "run", *ONE_CELL, "--out", str(target))
    assert code == cli.USAGE_ERROR and str(target) in err and "Traceback" not in err
    project = _project(tmp_path)
    code, _, err = gradcheck("check", "my_layers:RAISES", "--out", str(target), cwd=project)
    assert code == cli.USAGE_ERROR and str(target) in err and "Traceback" not in err


def test_a_read_only_disk_is_a_usage_error(capsys, tmp_path, monkeypatch):
    def read_only(*arguments, **keywords):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "out"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    code, _, err = main(capsys, "run", *ONE_CELL, "--out", str(tmp_path / "out"))
    assert code == cli.USAGE_ERROR, err
    assert "Read-only file system" in err and str(tmp_path / "out") in err
    assert "internal error" not in err and "Traceback" not in err


def test_a_full_disk_is_a_usage_error_and_leaves_no_temporary_file(capsys, tmp_path, monkeypatch):
    write_text = Path.write_text

    def full(self, text, *arguments, **keywords):
        if self.name.endswith(".tmp"):  # half written, then the disk is full
            write_text(self, text[: len(text) // 2], *arguments, **keywords)
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(self, text, *arguments, **keywords)

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "out"
    code, _, err = main(capsys, "run", *ONE_CELL, "--out", str(out))
    assert code == cli.USAGE_ERROR, err
    assert "No space left on device" in err and str(out / "report.md") in err
    assert leftovers(out) == [] and "Traceback" not in err


def test_a_second_run_into_the_same_out_is_refused(capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".gradcheck.lock").write_text(f"{first.pid}\n")  # the first run's lock
        code, _, err = main(capsys, "run", *ONE_CELL, "--out", str(out))
        assert code == cli.USAGE_ERROR and f"process {first.pid}" in err and str(out) in err
        assert not (out / "report.json").exists()
    finally:
        first.kill()
        first.wait()
    # the first run is gone: its lock is stale and taken over, then released
    code, _, err = main(capsys, "run", *ONE_CELL, "--out", str(out), "--no-html")
    assert code == cli.OK, err
    assert not (out / ".gradcheck.lock").exists()


def test_workers_are_bounded_by_the_cells(capsys, tmp_path):
    arguments = [a if a != "1" or i != len(ONE_CELL) - 1 else "30" for i, a in enumerate(ONE_CELL)]
    code, _, err = main(capsys, "run", *arguments, "--out", str(tmp_path), "--no-html")
    assert code == cli.OK and "--workers is bounded" in err
    assert read_report(tmp_path / "report.json").settings["workers"] == 1


# ---- signals ------------------------------------------------------------------------------


def test_sigterm_is_an_interrupt(tmp_path):
    errors = (tmp_path / "stderr.txt").open("w")  # a file, not a pipe that could fill up
    process = subprocess.Popen(
        [sys.executable, "-m", "gradcheck", "run", "--examples", "200", "--workers", "2",
         "--out", str(tmp_path), "--database", str(tmp_path / "db"), "--no-html"],
        stdout=subprocess.DEVNULL, stderr=errors,
    )  # fmt: skip
    report = tmp_path / "report.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until a cell is on disk
        if report.exists() and json.loads(report.read_text())["cells"]:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    errors.close()
    err = (tmp_path / "stderr.txt").read_text()
    assert process.returncode == cli.INTERRUPTED, err
    assert json.loads(report.read_text())["status"] == "interrupted"
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_ctrl_c_after_the_last_cell_keeps_every_cell(capsys, tmp_path, monkeypatch):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(campaign, "cost_points", interrupted)
    selection = ["--examples", "1", "--layer-types", "dense", "--activations", "identity,tanh"]
    code, _, err = main(capsys, "run", *selection, "--workers", "1", "--out", str(tmp_path))
    assert code == cli.INTERRUPTED, err
    report = read_report(tmp_path / "report.json")
    assert report.status == "interrupted" and len(report.cells) == 4


def test_a_signal_while_rendering_html_leaves_the_report_interrupted(capsys, tmp_path, monkeypatch):
    def interrupted(report):
        raise KeyboardInterrupt

    monkeypatch.setattr(output, "render_html", interrupted)
    code, _, err = main(capsys, "run", *ONE_CELL, "--out", str(tmp_path))
    assert code == cli.INTERRUPTED, err
    assert read_report(tmp_path / "report.json").status == "interrupted"
    assert leftovers(tmp_path) == []


def test_sigterm_stops_gradcheck_check_and_keeps_the_examples_that_finished(tmp_path):
    """`gradcheck check` on a slow layer: the report written on SIGTERM is "interrupted"
    and counts the examples that finished before it."""
    (tmp_path / "slow_layer.py").write_text(
        "import time\n"
        "import numpy as np\n"
        "def forward(x):\n"
        "    time.sleep(0.002)\n"
        "    return np.tanh(x)\n"
        "def backward(dout, x):\n"
        "    return dout * (1.0 - np.tanh(x) ** 2)\n"
        "started = open(__file__ + '.started', 'w')\n"
        "spec = dict(forward=forward, backward=backward, signature='(n)->(n)',\n"
        "            max_examples=100000, timeout=None)\n"
    )
    errors = (tmp_path / "stderr.txt").open("w")
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "gradcheck", "check", "slow_layer:spec", "--out", str(out),
         "--no-html"],
        stdout=subprocess.DEVNULL, stderr=errors, cwd=tmp_path,
    )  # fmt: skip
    time.sleep(1.0)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (tmp_path / "slow_layer.py.started").exists():
        time.sleep(0.2)
    time.sleep(4.0)  # a few hundred examples, far from the 100 000 asked for
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    errors.close()
    err = (tmp_path / "stderr.txt").read_text()
    assert process.returncode == cli.INTERRUPTED, err
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "interrupted"
    assert sum(cell["examples"] for cell in report["cells"]) > 0, report["cells"]
    assert "Traceback" not in err
