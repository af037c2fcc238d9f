"""gradcheck's pytest plugin: check hand-written gradients from any project's test suite.

Installed with gradcheck (entry point ``pytest11``), it adds

- the ``gradcheck`` fixture, whose ``check_backward``, ``check_backward_cached``,
  ``check_layer_object`` and ``check_unit_jacobian`` are gradcheck's checks with this
  test's settings, and ``ObjectLayer``;
- the ``@pytest.mark.gradcheck(...)`` marker: per-test settings, ``max_examples=``,
  ``profile=`` and any keyword of the checks (``dtypes=``, ``max_size=``, ...);
- ``--gradcheck-max-examples N``, ``--gradcheck-profile NAME`` (a gradcheck-* hypothesis
  profile of `gradcheck.profiles`) and ``--gradcheck-report DIR`` (write DIR/report.json),
  with the ini keys ``gradcheck_max_examples``, ``gradcheck_profile``,
  ``gradcheck_report``. A setting comes from the marker, else the command line, else the
  ini file, else the default; keywords passed to a check itself win over all of them;
- a "gradcheck" section in the terminal summary: each checked layer, the examples run,
  the worst error against its bound and the oracles used.

Under pytest-xdist each worker sends its summaries to the controller, which prints the
section and writes the report once.

Loading the plugin is cheap: it imports neither numpy, autograd nor hypothesis (every
test run of every project that installs gradcheck loads it); they load when a check runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gradcheck import profiles

if TYPE_CHECKING:
    from gradcheck.user.summary import LayerCheck

_OUTPUT_KEY = "gradcheck"
_CHECKS = ("check_backward", "check_backward_cached", "check_layer_object", "check_unit_jacobian")


class _State:
    """The session's settings from the command line and ini file, and the summaries."""

    def __init__(self, config: pytest.Config) -> None:
        self.max_examples = _positive(
            config.getoption("gradcheck_max_examples"), "--gradcheck-max-examples"
        )
        if self.max_examples is None:
            self.max_examples = _positive(
                config.getini("gradcheck_max_examples") or None, "gradcheck_max_examples (ini)"
            )
        self.profile = config.getoption("gradcheck_profile") or (
            config.getini("gradcheck_profile") or None
        )
        if self.profile is not None:
            _known_profile(self.profile)
        report = config.getoption("gradcheck_report") or config.getini("gradcheck_report")
        self.report: Path | None = None
        if report:
            report_path = Path(os.path.expanduser(str(report)))
            if not report_path.is_absolute():
                report_path = Path(str(config.rootpath)) / report_path
            self.report = report_path
        self.records: list[dict[str, Any]] = []
        self.written: Path | None = None


_STATE = pytest.StashKey[_State]()


def _positive(value: Any, where: str) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"{where} must be a positive integer, got {value!r}") from None
    if number < 1:
        raise pytest.UsageError(f"{where} must be a positive integer, got {value!r}")
    return number


def _known_profile(name: str) -> None:
    if name not in profiles.PROFILES:
        raise pytest.UsageError(
            f"unknown gradcheck profile {name!r}; choose one of: {', '.join(profiles.PROFILES)}"
        )


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


