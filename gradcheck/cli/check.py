"""`gradcheck check MODULE:ATTR`: a user's own layer, checked and reported like a run.

Finds the object MODULE:ATTR names (importing from the current directory, as
`python -m` would) and runs the checks it stands for: a dict of a check's arguments (a
layer spec, with a "style" choosing check_backward, check_backward_cached,
check_layer_object or check_unit_jacobian) or a function that runs checks itself. Every
check that runs is collected into one report.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from gradcheck.cli.exits import INTERRUPTED, MISMATCH, NOTHING_CHECKED, OK, USAGE_ERROR
from gradcheck.cli.output import file_error, locked_out, render, terminate_as_interrupt
from gradcheck.errors import (
    GradcheckError,
    SignatureError,
    UnknownNameError,
    UsageError,
    UserCodeError,
)
from gradcheck.report import Report, environment, printable, write_report
from gradcheck.user import api
from gradcheck.user.summary import LayerCheck

_STYLES = {
    "functional": "check_backward",
    "cached": "check_backward_cached",
    "object": "check_layer_object",
    "unit-jacobian": "check_unit_jacobian",
}


def _load(target: str) -> Any:
    """The object MODULE:ATTR names (ATTR may be dotted), importing from the current
    directory as `python -m` would."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise GradcheckError(f"expected MODULE:ATTR, like my_layers:affine; got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as missing:
        raise GradcheckError(f"cannot import module {module_name!r}: {missing}") from None
    except (Exception, SystemExit) as broken:  # the module's own code: a usage error (4)
        where = ""
        frame = broken.__traceback__
        while frame is not None:  # the innermost frame names the line at fault
            where = f" ({frame.tb_frame.f_code.co_filename}, line {frame.tb_lineno})"
            frame = frame.tb_next
        raise GradcheckError(
            f"cannot import module {module_name!r}: importing it raised "
            f"{type(broken).__name__}: {broken}{where}"
        ) from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise GradcheckError(f"module {module_name!r} has no attribute {attribute!r}")
        found = getattr(found, part)
    return found


def _checked_spec(target: dict[Any, Any]) -> tuple[Any, dict[str, Any]]:
    """The check function a spec's style names and its keyword arguments; GradcheckError
    (a usage error) for an unknown style, an unknown key or a missing one."""
    spec = dict(target)
    style = spec.pop("style", "functional")
    if style not in _STYLES:
        raise GradcheckError(f"unknown style {style!r}; choose one of {', '.join(_STYLES)}")
    function = getattr(api, _STYLES[style])
    parameters = inspect.signature(function).parameters
    unknown = sorted(str(key) for key in spec if key not in parameters)
    if unknown:
        raise GradcheckError(
            f"the spec has unknown key(s) {', '.join(map(repr, unknown))} for style {style!r}; "
            f"its keys are 'style', {', '.join(map(repr, parameters))}"
        )
    missing = [
        name
        for name, parameter in parameters.items()
        if parameter.default is inspect.Parameter.empty and name not in spec
    ]
    if missing:
        raise GradcheckError(
            f"the spec lacks the key(s) {', '.join(map(repr, missing))} that style {style!r} "
            "requires"
        )
    return function, spec


