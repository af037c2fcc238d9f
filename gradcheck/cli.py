"""The gradcheck command: run, list, report (and check, for a user's layer).

Exit codes follow pytest: 0 all passed, 1 mismatches found, 2 interrupted, 3 internal
error, 4 usage error, 5 nothing was checked.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from gradcheck.errors import GradcheckError

OK, MISMATCH, INTERRUPTED, INTERNAL_ERROR, USAGE_ERROR, NOTHING_CHECKED = range(6)

EPILOG = """exit codes: 0 all passed, 1 mismatches found, 2 interrupted, 3 internal error,
4 usage error, 5 nothing was checked"""


class _UsageError(Exception):
    """Raised instead of argparse's exit, so that usage errors exit with 4."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: error: {message}")


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _report_options(command: argparse.ArgumentParser) -> None:
    """--out and --no-html, shared by the commands that write a report."""
    command.add_argument(
        "--out",
        type=Path,
        default=Path("reports"),
        metavar="DIR",
        help="where to write the report (default: reports/)",
    )
    command.add_argument("--no-html", action="store_true", help="skip report.html")


def _parser() -> _Parser:
    parser = _Parser(
        prog="gradcheck",
        description="Prove hand-written neural-network gradients right, or shrink the proof "
        "that they are wrong to a case small enough to read.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser(
        "run",
        help="check the built-in catalogue of layer types and activations",
        description="Check every cell of the catalogue (layer type × activation × dtype) on "
        "generated cases and write report.json, report.md and report.html.",
        epilog=EPILOG,
    )
    run.add_argument(
        "--examples", type=_positive, default=100, metavar="N", help="cases per cell (default: 100)"
    )
    run.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the campaign (default: random, recorded in the report)",
    )
    run.add_argument(
        "--layer-types",
        type=_names,
        default=None,
        metavar="A,B",
        help="only these layer types (see `gradcheck list`)",
    )
    run.add_argument(
        "--activations", type=_names, default=None, metavar="A,B", help="only these activations"
    )
    run.add_argument(
        "--dtypes",
        type=_names,
        default=["float64", "float32"],
        metavar="A,B",
        help="dtypes to check (default: float64,float32)",
    )
    run.add_argument(
        "--workers",
        type=_positive,
        default=os.cpu_count() or 1,
        metavar="N",
        help="processes to run cells in (default: the number of CPUs)",
    )
    run.add_argument(
        "--shard",
        default=None,
        metavar="K/N",
        help="run only shard K of N (merge the shards' reports with `gradcheck report --merge`)",
    )
    _report_options(run)
    run.add_argument(
        "--database",
        default=None,
        metavar="DIR",
        help="the example database (default: .hypothesis/examples)",
    )
    run.set_defaults(handler=_command_run)

    check = commands.add_parser(
        "check",
        help="check your own layer: MODULE:ATTR names a layer spec or a function of checks",
        description="Check a layer of your own and write the same report as `run`. "
        "MODULE:ATTR names either a dict of a check's arguments, e.g. {'forward': f, "
        "'backward': b, 'signature': '(n,i),(i,j),(j)->(n,j)'} (with 'style': 'functional', "
        "'cached', 'object' or 'unit-jacobian'; default functional), or a function that "
        "takes no arguments and runs gradcheck checks (every check it runs is reported).",
        epilog=EPILOG,
    )
    check.add_argument("target", metavar="MODULE:ATTR")
    check.add_argument(
        "--examples",
        type=_positive,
        default=None,
        metavar="N",
        help="examples per check (default: the check's own)",
    )
    check.add_argument(
        "--dtypes",
        type=_names,
        default=None,
        metavar="A,B",
        help="dtypes (default: the spec's, else float64)",
    )
    _report_options(check)
    check.set_defaults(handler=_command_check)

    listing = commands.add_parser(
        "list",
        help="show the catalogue: layer types and activations",
        description="Show the catalogue: each layer type with its formula, whether it is "
        "coupled and rank-one and where it has kinks; each activation with its kinks and domain.",
        epilog=EPILOG,
    )
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=_command_list)

    report = commands.add_parser(
        "report",
        help="render a saved report as Markdown or HTML, or merge shards",
        description="Render report.json as Markdown, HTML or JSON; with --merge, join the "
        "reports of several shards of one campaign into one.",
        epilog=EPILOG,
    )
    report.add_argument("reports", nargs="+", type=Path, metavar="REPORT.json")
    report.add_argument("--format", choices=("md", "html", "json"), default="md")
    report.add_argument(
        "--merge", action="store_true", help="join the reports of the shards of one campaign"
    )
    report.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="write here instead of standard output",
    )
    report.set_defaults(handler=_command_report)
    return parser


