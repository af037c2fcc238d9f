"""The vocabulary of report.json and the plain-value rules every part of it follows.

Constants (verdicts, oracles, histogram bins, schema name and version), the encoding of
floats that JSON cannot hold, exact arithmetic on seconds, and `Fields`, which reads one
JSON object and names the path of whatever is wrong with it. No I/O, no numpy.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Mapping
from typing import Any

from gradcheck.core.results import larger
from gradcheck.errors import GradcheckError

#: The value of "schema" in report.json: what kind of document this is.
SCHEMA_NAME = "gradcheck-report"
#: The layout version of report.json; readers refuse versions they do not know.
SCHEMA_VERSION = 1
#: A report's status: still being written, finished, or stopped early (what finished is kept).
STATUSES = ("running", "complete", "interrupted")
#: The verdicts of `gradcheck.catalogue.checker.Verdict`, as strings, in the checker's order;
#: "error" is not the catalogue checker's: it counts a user layer whose own code raised (the
#: failure keeps the exception's class and message); reports written before it read as 0.
VERDICTS = ("pass", "mismatch", "coupled", "non-differentiable", "invalid-input", "error")
#: The "activation" of a user layer's cell is the style of its check: a report of user
#: layers is labelled layer × style, and its counterexamples by argument, not z, θ, δ.
USER_STYLES = frozenset({"functional", "cached", "object", "unit-jacobian", "function"})
#: The oracles of `gradcheck.catalogue.checker.ORACLES`.
ORACLES = ("dense", "autograd", "finite-differences")
#: Edges of the error/bound histograms: a bin a decade from 1e-8 to 1e2. Bins are closed on
#: the right, (edge[k-1], edge[k]], so a ratio of exactly 1 (at the bound: a pass) falls in
#: the bin below the bound. Bin 0 holds ratios ≤ 1e-8 (0 included); the last bin holds
#: ratios above 1e2, infinity and NaN included (they never pass).
RATIO_BIN_EDGES = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2)
#: Number of histogram bins: the decades between the edges, plus underflow and overflow.
RATIO_BINS = len(RATIO_BIN_EDGES) + 1

_SHARD = re.compile(r"^([1-9][0-9]*)/([1-9][0-9]*)$")
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# Seconds are kept as whole microseconds: sums of integers are exact, so adding cells in
# any grouping (merging shards in any order) gives the same float to the last bit.
_MICROSECONDS = 1_000_000


# Control characters but newline and tab: ESC starts the ANSI sequences that recolour,
# move or clear a terminal; a name or message from user code shows them, never obeys them.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """Text from user code (a layer's name, an exception's message) safe for a terminal
    or Markdown: control characters such as ESC shown escaped (\\x1b), not sent."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", str(text))


def encode_float(value: float) -> float | str:
    """A float as JSON can hold it: finite values as they are, the others as strings."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def decode_float(value: Any, where: str = "value") -> float:
    """The float `encode_float` wrote: a number, or "NaN", "Infinity", "-Infinity"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[value]
    raise GradcheckError(
        f'{where} must be a number or one of "NaN", "Infinity", "-Infinity", got {value!r}'
    )


def encode_optional(value: float | None) -> float | str | None:
    return None if value is None else encode_float(value)


def ratio_bin(ratio: float) -> int:
    """The histogram bin of an error/bound ratio (see `RATIO_BIN_EDGES`)."""
    if math.isnan(ratio):
        return RATIO_BINS - 1
    return bisect.bisect_left(RATIO_BIN_EDGES, ratio)


def worse(a: float | None, b: float | None) -> float | None:
    """`larger`, where None means nothing seen yet."""
    if a is None:
        return b
    if b is None:
        return a
    return larger(a, b)


def add_seconds(*values: float) -> float:
    """The sum of durations, kept to the microsecond so that any grouping gives one float."""
    total = 0
    for seconds in values:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise GradcheckError(f"seconds must be a number, got {seconds!r}")
        if not math.isfinite(seconds) or seconds < 0:
            raise GradcheckError(f"seconds must be finite and not negative, got {seconds!r}")
        total += round(seconds * _MICROSECONDS)
    return total / _MICROSECONDS


def check_verdict(verdict: Any, where: str) -> str:
    verdict = str(verdict)  # a checker.Verdict is a str enum: keep its value
    if verdict not in VERDICTS:
        raise GradcheckError(f"{where}: unknown verdict {verdict!r}; one of {', '.join(VERDICTS)}")
    return verdict


def check_oracle(oracle: Any, where: str) -> str:
    if oracle not in ORACLES:
        raise GradcheckError(f"{where}: unknown oracle {oracle!r}; one of {', '.join(ORACLES)}")
    return str(oracle)


def check_count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GradcheckError(f"{where} must be a count (an integer ≥ 0), got {value!r}")
    return value