def _run_target(target: Any, arguments: argparse.Namespace, found: list[Any]) -> None:
    """Run the checks target stands for, their summaries (failed, errors or not) into
    `found`, which keeps those begun when Ctrl-C or SIGTERM stops the run. A function of
    checks runs to its end: a check that fails or errs is recorded and the next one runs.
    The user's code raising outside a check, or calling sys.exit, is recorded as an error
    of the target."""
    overrides: dict[str, Any] = {}
    if arguments.examples is not None:
        overrides["max_examples"] = arguments.examples
    if arguments.dtypes is not None:
        overrides["dtypes"] = tuple(arguments.dtypes)
    if isinstance(target, dict):
        function, spec = _checked_spec(target)
        with api.collect() as checks:
            try:
                function(**{**spec, **overrides})
            except UsageError as error:
                raise GradcheckError(str(error)) from None
            except (UserCodeError, AssertionError):  # recorded in its summary
                pass
            except SystemExit as error:  # not the command's exit code: the layer's error
                _exited(checks, error, arguments.target)
            finally:
                found.extend(checks)
        return
    if not callable(target):
        raise GradcheckError(
            "MODULE:ATTR must name a dict of a check's arguments or a function that "
            f"runs gradcheck checks, not a {type(target).__name__}"
        )
    if overrides:
        print(
            "note: --examples and --dtypes apply to layer specs, not to a function of checks",
            file=sys.stderr,
        )
    with api.collect(keep_going=True) as checks:
        try:
            target()
        except AssertionError:  # a GradientMismatch the function raised again: recorded
            pass
        except (Exception, SystemExit) as error:  # the function's own code
            _exited(checks, error, arguments.target)
        finally:
            found.extend(checks)


def _exited(checks: list[Any], error: BaseException, target: str) -> None:
    """Record that the user's code raised `error` (or called sys.exit) outside gradcheck's
    reach: an error of the check that was running, else of the target itself."""
    if isinstance(error, SystemExit):
        error = UserCodeError(
            f"the code called sys.exit({error.code!r}); a layer's code must not exit"
        )
    running = [check for check in checks if check.outcome == "running"]
    if running:  # the check that was running when the code gave up
        running[-1].add_error(error, "float64")
    else:
        own = LayerCheck(target, "function", "")
        own.add_error(error, "float64")
        checks.append(own)


def command_check(arguments: argparse.Namespace) -> int:
    """`gradcheck check MODULE:ATTR`: the checks a layer spec or a function stands for."""
    target = _load(arguments.target)
    checks: list[Any] = []
    interrupted = False
    with terminate_as_interrupt():
        try:
            _run_target(target, arguments, checks)
        except KeyboardInterrupt:
            interrupted = True
            print(
                "gradcheck check: interrupted; the report keeps the examples that finished",
                file=sys.stderr,
            )
    if not checks:
        print("gradcheck check: the target ran no check", file=sys.stderr)
        return INTERRUPTED if interrupted else NOTHING_CHECKED
    cells: dict[tuple[str, str, str], Any] = {}
    failures = []
    for check in checks:
        print(check.describe())
        for cell in check.cells.values():
            cells[cell.key] = cell if cell.key not in cells else cells[cell.key].combined(cell)
        if check.failure is not None:
            failures.append(check.failure)
        if check.outcome == "failed":
            print(printable(check.message), file=sys.stderr)
    out: Path = arguments.out
    report = Report(
        status="interrupted" if interrupted else "complete",
        environment=environment(),
        settings={"command": shlex.join(["gradcheck", *sys.argv[1:]]), "target": arguments.target},
        cells=list(cells.values()),
        failures=failures,
    )
    with locked_out(out):
        try:
            write_report(report, out / "report.json")
        except OSError as error:  # a read-only or full disk: the user's to fix
            raise file_error(error, out / "report.json") from None
        render(report, out, html=not arguments.no_html)
    print(f"Report: {out / 'report.json'}")
    if interrupted:
        return INTERRUPTED
    failed = [check for check in checks if check.outcome != "passed"]
    if failed and all(_usage_error(check) for check in failed):
        return USAGE_ERROR  # the checks were called wrongly: gradcheck's usage, not a bug
    return MISMATCH if failed else OK


def _usage_error(check: LayerCheck) -> bool:
    """Whether a check ended with gradcheck refusing its arguments (UsageError)."""
    exception = check.failure.exception if check.failure is not None else None
    return exception is not None and exception in _USAGE_ERRORS


_USAGE_ERRORS = frozenset(kind.__name__ for kind in (UsageError, SignatureError, UnknownNameError))
