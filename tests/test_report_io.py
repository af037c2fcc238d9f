"""report.json on disk: atomic writes, helpful read errors, the incremental writer."""

from __future__ import annotations

import json
import os
import platform

import pytest
from test_report_support import build_report, full_report

import gradcheck.report.io as report_io
from gradcheck import GradcheckError
from gradcheck.report import Cell, Report, ReportWriter, environment, read_report, write_report


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name != "report.json")


def test_a_written_report_reads_back_equal(tmp_path):
    report = build_report()
    report.failures = [f for f in report.failures if f.verdict != "invalid-input"]  # NaN ≠ NaN
    path = write_report(report, tmp_path / "deep" / "report.json")
    assert read_report(path) == report
    json.loads(path.read_text(), parse_constant=pytest.fail)
    assert leftovers(path.parent) == []


def _dump_half_then_fail(data, stream, **options):
    text = json.dumps(data, **options)
    stream.write(text[: len(text) // 2])
    raise OSError("disk full")


def _replace_fails(source, target):
    raise OSError("rename refused")


@pytest.mark.parametrize(
    ("module", "name", "failing"),
    [(json, "dump", _dump_half_then_fail), (os, "replace", _replace_fails)],
    ids=["json.dump", "os.replace"],
)
def test_a_write_that_fails_midway_leaves_the_previous_file_intact(
    tmp_path, monkeypatch, module, name, failing
):
    path = tmp_path / "report.json"
    write_report(build_report(), path)
    before = path.read_bytes()
    changed = full_report()
    changed.status = "interrupted"
    monkeypatch.setattr(module, name, failing)
    with pytest.raises(OSError, match=r"disk full|rename refused"):
        write_report(changed, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert read_report(path).status == "running"
    assert leftovers(tmp_path) == []


def test_a_report_that_cannot_be_serialised_changes_nothing(tmp_path):
    path = tmp_path / "report.json"
    write_report(build_report(), path)
    before = path.read_bytes()
    broken = build_report()
    broken.settings["workers"] = 0
    with pytest.raises(GradcheckError, match=r"settings\.workers"):
        write_report(broken, path)
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def _truncated(path):
    write_report(build_report(), path)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def _rewritten(change):
    def write(path):
        data = build_report().to_json_dict()
        change(data)
        path.write_text(json.dumps(data))

    return write


READ_ERRORS = [
    ("missing", lambda path: None, "no report at"),
    ("directory", lambda path: path.mkdir(), "is a directory"),
    ("empty", lambda path: path.write_text(""), "is empty"),
    ("truncated", _truncated, "is not valid JSON"),
    ("bare NaN", lambda path: path.write_text('{"schema": NaN}'), "bare NaN"),
    ("not an object", lambda path: path.write_text("[1, 2]"), "must be a JSON object"),
    (
        "other schema",
        _rewritten(lambda d: d.update(schema="coverage-report")),
        "not a gradcheck report",
    ),
    ("newer version", _rewritten(lambda d: d.update(version=2)), "upgrade gradcheck"),
    (
        "broken cell",
        _rewritten(lambda d: d["cells"][1].pop("verdicts")),
        r"cells\[1\] has no 'verdicts'",
    ),
]


@pytest.mark.parametrize(("what", "make", "message"), READ_ERRORS, ids=[e[0] for e in READ_ERRORS])
def test_reading_a_bad_report_says_what_is_wrong(tmp_path, what, make, message):
    path = tmp_path / "report.json"
    make(path)
    with pytest.raises(GradcheckError, match=message) as raised:
        read_report(path)
    assert str(path) in str(raised.value)


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_writer_rewrites_at_most_once_per_interval_and_always_on_close(tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(report_io.time, "monotonic", clock)
    path = tmp_path / "report.json"
    cells = build_report().cells
    writer = ReportWriter(path, Report(created="2024-05-01T12:00:00Z"))
    assert read_report(path).status == "running" and read_report(path).cells == []
    writer.add(cells[0])
    assert writer.writes == 1 and read_report(path).cells == []  # too soon after the first write
    clock.now += 0.5
    assert not writer.flush()
    clock.now += 0.6
    assert writer.flush() and writer.writes == 2
    assert [c.key for c in read_report(path).cells] == [cells[0].key]
    writer.add(cells[1])
    writer.add(cells[0])  # the same key again replaces the cell
    assert writer.writes == 2
    writer.close("complete")
    written = read_report(path)
    assert written.status == "complete" and [c.key for c in written.cells] == [
        cells[0].key,
        cells[1].key,
    ]
    with pytest.raises(GradcheckError, match="closed"):
        writer.add(cells[2])


def test_an_interrupted_run_leaves_a_valid_report_of_what_finished(tmp_path):
    path = tmp_path / "report.json"
    report = build_report()
    finished = report.cells[:3]
    report.cells = []

    def campaign():
        with ReportWriter(path, report, interval=3600) as writer:
            for cell in finished:
                writer.add(cell)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        campaign()
    written = read_report(path)
    assert written.status == "interrupted"
    assert written.cells == finished
    assert written.summary.examples == sum(c.examples for c in finished)


def test_the_writer_refuses_what_a_report_does_not_hold(tmp_path):
    writer = ReportWriter(tmp_path / "report.json", build_report())
    with pytest.raises(GradcheckError, match="not str"):
        writer.add("a cell")  # type: ignore[arg-type]
    with pytest.raises(GradcheckError, match="closes"):
        writer.close("running")
    writer.add(Cell(layer_type="dense", activation="tanh", dtype="float16"))
    writer.close("interrupted")
    assert read_report(tmp_path / "report.json").cells[-1].dtype == "float16"


def test_the_environment_names_the_versions_a_report_needs():
    found = environment()
    assert set(found) == {"python", "numpy", "autograd", "hypothesis", "gradcheck", "platform"}
    assert found["python"] == platform.python_version()
    import numpy

    assert found["numpy"] == numpy.__version__
    assert all(isinstance(v, str) for v in found.values())
