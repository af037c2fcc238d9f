"""Peak resident memory of a stretch of code in this process, for the benchmarks that
measure memory in a child process (scale.py, user_scale.py).

On Linux the kernel's high-water mark is reset to the current resident set first
(/proc/self/clear_refs), so the peak is that of the stretch alone; elsewhere
ru_maxrss, the process's peak so far, stands in.
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def status_kib(field: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM), or None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@contextlib.contextmanager
def resident_peak() -> Iterator[dict[str, Any]]:
    """Fills the dict it yields, on exit, with rss_peak_bytes (the peak resident set of
    the block above the resident set before it) and hwm_reset (whether the kernel's
    high-water mark could be reset)."""
    found: dict[str, Any] = {}
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        reset = True
    except OSError:
        reset = False
    before = status_kib("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield found
    peak = status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert before is not None and peak is not None
    found.update(rss_peak_bytes=(peak - before) * 1024, hwm_reset=reset)


def in_child(script: str, tool: str, size: int) -> dict[str, Any] | None:
    """`script --child TOOL SIZE` in a fresh interpreter, whose last line of output is the
    JSON it measured; None (its error shown) when it fails."""
    command = [sys.executable, script, "--child", tool, str(size)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found