def check_text(value: Any, where: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise GradcheckError(f"{where} must be a string, got {value!r}")
    return value


def check_json_plain(value: Any, where: str) -> None:
    """Refuse what JSON cannot hold without loss (free-form mappings are written as given)."""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise GradcheckError(f"{where} is {value}, which JSON cannot hold")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_json_plain(item, f"{where}[{i}]")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise GradcheckError(f"{where} has a key {key!r} that is not a string")
            check_json_plain(item, f"{where}.{key}")
    else:
        raise GradcheckError(f"{where} is a {type(value).__name__}, which JSON cannot hold")


def thaw(value: Any) -> Any:
    """A JSON-shaped copy: tuples become lists, as they would after a trip through JSON."""
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    return value


def plain_array(value: Any) -> Any:
    """Nested lists of JSON-ready numbers from an array-like (numpy arrays, lists, scalars).

    Counterexamples may be invalid input (ragged, integer, complex, NaN): keep what was
    given as far as JSON can say it; what is not a real number is kept as its repr.
    """
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()  # numpy arrays and scalars, without importing numpy
    if isinstance(value, (list, tuple)):
        return [plain_array(v) for v in value]
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return encode_float(value)
    return repr(value)


def decode_array(value: Any, where: str) -> Any:
    """The nested lists `plain_array` wrote, with the special strings back as floats."""
    if isinstance(value, list):
        return [decode_array(v, where) for v in value]
    if isinstance(value, str):
        return _SPECIAL_FLOATS.get(value, value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GradcheckError(f"{where} holds {value!r}, which is not a number")
    return value


def array_shape(value: Any) -> list[int] | None:
    """The shape of nested lists if they are rectangular, else None."""
    if not isinstance(value, list):
        return []
    if not value:
        return [0]
    inner = [array_shape(v) for v in value]
    first = inner[0]
    if first is None or any(s != first for s in inner):
        return None
    return [len(value), *first]


def shard_parts(shard: Any) -> set[tuple[int, int]] | None:
    """The parts a shard setting names: "2/4" -> {(2, 4)}; "1/4,3/4" (a partial merge) ->
    {(1, 4), (3, 4)}; None (the whole campaign) -> None."""
    if shard is None:
        return None
    if not isinstance(shard, str):
        raise GradcheckError(f'settings.shard must be a string like "1/4" or None, got {shard!r}')
    parts = set()
    for text in shard.split(","):
        match = _SHARD.match(text.strip())
        if match is None or int(match.group(1)) > int(match.group(2)):
            raise GradcheckError(
                f'settings.shard must be "k/n" with 1 ≤ k ≤ n (or several joined by commas), '
                f"got {shard!r}"
            )
        parts.add((int(match.group(1)), int(match.group(2))))
    return parts


_CREATED = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)


def check_created(created: Any) -> str:
    if not isinstance(created, str) or not _CREATED.match(created):
        raise GradcheckError(
            f"created must be an ISO-8601 time such as 2024-05-01T12:00:00Z, got {created!r}"
        )
    return created


def check_environment(environment: Mapping[str, Any]) -> None:
    """Environment values are versions: a string, None, or a list of them after a merge."""
    for key, value in environment.items():
        values = value if isinstance(value, list) else [value]
        if not all(v is None or isinstance(v, str) for v in values):
            raise GradcheckError(
                f"environment.{key} must be a version string, None or a list of them, got {value!r}"
            )


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _whole(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


# The types of the settings a campaign records (others are free-form JSON values).
_SETTINGS: dict[str, tuple[str, Any]] = {
    "command": ("a string", lambda v: isinstance(v, str)),
    "seed": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "examples_per_cell": ("an integer ≥ 0", lambda v: _whole(v, 0)),
    "layer_types": ("a list of strings", _strings),
    "activations": ("a list of strings", _strings),
    "dtypes": ("a list of strings", _strings),
    "oracles": (
        f"a list of oracles ({', '.join(ORACLES)})",
        lambda v: _strings(v) and set(v) <= set(ORACLES),
    ),
    "workers": ("an integer ≥ 1", lambda v: _whole(v, 1)),
    "target": ("a string", lambda v: isinstance(v, str)),
}


def check_settings(settings: Mapping[str, Any]) -> None:
    """Refuse known settings of the wrong type (the schema types them the same way)."""
    for key, (kind, accepts) in _SETTINGS.items():
        value = settings.get(key)
        if value is not None and not accepts(value):
            raise GradcheckError(f"settings.{key} must be {kind} or None, got {value!r}")
    shard_parts(settings.get("shard"))
    check_json_plain(settings, "settings")


class Fields:
    """One JSON object being read: every error names the path of the offending field."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise GradcheckError(f"{where} must be a JSON object, got {type(data).__name__}")
        self.data = data
        self.where = where

    def path(self, key: str) -> str:
        return f"{self.where}.{key}"

    def get(self, key: str) -> Any:
        try:
            return self.data[key]
        except KeyError:
            raise GradcheckError(f"{self.where} has no {key!r}") from None

    def text(self, key: str, *, optional: bool = False) -> Any:
        value = self.data.get(key) if optional else self.get(key)
        return check_text(value, self.path(key), optional=optional)

    def count(self, key: str, *, optional: bool = False) -> Any:
        value = self.get(key)
        if value is None and optional:
            return None
        return check_count(value, self.path(key))

    def number(self, key: str, *, optional: bool = False) -> Any:
        value = self.get(key)
        if value is None and optional:
            return None
        return decode_float(value, self.path(key))

    def mapping(self, key: str) -> Fields:
        return Fields(self.get(key), self.path(key))

    def array(self, key: str) -> list[Any]:
        value = self.get(key)
        if not isinstance(value, list):
            raise GradcheckError(
                f"{self.path(key)} must be a JSON array, got {type(value).__name__}"
            )
        return value
