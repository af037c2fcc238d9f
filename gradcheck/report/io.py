"""Reports on disk: atomic writes, checked reads, an incremental writer, the JSON schema.

A reader never sees a partial report.json: every write goes to a temporary file in the same
directory, is flushed and fsynced, and replaces the old file in one `os.replace`. A
campaign writes through `ReportWriter`, which rewrites the file at most once per
`interval` seconds as cells finish and always on `close`, so an interrupted run leaves a
valid report of what finished.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from gradcheck import __version__
from gradcheck.errors import GradcheckError
from gradcheck.report.model import Cell, CostPoint, Failure, Report

#: Permissions of a new report file (the temporary file it starts as is private).
_NEW_FILE_MODE = 0o644


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of report.json, as shipped in the package."""
    text = importlib.resources.files("gradcheck.report").joinpath("schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def environment() -> dict[str, str | None]:
    """The versions a report records: python, numpy, autograd, hypothesis, gradcheck and
    the platform (None for a package that is not installed). Reads package metadata
    instead of importing the packages, so it costs little."""
    # lazy: importlib.metadata (with email and zipfile) would add a third to the cost of
    # importing gradcheck.report (measured: ~35 ms on ~120 ms); only a new report needs it.
    import importlib.metadata

    def version(distribution: str) -> str | None:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "numpy": version("numpy"),
        "autograd": version("autograd"),
        "hypothesis": version("hypothesis"),
        "gradcheck": __version__,
        "platform": platform.platform(),
    }


def write_report(report: Report, path: str | os.PathLike[str]) -> Path:
    """Write report.json atomically: the old file stays whole until the new one is.

    The directory is created if it does not exist. Returns the path written.
    """
    path = Path(path)
    # Serialise before touching the disk: a report that cannot be written changes nothing.
    data = report.to_json_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = _NEW_FILE_MODE
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=1, ensure_ascii=False, allow_nan=False)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_directory(path.parent)
    return path


def _sync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


class _BareConstantError(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _BareConstantError(name)


def read_report(path: str | os.PathLike[str]) -> Report:
    """Read and check a report.json; GradcheckError says what is wrong and what to do."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GradcheckError(
            f"no report at {path}: `gradcheck run` writes one (by default under reports/)"
        ) from None
    except IsADirectoryError:
        raise GradcheckError(f"{path} is a directory; give the path of its report.json") from None
    except UnicodeDecodeError:
        raise GradcheckError(f"{path} is not UTF-8 text, so it is not a gradcheck report") from None
    except OSError as error:
        raise GradcheckError(f"cannot read the report {path}: {error.strerror}") from None
    if not text.strip():
        raise GradcheckError(f"{path} is empty: not a gradcheck report")
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except _BareConstantError as constant:
        raise GradcheckError(
            f"{path} holds a bare {constant}, which is not JSON (gradcheck writes it as the "
            f'string "{constant}"): it was not written by gradcheck'
        ) from None
    except json.JSONDecodeError as error:
        raise GradcheckError(
            f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            "it may be truncated or not a gradcheck report"
        ) from None
    try:
        return Report.from_json_dict(data)
    except GradcheckError as error:
        raise GradcheckError(f"{path}: {error}") from None


class ReportWriter:
    """Keeps report.json up to date while a campaign runs.

    The file is written when the writer is made (status "running"), rewritten by `add` or
    `flush` at most once per `interval` seconds, and always by `close(status)`. Used as a
    context manager it closes "complete" on success and "interrupted" on an exception
    (KeyboardInterrupt included), so an interrupted run leaves a valid report of what
    finished. Cells and failures added stay referenced: changes made to them later are
    written with the next rewrite.
    """

    def __init__(
        self, path: str | os.PathLike[str], report: Report, *, interval: float = 1.0
    ) -> None:
        if not interval >= 0:
            raise GradcheckError(f"interval must be a number of seconds ≥ 0, got {interval!r}")
        self.path = Path(path)
        self.report = report
        self.interval = float(interval)
        self.writes = 0
        self._closed = False
        self._pending = True
        self._last_write = -float("inf")
        self.flush(force=True)

    def add(self, item: Cell | Failure | CostPoint) -> None:
        """Put a cell (replacing the cell with its key), a failure or a cost point in the
        report, and rewrite the file if the last write is `interval` seconds old."""
        if self._closed:
            raise GradcheckError(f"the report {self.path} is closed; nothing can be added")
        if isinstance(item, Cell):
            cells = self.report.cells
            for i, cell in enumerate(cells):
                if cell.key == item.key:
                    cells[i] = item
                    break
            else:
                cells.append(item)
        elif isinstance(item, Failure):
            self.report.failures.append(item)
        elif isinstance(item, CostPoint):
            self.report.cost.append(item)
        else:
            raise GradcheckError(
                f"a report holds cells, failures and cost points, not {type(item).__name__}"
            )
        self._pending = True
        self.flush()

    def flush(self, *, force: bool = False) -> bool:
        """Rewrite the file if something changed and the last write is `interval` seconds
        old (or force). Returns whether it wrote."""
        now = time.monotonic()
        if not force and (not self._pending or now - self._last_write < self.interval):
            return False
        write_report(self.report, self.path)
        self._last_write = now
        self._pending = False
        self.writes += 1
        return True

    def close(self, status: str = "complete") -> None:
        """Set the final status ("complete" or "interrupted") and write the file."""
        if status not in ("complete", "interrupted"):
            raise GradcheckError(f'a report closes "complete" or "interrupted", not {status!r}')
        self.report.status = status
        self._closed = True
        self.flush(force=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._closed:
            self.close("complete" if kind is None else "interrupted")
