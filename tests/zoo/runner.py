"""Checking the zoo's entries through gradcheck's public API, and independently of it.

`check(entry, backward)` runs `gradcheck.check_backward` with the entry's options under
derandomized hypothesis settings (no example database), so every run draws the same
cases. `outcome(name)` checks the wrong backward once per process and keeps what
happened (the GradientMismatch, another exception, or the passing summary), so that the
several tests that look at it, and `measure`, pay for it once.

`record(name, directory)` is what the tests across the zoo read of an outcome (its class,
the class names its message mentions, the class its reproduction names), kept as a small
JSON file in a directory the pytest-xdist workers share, so that the zoo's wrong backward
passes are checked about once per run rather than once per worker.

`independent_check(entry)` is the zoo's own oracle: central differences in float64 on a
few seeded random cases, with nothing of gradcheck; it confirms that the correct twin is
correct and that the wrong backward really differs from it.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings

import gradcheck

from .bugs import BY_NAME, CLASSES, Bug

#: Examples per check unless an entry says otherwise: enough to meet each bug on a few
#: sizes, few enough that the zoo runs in well under a minute.
MAX_EXAMPLES = 25

SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=MAX_EXAMPLES,
    suppress_health_check=list(HealthCheck),
)


def check(entry: Bug, backward: Any) -> Any:
    """gradcheck.check_backward on the entry's forward and the given backward."""
    options = dict(entry.options)
    options.setdefault("max_examples", MAX_EXAMPLES)
    return gradcheck.check_backward(
        entry.forward,
        backward,
        signature=entry.signature,
        name=f"zoo.{entry.name}",
        settings=SETTINGS,
        **options,
    )


@dataclass(frozen=True)
class Outcome:
    """What checking a backward gave: the mismatch, another exception, or a pass."""

    mismatch: BaseException | None = None
    error: BaseException | None = None
    summary: Any = None

    @property
    def diagnosis(self) -> str | None:
        return getattr(self.mismatch, "diagnosis", None)

    @property
    def message(self) -> str:
        return str(self.mismatch) if self.mismatch is not None else ""

    def describe(self) -> str:
        if self.mismatch is not None:
            return f"GradientMismatch ({self.diagnosis})"
        if self.error is not None:
            return f"{type(self.error).__name__}: {str(self.error).splitlines()[0]}"
        return "passed"


def _run(entry: Bug, backward: Any) -> Outcome:
    try:
        summary = check(entry, backward)
    except gradcheck.GradientMismatch as mismatch:
        return Outcome(mismatch=mismatch)
    except Exception as error:  # a UserCodeError, UsageError, ...: reported, not hidden
        return Outcome(error=error)
    return Outcome(summary=summary)


@functools.cache
def outcome(name: str) -> Outcome:
    """The wrong backward of entry `name`, checked once per process."""
    entry = BY_NAME[name]
    return _run(entry, entry.wrong)


@functools.cache
def twin_outcome(name: str) -> Outcome:
    """The correct twin of entry `name`, checked once per process."""
    entry = BY_NAME[name]
    return _run(entry, entry.right)


