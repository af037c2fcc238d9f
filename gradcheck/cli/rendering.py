"""`gradcheck report`: saved reports rendered as Markdown, HTML or JSON, or the reports of
the shards of one campaign merged into one."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from gradcheck.cli.exits import OK
from gradcheck.cli.output import write_text
from gradcheck.errors import GradcheckError
from gradcheck.report import merge, read_report, render_html, render_markdown


def command_report(arguments: argparse.Namespace) -> int:
    """`gradcheck report`: saved reports rendered, or the shards of one campaign merged."""
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
        if arguments.out.is_dir():
            raise GradcheckError(f"--out {arguments.out} is a directory; give a file name")
        arguments.out.parent.mkdir(parents=True, exist_ok=True)
        write_text(arguments.out, text)
    return OK