def _version() -> str:
    from gradcheck import __version__

    return f"gradcheck {__version__}"


# ---- gradcheck run ----------------------------------------------------------------------------


class _Progress:
    """A progress bar on a terminal (with rich), plain lines otherwise."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.bar: Any = None
        if sys.stdout.isatty():
            try:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TimeRemainingColumn,
                )
            except ImportError:
                pass
            else:
                self.bar = Progress(
                    "[progress.description]{task.description}",
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    transient=False,
                )
                self.bar.start()
                self.task = self.bar.add_task("checking", total=total)

    def advance(self, key: str, line: str, problem: str | None) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=key)
            if problem:
                self.bar.console.print(f"[red]{key}[/red]: {problem}")
            return
        width = len(str(self.total))
        print(f"[{self.done:>{width}}/{self.total}] {key}: {line}", flush=True)
        if problem:
            print(f"    {problem}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _command_run(arguments: argparse.Namespace) -> int:
    from gradcheck import campaign
    from gradcheck.report import Report, ReportWriter, environment

    specs = campaign.cells(
        layer_types=arguments.layer_types,
        activations=arguments.activations,
        dtypes=arguments.dtypes,
    )
    if arguments.shard:
        k, n = campaign.parse_shard(arguments.shard)
        specs = campaign.shard(specs, k, n)
    if not specs:
        print("gradcheck: nothing to check: the filters select no cell", file=sys.stderr)
        return NOTHING_CHECKED
    seed = arguments.seed if arguments.seed is not None else random.SystemRandom().randrange(2**31)
    out: Path = arguments.out
    out.mkdir(parents=True, exist_ok=True)
    report = Report(
        environment=environment(),
        settings={
            "command": shlex.join(["gradcheck", *sys.argv[1:]]) if sys.argv else "gradcheck run",
            "seed": seed,
            "examples_per_cell": arguments.examples,
            "layer_types": sorted({spec.layer_type for spec in specs}),
            "activations": sorted({spec.activation for spec in specs}),
            "dtypes": list(arguments.dtypes),
            "oracles": ["dense", "autograd", "finite-differences"],
            "shard": arguments.shard,
            "workers": arguments.workers,
            "target": None,
        },
    )
    print(
        f"gradcheck run: {len(specs)} cells × {arguments.examples} cases, seed {seed}, "
        f"{arguments.workers} worker(s); writing {out / 'report.json'}",
        flush=True,
    )
    progress = _Progress(len(specs))
    problems = 0
    started = time.perf_counter()
    writer = ReportWriter(out / "report.json", report)

    def on_outcome(spec: campaign.CellSpec, outcome: campaign.CellOutcome) -> None:
        nonlocal problems
        writer.add(outcome.cell)
        for failure in outcome.failures:
            writer.add(failure)
        problems += len(outcome.failures)
        counts = ", ".join(f"{n} {v}" for v, n in outcome.cell.verdicts.items() if n)
        first = outcome.failures[0].message if outcome.failures else None
        progress.advance(spec.key, f"{counts} ({outcome.seconds:.1f} s)", first)

    try:
        campaign.run_cells(
            specs,
            examples=arguments.examples,
            seed=seed,
            workers=arguments.workers,
            database=arguments.database or campaign.default_database(),
            on_outcome=on_outcome,
        )
    except KeyboardInterrupt:
        progress.close()
        writer.close("interrupted")
        print(
            f"\ninterrupted: {out / 'report.json'} holds the {progress.done} cells that finished",
            file=sys.stderr,
        )
        return INTERRUPTED
    progress.close()
    for point in _cost_points():
        writer.add(point)
    writer.close("complete")
    _render(writer.report, out, html=not arguments.no_html)
    summary = writer.report.summary
    totals = ", ".join(f"{n} {v}" for v, n in summary.verdicts.items() if n)
    print(
        f"{summary.examples} cases in {summary.cells} cells: {totals} "
        f"({time.perf_counter() - started:.0f} s). Report: {out / 'report.html'}"
    )
    return MISMATCH if problems else OK


def _render(report: Any, out: Path, *, html: bool) -> None:
    from gradcheck.report import render_html, render_markdown

    _write_text(out / "report.md", render_markdown(report))
    if html:
        try:
            _write_text(out / "report.html", render_html(report))
        except GradcheckError as missing:  # jinja2 or matplotlib absent
            print(f"report.html skipped: {missing}", file=sys.stderr)


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def _cost_points() -> list[Any]:
    """Compact A = δ ⊙ B against the explicit block-diagonal product at a few sizes, for
    the report's cost plot (best of three timings; bytes of the arrays each forms)."""
    import numpy as np

    from gradcheck.core import compact
    from gradcheck.report import CostPoint

    rng = np.random.default_rng(0)
    points = []
    batch = 4
    for units in (4, 16, 64, 128):
        parameters = units + 1
        delta = rng.normal(size=(batch, units))
        unit_jacobian = rng.normal(size=(batch, units, parameters))
        timings = {}
        for name, budget in (("compact", None), ("dense", 1 << 40)):
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                if budget is None:
                    compact.compact_gradient(delta, unit_jacobian)
                else:
                    compact.dense_gradient(delta, unit_jacobian, budget=budget)
                best = min(best, time.perf_counter() - start)
            timings[name] = best
        points.append(
            CostPoint(
                units=units,
                parameters_per_unit=parameters,
                batch=batch,
                compact_seconds=timings["compact"],
                dense_seconds=timings["dense"],
                compact_bytes=unit_jacobian.nbytes,
                dense_bytes=unit_jacobian.nbytes * units,
            )
        )
    return points


