"""The report model: cells fold real CheckResults, JSON round-trips exactly (NaN and
infinities included) and matches the shipped schema, and shards merge into the report of
one run."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import jsonschema
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_report_support import SETTINGS, build_report, checked, full_report, key_of

from gradcheck import GradcheckError, Verdict, check
from gradcheck.catalogue.checker import ORACLES as CHECKER_ORACLES
from gradcheck.report import (
    ORACLES,
    RATIO_BIN_EDGES,
    RATIO_BINS,
    SCHEMA_VERSION,
    STATUSES,
    VERDICTS,
    Cell,
    CostPoint,
    Counterexample,
    Failure,
    OracleSummary,
    Report,
    WorstEntry,
    load_schema,
    merge,
    ratio_bin,
)


def refuse_constant(name):
    raise AssertionError(f"invalid JSON constant {name}")


def strict_json(data) -> object:
    """Through JSON text and back, refusing NaN and Infinity tokens as invalid JSON."""
    return json.loads(json.dumps(data), parse_constant=refuse_constant)


def validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


# ---- vocabulary and import cost -----------------------------------------------------------


def test_the_report_speaks_the_checkers_vocabulary():
    # the checker's verdicts, then "error": a user layer whose own code raised
    assert (*(v.value for v in Verdict), "error") == VERDICTS
    assert tuple(CHECKER_ORACLES) == ORACLES


def test_the_schema_agrees_with_the_model():
    schema = load_schema()
    definitions = schema["$defs"]
    assert schema["properties"]["version"] == {"const": SCHEMA_VERSION}
    assert tuple(schema["properties"]["status"]["enum"]) == STATUSES
    assert tuple(definitions["verdict"]["enum"]) == VERDICTS
    assert tuple(definitions["oracle"]["enum"]) == ORACLES
    histogram = definitions["oracleSummary"]["properties"]["histogram"]
    assert histogram["minItems"] == histogram["maxItems"] == RATIO_BINS
    edges = schema["properties"]["ratio_bin_edges"]
    assert edges["minItems"] == edges["maxItems"] == len(RATIO_BIN_EDGES)


def test_importing_the_report_loads_no_plotting_templating_or_numpy():
    code = (
        "import sys, gradcheck.report\n"
        "heavy = [m for m in ('matplotlib', 'jinja2', 'numpy') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == ""


# ---- cells fold real results -----------------------------------------------------------------


def test_cells_count_every_result_once():
    pairs = checked()
    report = build_report()
    verdicts = {v: 0 for v in VERDICTS}
    for _, result in pairs:
        verdicts[result.verdict.value] += 1
    summary = report.summary
    assert summary.examples == len(pairs) == sum(c.examples for c in report.cells)
    assert summary.verdicts == verdicts
    assert summary.cells == len({key_of(case, result) for case, result in pairs})
    assert verdicts["mismatch"] >= 2 and verdicts["coupled"] >= 2 and verdicts["pass"] >= 4
    assert verdicts["invalid-input"] == 1 and verdicts["non-differentiable"] == 1


def test_a_cell_keeps_each_oracles_worst_ratio_error_and_histogram():
    pairs = checked()
    report = build_report()
    for cell in report.cells:
        mine = [r for case, r in pairs if key_of(case, r) == cell.key]
        assert cell.examples == len(mine)
        for oracle in ORACLES:
            comparisons = [c for r in mine for c in r.comparisons if c.oracle == oracle]
            summary = cell.oracles[oracle]
            assert summary.comparisons == len(comparisons)
            compared = [r for r in mine if any(c.oracle == oracle for c in r.comparisons)]
            assert summary.examples == len(compared)
            if not comparisons:
                assert summary.worst_ratio is None and summary.max_abs_error is None
                continue
            assert summary.worst_ratio == max(c.worst_ratio for c in comparisons)
            assert summary.max_abs_error == max(c.max_abs_error for c in comparisons)
            for result in compared:
                worst = max(c.worst_ratio for c in result.comparisons if c.oracle == oracle)
                assert summary.histogram[ratio_bin(worst)] >= 1
    mismatched = [c for c in report.cells if c.verdicts["mismatch"]]
    assert mismatched and all(c.worst_ratio > 1.0 for c in mismatched)
    passing = [c for c in report.cells if c.verdicts["pass"] == c.examples]
    assert passing and all(c.worst_ratio <= 1.0 for c in passing)


def test_a_cell_refuses_a_result_of_another_cell():
    _, result = checked()[0]
    cell = Cell(layer_type="rbf", activation="identity", dtype="float64")
    with pytest.raises(GradcheckError, match="does not belong in the cell rbf / identity"):
        cell.add(result)
    assert cell.examples == 0


@given(st.floats(min_value=0.0, allow_nan=False))
def test_a_ratio_lands_in_the_bin_whose_edges_bracket_it(ratio):
    k = ratio_bin(ratio)
    assert 0 <= k < RATIO_BINS
    if k > 0:
        assert RATIO_BIN_EDGES[k - 1] < ratio
    if k < len(RATIO_BIN_EDGES):
        assert ratio <= RATIO_BIN_EDGES[k]


def test_ratio_bins_at_the_ends_and_at_the_bound():
    assert ratio_bin(0.0) == 0
    assert ratio_bin(math.inf) == ratio_bin(math.nan) == RATIO_BINS - 1
    # At the bound is a pass: it shares a bin with ratios below 1, not with misses.
    assert ratio_bin(1.0) == ratio_bin(0.5) != ratio_bin(1.0000001)


def test_a_failure_keeps_the_case_and_the_worst_entries():
    case, result = next((c, r) for c, r in checked() if r.verdict is Verdict.MISMATCH)
    failure = Failure.from_check_result(
        result, z=case.z, theta=case.theta, delta=case.delta, reproduction="print(1)"
    )
    assert failure.key == key_of(case, result) and failure.verdict == "mismatch"
    assert failure.message == result.message
    assert np.array_equal(np.array(failure.case.z), case.z)
    assert failure.case.shapes == {
        "z": list(np.shape(case.z)),
        "theta": list(np.shape(case.theta)),
        "delta": list(np.shape(case.delta)),
    }
    ratios = [row.ratio for row in failure.worst_entries]
    assert ratios == sorted(ratios, reverse=True) and ratios[0] > 1.0
    worst = result.worst()
    top = failure.worst_entries[0]
    assert top.ratio == worst.worst_ratio and top.entry == dict(worst.worst_entry)
    assert top.references[worst.oracle] == worst.reference
    assert top.hand_written == worst.hand_written
    failing = {c.oracle for c in result.failures()}
    assert failing <= {o for row in failure.worst_entries for o in row.references}


def test_a_result_without_a_case_needs_its_names():
    case, result = next((c, r) for c, r in checked() if r.case is None)
    with pytest.raises(GradcheckError, match="pass layer_type= and activation="):
        Failure.from_check_result(
            result, z=case.z, theta=case.theta, delta=case.delta, reproduction=""
        )
    failure = Failure.from_check_result(
        result,
        z=case.z,
        theta=case.theta,
        delta=case.delta,
        reproduction="",
        layer_type="dense",
        activation="relu",
    )
    assert failure.key == ("dense", "relu", "float64") and failure.worst_entries == []
    assert any(isinstance(v, float) and math.isnan(v) for row in failure.case.z for v in row)


# ---- JSON --------------------------------------------------------------------------------------


def test_a_campaign_report_validates_against_the_schema_and_round_trips_exactly():
    report = full_report()
    data = report.to_json_dict()
    validator().validate(data)
    text = strict_json(data)
    assert text == data
    again = Report.from_json_dict(text)
    assert again.to_json_dict() == data
    # NaN never equals itself, so compare objects only where no NaN is stored.
    without_nan = full_report()
    without_nan.failures = [f for f in without_nan.failures if f.verdict != "invalid-input"]
    assert Report.from_json_dict(strict_json(without_nan.to_json_dict())) == without_nan


def test_nan_and_infinities_survive_the_round_trip_as_valid_json():
    report = full_report()
    report.cells.append(
        Cell(
            layer_type="user",
            activation="tanh",
            dtype="float32",
            examples=1,
            verdicts={"mismatch": 1},
            oracles={
                "autograd": OracleSummary(
                    comparisons=2,
                    worst_ratio=math.inf,
                    max_abs_error=math.nan,
                    histogram=[0] * (RATIO_BINS - 1) + [1],
                )
            },
        )
    )
    report.failures.append(
        Failure(
            layer_type="user",
            activation="tanh",
            dtype="float32",
            verdict="mismatch",
            message="hand-written nan",
            reproduction="",
            case=Counterexample.of(
                activation="tanh", z=np.array([[np.inf, -np.inf]]), theta=[[np.nan]], delta=[[1.0]]
            ),
            worst_entries=[
                WorstEntry(
                    target="parameters",
                    entry={"unit": 0, "parameter": 0},
                    hand_written=math.nan,
                    references={"autograd": -math.inf},
                    ratio=math.inf,
                )
            ],
        )
    )
    report.cost.append(
        CostPoint(
            units=1,
            parameters_per_unit=1,
            batch=1,
            compact_seconds=math.nan,
            dense_seconds=math.inf,
            compact_bytes=8,
            dense_bytes=None,
        )
    )
    data = strict_json(report.to_json_dict())  # raises on a bare NaN or Infinity token
    validator().validate(data)
    again = Report.from_json_dict(data)
    oracle = again.cells[-1].oracles["autograd"]
    assert oracle.worst_ratio == math.inf and math.isnan(oracle.max_abs_error)
    assert again.cells[-1].worst_ratio == math.inf
    failure = again.failures[-1]
    assert failure.case.z == [[math.inf, -math.inf]] and math.isnan(failure.case.theta[0][0])
    row = failure.worst_entries[0]
    assert math.isnan(row.hand_written) and row.references == {"autograd": -math.inf}
    assert math.isnan(again.cost[-1].compact_seconds) and again.cost[-1].dense_seconds == math.inf
    assert again.to_json_dict() == data


def _mutations():
    def at(path, value):
        def change(data):
            *parents, last = path
            target = data
            for key in parents:
                target = target[key]
            if value is KeyError:
                del target[last]
            else:
                target[last] = value

        return change

    return [
        ("missing cells", at(["cells"], KeyError)),
        ("unknown status", at(["status"], "paused")),
        ("version 2", at(["version"], 2)),
        ("unknown verdict", at(["failures", 0, "verdict"], "wrong")),
        ("short histogram", at(["cells", 0, "oracles", "dense", "histogram"], [0, 1])),
        ("negative count", at(["cells", 0, "examples"], -1)),
        ("bad float string", at(["cells", 0, "oracles", "dense", "worst_ratio"], "inf")),
        ("malformed shard", at(["settings", "shard"], "0/2")),
        ("seed as text", at(["settings", "seed"], "zero")),
        ("unknown oracle", at(["failures", 0, "worst_entries", 0, "references"], {"magic": 1.0})),
        ("created not a time", at(["created"], "yesterday")),
    ]


@pytest.mark.parametrize(("what", "change"), _mutations(), ids=[m[0] for m in _mutations()])
def test_the_schema_and_the_reader_refuse_the_same_broken_reports(what, change):
    data = strict_json(full_report().to_json_dict())
    change(data)
    assert not validator().is_valid(data)
    with pytest.raises(GradcheckError):
        Report.from_json_dict(data)


def test_settings_json_cannot_hold_are_refused():
    report = build_report()
    report.settings["target"] = float("nan")
    with pytest.raises(GradcheckError, match=r"settings.target must be a string"):
        report.to_json_dict()
    with pytest.raises(GradcheckError, match=r"settings.extra\[0\] is nan"):
        Report(settings={"extra": [math.nan]})


# ---- merge -------------------------------------------------------------------------------------


def _shards(parts: int) -> list[Report]:
    pairs = checked()
    return [build_report(pairs[k::parts], shard=f"{k + 1}/{parts}") for k in range(parts)]


def test_two_shards_merge_into_the_report_of_one_run_over_both_halves():
    whole = build_report()
    merged = merge(_shards(2))
    assert merged.settings["shard"] is None and merged.settings == whole.settings
    assert {c.key: c for c in merged.cells} == {c.key: c for c in whole.cells}
    assert [c.key for c in merged.cells] == sorted(c.key for c in whole.cells)
    assert merged.summary == whole.summary  # seconds too, to the last bit
    assert sorted(f.message for f in merged.failures) == sorted(f.message for f in whole.failures)
    assert merged.to_json_dict() == merge([whole]).to_json_dict()


def test_merging_ignores_order_and_grouping():
    a, b, c = _shards(3)
    expected = merge([a, b, c]).to_json_dict()
    for order in itertools.permutations([a, b, c]):
        assert merge(order).to_json_dict() == expected
    assert merge([merge([a, b]), c]).to_json_dict() == expected
    assert merge([a, merge([c, b])]).to_json_dict() == expected
    partial = merge([a, c])
    assert partial.settings["shard"] == "1/3,3/3"


def test_merging_leaves_the_shards_unchanged():
    a, b = _shards(2)
    before = a.to_json_dict()
    merged = merge([a, b])
    merged.cells[0].add(check_again(merged.cells[0]))
    assert a.to_json_dict() == before


def check_again(cell: Cell):
    case, _ = next((c, r) for c, r in checked() if key_of(c, r) == cell.key)
    return check(case)


def test_merged_status_is_the_least_finished_and_environments_are_listed():
    a, b = _shards(2)
    a.status, b.status = "complete", "interrupted"
    b.environment["platform"] = "Darwin-test"
    merged = merge([a, b])
    assert merged.status == "interrupted"
    assert merged.environment["platform"] == ["Darwin-test", "Linux-test"]
    assert merged.environment["python"] == a.environment["python"]
    validator().validate(merged.to_json_dict())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a, b: b.settings.update(seed=1), "settings differ in seed"),
        (
            lambda a, b: b.settings.update(examples_per_cell=3, dtypes=["float64"]),
            "differ in dtypes, examples_per_cell",
        ),
        (lambda a, b: b.settings.update(shard="1/2"), "shard 1/2 is in more than one report"),
        (lambda a, b: b.settings.update(shard=None), "whole campaign"),
        (lambda a, b: b.settings.update(shard="2/3"), "split the campaign in different ways"),
        (lambda a, b: setattr(b, "version", 2), "schema versions"),
    ],
    ids=["seed", "two settings", "same shard", "whole and shard", "other split", "version"],
)
def test_merge_refuses_reports_of_different_campaigns(change, message):
    a, b = _shards(2)
    change(a, b)
    with pytest.raises(GradcheckError, match=message):
        merge([a, b])


def test_settings_other_than_the_shard_are_compared_whole():
    a, b = _shards(2)
    b.settings["layer_types"] = [*SETTINGS["layer_types"], "tied"]
    with pytest.raises(GradcheckError, match="layer_types"):
        merge([a, b])
    with pytest.raises(GradcheckError, match="at least one"):
        merge([])