# ---- hooks ------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradcheck", "gradcheck: check hand-written gradients")
    group.addoption(
        "--gradcheck-max-examples",
        dest="gradcheck_max_examples",
        default=None,
        metavar="N",
        help="examples each gradcheck check runs (default: the hypothesis profile's)",
    )
    group.addoption(
        "--gradcheck-profile",
        dest="gradcheck_profile",
        default=None,
        metavar="NAME",
        help="a gradcheck-* hypothesis profile for the checks: gradcheck-ci, gradcheck-thorough",
    )
    group.addoption(
        "--gradcheck-report",
        dest="gradcheck_report",
        default=None,
        metavar="DIR",
        help="write the checks' report.json (gradcheck's report format) into DIR",
    )
    parser.addini("gradcheck_max_examples", "examples each gradcheck check runs", default="")
    parser.addini("gradcheck_profile", "gradcheck-* hypothesis profile for the checks", default="")
    parser.addini("gradcheck_report", "directory for gradcheck's report.json", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "gradcheck(**settings): settings of the gradcheck fixture's checks in this test: "
        "max_examples=, profile=, and any keyword of the checks (dtypes=, max_size=, ...)",
    )
    config.stash[_STATE] = _State(config)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    if _is_worker(config):  # the controller prints and writes, once
        config.workeroutput[_OUTPUT_KEY] = json.dumps(state.records)  # type: ignore[attr-defined]
        return
    if state.report is not None and state.records:
        state.written = _write_report(state, exitstatus)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist, on the controller: a worker finished; keep the summaries it sent."""
    state = node.config.stash.get(_STATE, None)
    output = getattr(node, "workeroutput", None) or {}
    if state is not None and _OUTPUT_KEY in output:
        state.records.extend(json.loads(output[_OUTPUT_KEY]))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or _is_worker(config) or not state.records:
        return
    terminalreporter.write_sep("=", "gradcheck")
    for check in _checks(state):
        where = f"  [{check.test}]" if check.test else ""
        terminalreporter.write_line(check.describe() + where)
    if state.written is not None:
        terminalreporter.write_line(f"gradcheck report: {state.written}")


def _checks(state: _State) -> list[LayerCheck]:
    # lazy: user.summary loads the report package; only a session whose tests ran checks
    # needs it, and the plugin loads in every test run of every project that installs it.
    from gradcheck.user.summary import LayerCheck

    records = sorted(state.records, key=lambda r: (r.get("test") or "", r.get("index", 0)))
    return [LayerCheck.from_json_dict(record) for record in records]


def _write_report(state: _State, exitstatus: int) -> Path:
    # lazy: the report package loads only for --gradcheck-report; loading the plugin stays
    # cheap.
    from gradcheck.report import Report, environment, write_report

    cells: dict[tuple[str, str, str], Any] = {}
    failures = []
    for check in _checks(state):
        for cell in check.cells.values():
            cells[cell.key] = cell if cell.key not in cells else cells[cell.key].combined(cell)
        if check.failure is not None:
            failures.append(check.failure)
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    report = Report(
        status="interrupted" if interrupted else "complete",
        environment=environment(),
        settings={
            "command": "pytest",
            "max_examples": state.max_examples,
            "profile": state.profile,
        },
        cells=list(cells.values()),
        failures=failures,
    )
    assert state.report is not None
    return write_report(report, state.report / "report.json")


# ---- the fixture ------------------------------------------------------------------------------


class GradcheckFixture:
    """gradcheck's checks with this test's settings (marker > command line > ini >
    defaults; keywords given to a check win). Each check's summary goes to the session's
    "gradcheck" summary section and report."""

    def __init__(self, state: _State, defaults: dict[str, Any], test: str) -> None:
        self._state = state
        self._defaults = defaults
        self._test = test

    @property
    def settings(self) -> dict[str, Any]:
        """The keywords every check of this test gets unless it is given its own."""
        return dict(self._defaults)

    @property
    def ObjectLayer(self) -> Any:  # noqa: N802 - the class, as gradcheck.ObjectLayer
        # lazy: adapters load numpy; only a test that asks for the class needs it.
        from gradcheck.user.adapters import ObjectLayer

        return ObjectLayer

    def _run(self, check: str, *args: Any, **options: Any) -> LayerCheck:
        __tracebackhide__ = True  # pytest: show the test's frames, not gradcheck's
        # lazy: the user engine loads numpy, autograd and hypothesis when a test runs a
        # check, not when pytest loads the plugin.
        from gradcheck.user import api as user

        merged = {**self._defaults, **options}
        profile = merged.pop("profile", None)
        if profile is not None and merged.get("settings") is None:
            from hypothesis import settings  # lazy, as the user engine above

            _known_profile(profile)
            profiles.register()
            merged["settings"] = settings.get_profile(profile)
        with user.collect() as found:
            try:
                result: LayerCheck = getattr(user, check)(*args, **merged)
                return result
            finally:
                for summary in found:
                    summary.test = self._test
                    record = summary.to_json_dict()
                    record["index"] = len(self._state.records)
                    self._state.records.append(record)

    def check_backward(self, forward: Any, backward: Any, **options: Any) -> LayerCheck:
        """`gradcheck.check_backward` with this test's settings."""
        __tracebackhide__ = True
        return self._run("check_backward", forward, backward, **options)

    def check_backward_cached(self, forward: Any, backward: Any, **options: Any) -> LayerCheck:
        """`gradcheck.check_backward_cached` with this test's settings."""
        __tracebackhide__ = True
        return self._run("check_backward_cached", forward, backward, **options)

    def check_layer_object(self, layer: Any, **options: Any) -> LayerCheck:
        """`gradcheck.check_layer_object` with this test's settings."""
        __tracebackhide__ = True
        return self._run("check_layer_object", layer, **options)

    def check_unit_jacobian(self, forward: Any, unit_jacobian: Any, **options: Any) -> LayerCheck:
        """`gradcheck.check_unit_jacobian` with this test's settings."""
        __tracebackhide__ = True
        return self._run("check_unit_jacobian", forward, unit_jacobian, **options)


@pytest.fixture
def gradcheck(request: pytest.FixtureRequest) -> GradcheckFixture:
    """gradcheck's checks (check_backward, check_backward_cached, check_layer_object,
    check_unit_jacobian) with the settings of @pytest.mark.gradcheck(...), then
    --gradcheck-max-examples/--gradcheck-profile, then the ini keys."""
    state = request.config.stash[_STATE]
    defaults: dict[str, Any] = {}
    if state.profile is not None:
        defaults["profile"] = state.profile
    if state.max_examples is not None:
        defaults["max_examples"] = state.max_examples
    for marker in reversed(list(request.node.iter_markers("gradcheck"))):  # closest wins
        if marker.args:
            raise pytest.UsageError(
                "@pytest.mark.gradcheck takes keywords only, such as max_examples=20"
            )
        defaults.update(marker.kwargs)
    return GradcheckFixture(state, defaults, request.node.nodeid)
