"""`gradcheck run`: the catalogue's cells checked on generated cases, as a report.

The campaign (`gradcheck.campaign`) runs the cells and measures compact against dense for
the cost plot; this module shows progress, writes report.json as cells finish (an
interrupted run leaves a valid report of what finished), and renders the report.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from gradcheck import campaign
from gradcheck.cli.exits import INTERRUPTED, MISMATCH, NOTHING_CHECKED, OK
from gradcheck.cli.output import file_error, locked_out, render, terminate_as_interrupt
from gradcheck.report import Report, ReportWriter, environment


class _Progress:
    """A progress bar on a terminal (with rich), plain lines otherwise."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.bar: Any = None
        if sys.stdout.isatty():
            try:  # lazy: rich is optional (gradcheck[progress]) and only a terminal shows a bar
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


#: The seed of a sharded run without --seed: every shard must use the same one.
SHARD_SEED = 0


def campaign_command(arguments: argparse.Namespace, seed: int) -> str:
    """The command that reruns the campaign: the options that decide what is checked,
    without those that only decide where and how (--shard, --out, --workers,
    --database, --no-html), so that the shards of one campaign record the same command."""
    words = ["gradcheck", "run", "--examples", str(arguments.examples), "--seed", str(seed)]
    if arguments.layer_types:
        words += ["--layer-types", ",".join(arguments.layer_types)]
    if arguments.activations:
        words += ["--activations", ",".join(arguments.activations)]
    words += ["--dtypes", ",".join(arguments.dtypes)]
    return shlex.join(words)


def command_run(arguments: argparse.Namespace) -> int:
    """`gradcheck run`: every cell of the catalogue the filters select, into a report."""
    whole = campaign.cells(
        layer_types=arguments.layer_types,
        activations=arguments.activations,
        dtypes=arguments.dtypes,
    )
    specs = whole
    if arguments.shard:
        k, n = campaign.parse_shard(arguments.shard)
        specs = campaign.shard(whole, k, n)
    if not specs:
        print("gradcheck: nothing to check: the filters select no cell", file=sys.stderr)
        return NOTHING_CHECKED
    seed = arguments.seed
    if seed is None:
        # The shards of one campaign must share its seed to merge; without --seed they
        # share SHARD_SEED, a whole run draws a fresh one (recorded in the report).
        seed = SHARD_SEED if arguments.shard else random.SystemRandom().randrange(2**31)
    out: Path = arguments.out
    # More processes than cells idle; more than CPUs only compete for them.
    workers = max(1, min(arguments.workers, len(specs), os.cpu_count() or 1))
    if workers < arguments.workers:
        print(
            f"note: {workers} worker(s), not {arguments.workers}: --workers is bounded by the "
            f"number of cells ({len(specs)}) and of CPUs ({os.cpu_count() or 1})",
            file=sys.stderr,
        )
    report = Report(
        environment=environment(),
        settings={
            "command": campaign_command(arguments, seed),
            "seed": seed,
            "examples_per_cell": arguments.examples,
            # The whole campaign's, not the shard's: the shards of one campaign agree.
            "layer_types": sorted({spec.layer_type for spec in whole}),
            "activations": sorted({spec.activation for spec in whole}),
            "dtypes": list(arguments.dtypes),
            "oracles": ["dense", "autograd", "finite-differences"],
            "shard": arguments.shard,
            "workers": workers,
            "target": None,
        },
    )
    with locked_out(out), terminate_as_interrupt():
        try:
            return _campaign(arguments, specs, report, seed=seed, workers=workers)
        except OSError as error:  # a read-only or full disk: the user's to fix
            raise file_error(error, error.filename or out) from None


def _campaign(
    arguments: argparse.Namespace,
    specs: list[campaign.CellSpec],
    report: Report,
    *,
    seed: int,
    workers: int,
) -> int:
    out: Path = arguments.out
    print(
        f"gradcheck run: {len(specs)} cells × {arguments.examples} cases, seed {seed}, "
        f"{workers} worker(s); writing {out / 'report.json'}",
        flush=True,
    )
    progress = _Progress(len(specs))
    problems = 0
    started = time.perf_counter()
    # interval=0: report.json is rewritten as each cell finishes, so no finished cell is
    # lost whenever the run stops.
    writer = ReportWriter(out / "report.json", report, interval=0)

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
            workers=workers,
            database=arguments.database or campaign.default_database(),
            on_outcome=on_outcome,
        )
        progress.close()
        for point in campaign.cost_points():
            writer.add(point)
        # Rendered before the report is closed "complete": a signal while rendering
        # leaves report.json "interrupted", as the exit code says.
        render(writer.report, out, html=not arguments.no_html)
        writer.close("complete")
    except KeyboardInterrupt:
        progress.close()
        if not writer.closed:
            writer.close("interrupted")
        print(
            f"\ninterrupted: {out / 'report.json'} holds the {progress.done} cells that finished",
            file=sys.stderr,
        )
        return INTERRUPTED
    summary = writer.report.summary
    totals = ", ".join(f"{n} {v}" for v, n in summary.verdicts.items() if n)
    print(
        f"{summary.examples} cases in {summary.cells} cells: {totals} "
        f"({time.perf_counter() - started:.0f} s). Report: {out / 'report.html'}"
    )
    return MISMATCH if problems else OK