# ---- gradcheck check -------------------------------------------------------------------------

_STYLES = {
    "functional": "check_backward",
    "cached": "check_backward_cached",
    "object": "check_layer_object",
    "unit-jacobian": "check_unit_jacobian",
}


def _load(target: str) -> Any:
    """The object MODULE:ATTR names (ATTR may be dotted), importing from the current
    directory as `python -m` would."""
    import importlib

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
    import gradcheck
    from gradcheck.user.api import collect

    overrides: dict[str, Any] = {}
    if arguments.examples is not None:
        overrides["max_examples"] = arguments.examples
    if arguments.dtypes is not None:
        overrides["dtypes"] = tuple(arguments.dtypes)
    with collect() as checks:
        try:
            if isinstance(target, dict):
                spec = dict(target)
                style = spec.pop("style", "functional")
                if style not in _STYLES:
                    raise GradcheckError(
                        f"unknown style {style!r}; choose one of {', '.join(_STYLES)}"
                    )
                function = getattr(gradcheck, _STYLES[style])
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


def _command_check(arguments: argparse.Namespace) -> int:
    from gradcheck.errors import UsageError, UserCodeError
    from gradcheck.report import Report, environment, write_report

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
    _render(report, out, html=not arguments.no_html)
    print(f"Report: {out / 'report.json'}")
    return MISMATCH if any(check.outcome != "passed" for check in checks) else OK


