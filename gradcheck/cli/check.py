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
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from gradcheck.cli.exits import MISMATCH, NOTHING_CHECKED, OK
from gradcheck.cli.output import render
from gradcheck.errors import GradcheckError, UsageError, UserCodeError
from gradcheck.report import Report, environment, write_report
from gradcheck.user import api

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
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise GradcheckError(f"module {module_name!r} has no attribute {attribute!r}")
        found = getattr(found, part)
    return found


def _run_target(target: Any, arguments: argparse.Namespace) -> list[Any]:
    """Run the checks target stands for; their summaries, failed or not."""
    overrides: dict[str, Any] = {}
    if arguments.examples is not None:
        overrides["max_examples"] = arguments.examples
    if arguments.dtypes is not None:
        overrides["dtypes"] = tuple(arguments.dtypes)
    with api.collect() as checks:
        try:
            if isinstance(target, dict):
                spec = dict(target)
                style = spec.pop("style", "functional")
                if style not in _STYLES:
                    raise GradcheckError(
                        f"unknown style {style!r}; choose one of {', '.join(_STYLES)}"
                    )
                function = getattr(api, _STYLES[style])
                function(**{**spec, **overrides})
            elif callable(target):
                if overrides:
                    print(
                        "note: --examples and --dtypes apply to layer specs, not to a function "
                        "of checks",
                        file=sys.stderr,
                    )
                target()
            else:
                raise GradcheckError(
                    "MODULE:ATTR must name a dict of a check's arguments or a function that "
                    f"runs gradcheck checks, not a {type(target).__name__}"
                )
        except AssertionError:  # GradientMismatch: recorded in its summary
            pass
    return list(checks)


def command_check(arguments: argparse.Namespace) -> int:
    """`gradcheck check MODULE:ATTR`: the checks a layer spec or a function stands for."""
    target = _load(arguments.target)
    try:
        checks = _run_target(target, arguments)
    except UserCodeError as error:  # the layer's own code misbehaved: a failure of the layer
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return MISMATCH
    except UsageError as error:
        raise GradcheckError(str(error)) from None
    if not checks:
        print("gradcheck check: the target ran no check", file=sys.stderr)
        return NOTHING_CHECKED
    cells: dict[tuple[str, str, str], Any] = {}
    failures = []
    for check in checks:
        print(check.describe())
        for cell in check.cells.values():
            cells[cell.key] = cell if cell.key not in cells else cells[cell.key].combined(cell)
        if check.failure is not None:
            failures.append(check.failure)
        if check.outcome == "failed":
            print(check.message, file=sys.stderr)
    out: Path = arguments.out
    out.mkdir(parents=True, exist_ok=True)
    report = Report(
        status="complete",
        environment=environment(),
        settings={"command": shlex.join(["gradcheck", *sys.argv[1:]]), "target": arguments.target},
        cells=list(cells.values()),
        failures=failures,
    )
    write_report(report, out / "report.json")
    render(report, out, html=not arguments.no_html)
    print(f"Report: {out / 'report.json'}")
    return MISMATCH if any(check.outcome != "passed" for check in checks) else OK
