"""The gradcheck command: run, list, report (and check, for a user's layer).

Exit codes follow pytest: 0 all passed, 1 mismatches found, 2 interrupted, 3 internal
error, 4 usage error, 5 nothing was checked.

What lives here: this module parses the arguments and hands each command to its own
module: `run` (the catalogue's campaign, with progress), `check` (loading MODULE:ATTR
and running the checks it stands for), `listing` (`gradcheck list`) and `rendering`
(`gradcheck report`); `output` writes report.md and report.html, `exits` names the exit
codes. These modules may import errors, core, catalogue, user, report, campaign and the
package itself. A command's module is imported when that command runs (lazily: it
loads numpy, autograd, hypothesis or the report package), so that `gradcheck --help`
loads nothing past the parser.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from gradcheck import __version__
from gradcheck.cli.exits import (
    INTERNAL_ERROR,
    INTERRUPTED,
    MISMATCH,
    NOTHING_CHECKED,
    OK,
    USAGE_ERROR,
)
from gradcheck.errors import GradcheckError

__all__ = [
    "INTERNAL_ERROR",
    "INTERRUPTED",
    "MISMATCH",
    "NOTHING_CHECKED",
    "OK",
    "USAGE_ERROR",
    "main",
]

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
    parser.add_argument("--version", action="version", version=f"gradcheck {__version__}")
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
        help="processes to run cells in (default and most: the number of CPUs, and no more "
        "than the cells to run)",
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
    run.set_defaults(handler=_run)

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
    check.set_defaults(handler=_check)

    listing = commands.add_parser(
        "list",
        help="show the catalogue: layer types and activations",
        description="Show the catalogue: each layer type with its formula, whether it is "
        "coupled and rank-one and where it has kinks; each activation with its kinks and domain.",
        epilog=EPILOG,
    )
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=_list)

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
    report.set_defaults(handler=_report)
    return parser


# ---- the commands, each imported when it runs ----------------------------------------------


def _run(arguments: argparse.Namespace) -> int:
    from gradcheck.cli.run import command_run  # lazy: loads the campaign (numpy, hypothesis)

    return command_run(arguments)


def _check(arguments: argparse.Namespace) -> int:
    from gradcheck.cli.check import command_check  # lazy: loads the user engine

    return command_check(arguments)


def _list(arguments: argparse.Namespace) -> int:
    from gradcheck.cli.listing import command_list  # lazy: loads the catalogue (numpy, autograd)

    return command_list(arguments)


def _report(arguments: argparse.Namespace) -> int:
    from gradcheck.cli.rendering import command_report  # lazy: loads the report package

    return command_report(arguments)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the gradcheck command on argv (default: sys.argv[1:]); its exit code."""
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
    except OSError as error:
        if error.filename is None:  # not a file the user named: ours to explain
            print("gradcheck: internal error (please report it):", file=sys.stderr)
            traceback.print_exc()
            return INTERNAL_ERROR
        # A file or directory the user named cannot be read or written (read-only or full
        # disk, a file where a directory should be): theirs to fix, a usage error.
        print(
            f"gradcheck {arguments.command}: error: {error.filename}: {error.strerror or error}",
            file=sys.stderr,
        )
        return USAGE_ERROR
    except Exception:
        print("gradcheck: internal error (please report it):", file=sys.stderr)
        traceback.print_exc()
        return INTERNAL_ERROR