# ---- gradcheck list ---------------------------------------------------------------------------


def catalogue() -> dict[str, list[dict[str, Any]]]:
    """The catalogue as plain data."""
    from gradcheck.catalogue.activations import ACTIVATIONS
    from gradcheck.catalogue.layers import LAYER_TYPES

    layers = [
        {
            "name": layer.name,
            "formula": layer.formula,
            "coupled": layer.coupled,
            "rank_one": layer.rank_one is not None,
            "uses_activation": layer.uses_activation,
            "square": layer.square,
            "kinks": layer.kinks,
        }
        for layer in LAYER_TYPES.values()
    ]
    activations = [
        {
            "name": activation.name,
            "kinks": list(activation.kinks),
            "domain": list(activation.domain),
            "parameter": activation.parameter,
            "parameter_range": activation.parameter_range and list(activation.parameter_range),
        }
        for activation in ACTIVATIONS.values()
    ]
    return {"layer_types": layers, "activations": activations}


def _command_list(arguments: argparse.Namespace) -> int:
    data = catalogue()
    if arguments.format == "json":
        print(json.dumps(data, indent=2))
        return OK
    print("layer types")
    print(f"  {'name':<16} {'coupled':<8} {'rank-one':<9} {'kinks':<28} formula")
    for layer in data["layer_types"]:
        coupled = "yes" if layer["coupled"] else "no"
        rank_one = "yes" if layer["rank_one"] else "no"
        name, kinks = layer["name"], layer["kinks"]
        print(f"  {name:<16} {coupled:<8} {rank_one:<9} {kinks:<28} {layer['formula']}")
    print("\nactivations")
    print(f"  {'name':<14} {'kinks':<14} {'domain':<22} parameter")
    for activation in data["activations"]:
        kinks = ", ".join(f"{k:g}" for k in activation["kinks"]) or "none"
        domain = "[{:g}, {:g}]".format(*activation["domain"])
        parameter = (
            ""
            if activation["parameter"] is None
            else (
                f"{activation['parameter']:g} (drawn from [{activation['parameter_range'][0]:g}, "
                f"{activation['parameter_range'][1]:g}])"
            )
        )
        print(f"  {activation['name']:<14} {kinks:<14} {domain:<22} {parameter}")
    return OK


# ---- gradcheck report -------------------------------------------------------------------------


def _command_report(arguments: argparse.Namespace) -> int:
    from gradcheck.report import merge, read_report, render_html, render_markdown

    if len(arguments.reports) > 1 and not arguments.merge:
        raise GradcheckError(
            "several reports given: pass --merge to join the shards of one campaign"
        )
    reports = [read_report(path) for path in arguments.reports]
    report = merge(reports) if arguments.merge else reports[0]
    renderers: dict[str, Callable[[Any], str]] = {
        "md": render_markdown,
        "html": render_html,
        "json": lambda r: json.dumps(r.to_json_dict(), indent=2, allow_nan=False),
    }
    text = renderers[arguments.format](report)
    if arguments.out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        arguments.out.parent.mkdir(parents=True, exist_ok=True)
        _write_text(arguments.out, text)
    return OK


# ---- main -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        arguments = parser.parse_args(argv)
    except _UsageError as error:
        print(error, file=sys.stderr)
        return USAGE_ERROR
    except SystemExit as done:  # --help and --version
        return OK if done.code in (0, None) else USAGE_ERROR
    if arguments.command is None:
        parser.print_help()
        return USAGE_ERROR
    try:
        return int(arguments.handler(arguments))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    except (GradcheckError, LookupError) as error:
        print(f"gradcheck {arguments.command}: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except Exception:
        print("gradcheck: internal error (please report it):", file=sys.stderr)
        traceback.print_exc()
        return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
