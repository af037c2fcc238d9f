"""The command as CI and a new user run it: shards merged through the real command,
errors as cells, exit codes, signals and the files of --out (issue 18)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gradcheck import cli
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
    # Each shard is its own process with its own command line, --out and no --seed; only
    # three layer types, so shard 3/3 selects other layer types than shard 1/3.
    selection = ["--examples", "2", "--layer-types", "dense,maxout,rbf"]
    selection += ["--activations", "tanh", "--dtypes", "float64"]
    for n in (2, 3):
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