def record(name: str, directory: Path | None = None) -> dict[str, Any]:
    """What the zoo-wide tests read of entry `name`'s outcome: diagnosis, describe (the
    outcome in words), named (the class names its message mentions) and reproduced (the
    class its reproduction names: see `reproduce`). Read from `directory` when another
    process wrote it there, else computed (and written there, atomically)."""
    path = None if directory is None else directory / f"{name}.json"
    if path is not None and path.is_file():
        return dict(json.loads(path.read_text()))
    found = outcome(name)
    data = {
        "diagnosis": found.diagnosis,
        "describe": found.describe(),
        "named": class_names_in(found.message),
        "mismatch": found.mismatch is not None,
        "reproduced": None if found.mismatch is None else reproduce(BY_NAME[name], found.mismatch),
    }
    if path is not None:
        temporary = path.with_name(f"{name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data))
        os.replace(temporary, path)
    return data


# ---- class names in a message --------------------------------------------------------------------

_CLASS_PATTERN = re.compile(
    r"(?<![\w-])(" + "|".join(re.escape(c) for c in CLASSES) + r")(?![\w-])"
)


def class_names_in(message: str) -> list[str]:
    """The diagnosis class names a message mentions as whole words, in order, distinct."""
    found: list[str] = []
    for match in _CLASS_PATTERN.finditer(message):
        if match.group(1) not in found:
            found.append(match.group(1))
    return found


# ---- the zoo's own oracle ------------------------------------------------------------------------

_GROUP = re.compile(r"\(([^()]*)\)")

#: Sizes given to each size name of a signature in the independent check, in order of
#: appearance (distinct, so that a transposition cannot hide).
_SIZES = (3, 2, 4, 5)


def example_shapes(entry: Bug) -> tuple[list[tuple[int, ...]], tuple[int, ...]]:
    """Concrete shapes of the forward's arguments and output for the independent check."""
    left, right = entry.signature.split("->")
    groups = [[d.strip() for d in g.split(",") if d.strip()] for g in _GROUP.findall(left)]
    output = [d.strip() for d in _GROUP.findall(right)[0].split(",") if d.strip()]
    fixed = {
        name: value if isinstance(value, int) else value[1]
        for name, value in dict(entry.options.get("sizes", {})).items()
    }
    sizes: dict[str, int] = {}
    for dims in [*groups, output]:
        for dim in dims:
            if dim.isdigit() or dim in sizes:
                continue
            sizes[dim] = fixed.get(dim, _SIZES[len(sizes) % len(_SIZES)])

    def shape(dims: list[str]) -> tuple[int, ...]:
        return tuple(int(d) if d.isdigit() else sizes[d] for d in dims)

    return [shape(g) for g in groups], shape(output)


def _draw(entry: Bug, rng: np.random.Generator, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    if entry.probe is not None:
        return [np.asarray(a, dtype=np.float64) for a in entry.probe(rng, shapes)]
    bounds = entry.options.get("bounds") or [None] * len(shapes)
    arrays = []
    for shape, bound in zip(shapes, bounds, strict=True):
        values = rng.normal(size=shape) * 1.5
        if bound is not None:
            low, high = bound
            if np.isfinite(low) and np.isfinite(high):
                values = rng.uniform(low + 0.05 * (high - low), high - 0.05 * (high - low), shape)
            elif np.isfinite(low):
                values = low + 0.1 + np.abs(values)
            elif np.isfinite(high):
                values = high - 0.1 - np.abs(values)
        arrays.append(values)
    return arrays


def central_differences(forward: Any, arguments: list[np.ndarray], dout: np.ndarray, k: int):
    """∂⟨dout, forward(...)⟩/∂ arguments[k] by Richardson-extrapolated central differences."""
    base = [a.copy() for a in arguments]
    grad = np.zeros_like(base[k])
    flat = grad.reshape(-1)

    def energy(delta: float, index: int) -> float:
        moved = [a.copy() for a in base]
        moved[k].reshape(-1)[index] += delta
        return float(np.sum(np.asarray(forward(*moved), dtype=np.float64) * dout))

    for index in range(flat.size):
        h = 1e-4 * max(1.0, abs(float(base[k].reshape(-1)[index])))
        d1 = (energy(h, index) - energy(-h, index)) / (2 * h)
        d2 = (energy(h / 2, index) - energy(-h / 2, index)) / h
        flat[index] = (4 * d2 - d1) / 3
    return grad


def independent_check(entry: Bug, *, cases: int = 3, seed: int = 17) -> dict[str, float]:
    """Hold the twin against central differences (float64, seeded cases) and measure how
    far the wrong backward is from the twin.

    Returns twin_error, the worst relative error of the twin against the differences;
    wrong_distance, the largest relative difference of the wrong backward from the twin,
    both in float64; and non_finite, the number of cases where the wrong backward, run in
    the entry's own dtypes, returns NaN or inf where the twin does not.
    """
    rng = np.random.default_rng(seed)
    shapes, out_shape = example_shapes(entry)
    names = entry.forward.__code__.co_varnames[: len(shapes)]
    wrt = entry.options.get("wrt")
    chosen = list(range(len(shapes))) if wrt is None else [names.index(n) for n in wrt]
    dtypes = [np.dtype(d) for d in entry.options.get("dtypes", ("float64",))]
    twin_error, wrong_distance, non_finite = 0.0, 0.0, 0
    for _ in range(cases):
        arguments = _draw(entry, rng, shapes)
        dout = rng.normal(size=out_shape)
        right = entry.right(np.asarray(dout), *[a.copy() for a in arguments])
        with np.errstate(all="ignore"):
            wrong = entry.wrong(np.asarray(dout), *[a.copy() for a in arguments])
        for position, k in enumerate(chosen):
            reference = central_differences(entry.forward, arguments, dout, k)
            scale = max(1.0, float(np.max(np.abs(reference))))
            twin = np.asarray(right[position], dtype=np.float64)
            twin_error = max(twin_error, float(np.max(np.abs(twin - reference))) / scale)
            other = np.asarray(wrong[position], dtype=np.float64)
            with np.errstate(invalid="ignore"):
                distance = float(np.max(np.abs(other - twin))) / max(
                    1.0, float(np.max(np.abs(twin)))
                )
            wrong_distance = max(wrong_distance, distance if np.isfinite(distance) else np.inf)
        for dtype in dtypes:
            cast = [a.astype(dtype) for a in arguments]
            with np.errstate(all="ignore"):
                wrong = entry.wrong(np.asarray(dout, dtype=dtype), *[a.copy() for a in cast])
                right = entry.right(np.asarray(dout, dtype=dtype), *[a.copy() for a in cast])
            if any(
                not np.all(np.isfinite(w)) and np.all(np.isfinite(r))
                for w, r in zip(wrong, right, strict=True)
            ):
                non_finite += 1
    return {"twin_error": twin_error, "wrong_distance": wrong_distance, "non_finite": non_finite}


# ---- reproductions -------------------------------------------------------------------------------


def reproduce(entry: Bug, mismatch: Any) -> str | None:
    """Run a failure's reproduction snippet (its `forward` and `backward` placeholders
    bound to the entry's functions where they are not importable by name) and return the
    class the reproduced failure names: None when the snippet passes, the exception's
    type name when it raises something else."""
    namespace: dict[str, Any] = {
        "__name__": f"reproduction_of_{entry.name}",
        "forward": entry.forward,
        "backward": entry.wrong,
    }
    try:
        exec(compile(mismatch.reproduction, f"<reproduction of {entry.name}>", "exec"), namespace)
    except gradcheck.GradientMismatch as again:
        return again.diagnosis
    except Exception as error:
        return type(error).__name__
    return None
