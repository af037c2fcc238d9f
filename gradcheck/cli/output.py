"""Writing a report's files, shared by the commands that write or render reports: the
--out directory checked and locked, report.md and report.html written whole or not at all.

A problem with the files (a read-only or full disk, --out naming a file, another run
writing into the same --out) is the user's to fix: it is raised as GradcheckError naming
the path, which the command reports as a usage error (4).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gradcheck.errors import GradcheckError
from gradcheck.report import Report, render_html, render_markdown

#: The lock file a run keeps in its --out directory while it writes there.
LOCK_NAME = ".gradcheck.lock"


def render(report: Report, out: Path, *, html: bool) -> None:
    """report.md (and report.html unless html is False) beside report.json in `out`."""
    write_text(out / "report.md", render_markdown(report))
    if html:
        try:
            text = render_html(report)
        except GradcheckError as missing:  # jinja2 or matplotlib absent
            print(f"report.html skipped: {missing}", file=sys.stderr)
            return
        write_text(out / "report.html", text)


def write_text(path: Path, text: str) -> None:
    """Write `path` through a temporary file, so that a reader never sees half of it; the
    temporary file never outlives a failed write (GradcheckError naming the path)."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(error, OSError):
            raise file_error(error, path) from None
        raise


def file_error(error: OSError, path: Path | str) -> GradcheckError:
    """An OSError met writing `path`, as the usage error that names the path and why."""
    reason = error.strerror or str(error)
    return GradcheckError(f"cannot write {path}: {reason}")


@contextlib.contextmanager
def locked_out(out: Path) -> Iterator[Path]:
    """Make the --out directory and hold its lock while the block writes there.

    Refused with GradcheckError (naming the path): --out is a file, cannot be created or
    written, or another gradcheck process (alive) holds the lock. A lock left by a process
    that died is taken over."""
    if out.exists() and not out.is_dir():
        raise GradcheckError(f"--out {out} is a file; give a directory to write the report in")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GradcheckError(
            f"cannot create the directory --out {out}: {error.strerror or error}"
        ) from None
    lock = out / LOCK_NAME
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _holder(lock)
            if holder is not None:
                raise GradcheckError(
                    f"another gradcheck (process {holder}) is writing into {out}; wait for it "
                    f"to finish or choose another --out (its lock: {lock})"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # left by a process that is gone
            continue
        except OSError as error:
            raise GradcheckError(f"cannot write into --out {out}: {error.strerror}") from None
        try:
            os.write(descriptor, f"{os.getpid()}\n".encode())
        except OSError as error:
            os.close(descriptor)
            with contextlib.suppress(OSError):
                lock.unlink()
            raise GradcheckError(f"cannot write into --out {out}: {error.strerror}") from None
        os.close(descriptor)
        break
    try:
        yield out
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()


def _holder(lock: Path) -> int | None:
    """The process id in a lock file if that process is alive, else None."""
    try:
        pid = int(lock.read_text().strip())
    except (OSError, ValueError):
        return None
    if pid == os.getpid():
        return pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, another user's
    return pid


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a CI job cancelled, `kill`, `timeout`) stops a command as Ctrl-C does: the
    report is closed "interrupted" with what finished, and the command exits 2. The old
    handler comes back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(number: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {number}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
