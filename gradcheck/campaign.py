"""A campaign: every cell of the catalogue (layer type × activation × dtype), checked on
many generated cases, folded into a report.

Each cell runs as one hypothesis search over `strategies.case_stacks` of that cell, so a
mismatch is shrunk to its smallest case and saved in the example database (under a key
of its own per cell) to be replayed first next time. Cells run in this process or, with
workers > 1, in a process pool of the standard library; the parent collects each cell's
statistics and failures into the report as they finish. `cost_points` times compact
against dense for the report's cost plot.

This module does no printing and no file I/O of its own: `gradcheck.cli` drives it and
writes the report. Importing it loads numpy, autograd and hypothesis, so the command
imports it only when a run starts.
"""

from __future__ import annotations

import math
import multiprocessing
import signal
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as seeded
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from gradcheck import strategies
from gradcheck.catalogue import layers as catalogue_layers
from gradcheck.catalogue.activations import ACTIVATIONS, resolve_activation
from gradcheck.catalogue.checker import Case, CheckResult, Verdict, check_many
from gradcheck.catalogue.losses import LOSSES
from gradcheck.catalogue.network_checker import check_networks
from gradcheck.catalogue.reproduce import reproduction
from gradcheck.core import compact
from gradcheck.core.results import Outcome
from gradcheck.errors import GradcheckError, GradientMismatch
from gradcheck.report import Cell, CostPoint, Failure

#: Cases checked together in one hypothesis example (and one vectorised pass).
STACK_SIZE = 25
#: The layer type of the campaign's network cells, whose "activation" is the loss.
NETWORK = "network"


@dataclass(frozen=True)
class CellSpec:
    """One cell to run: names from the catalogue."""

    layer_type: str
    activation: str
    dtype: str

    @property
    def key(self) -> str:
        return f"{self.layer_type} / {self.activation} / {self.dtype}"


def cells(
    *,
    layer_types: Sequence[str] | None = None,
    activations: Sequence[str] | None = None,
    dtypes: Sequence[str] = ("float64", "float32"),
) -> list[CellSpec]:
    """The catalogue's cells, filtered; layer types without an activation give one cell
    (identity) per dtype, and networks (layer type "network") one cell per loss and dtype,
    each of random stacks of layer types and activations. Unknown names raise
    UnknownNameError."""
    # The catalogue is read through its module when a campaign starts, not bound at import,
    # so that a catalogue patched in place (as the tests do to plant a bug) is what runs.
    names = list(layer_types or [*catalogue_layers.LAYER_TYPES, NETWORK])
    networks = NETWORK in names
    layers = [catalogue_layers.resolve_layer_type(name) for name in names if name != NETWORK]
    chosen = [resolve_activation(name).name for name in (activations or list(ACTIVATIONS))]
    for dtype in dtypes:
        if not isinstance(dtype, str) or dtype not in ("float32", "float64"):
            raise GradcheckError(f"dtype {dtype!r} is not supported; choose float32 or float64")
    specs = []
    for layer in layers:
        activations_of = chosen if layer.uses_activation else ["identity"]
        if (
            not layer.uses_activation
            and activations
            and not layer_types
            and "identity" not in chosen
        ):
            continue  # filtering activations leaves out layers without one, unless named
        for name in activations_of:
            for dtype in dtypes:
                specs.append(CellSpec(layer.name, name, dtype))
    if networks and not activations:  # networks mix activations; a filter on them skips these
        specs += [CellSpec(NETWORK, loss, dtype) for loss in LOSSES for dtype in dtypes]
    return specs


def parse_shard(text: str) -> tuple[int, int]:
    """ "K/N" -> (K, N), 1 <= K <= N."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise GradcheckError(f"a shard is K/N with whole numbers, like 2/4; got {text!r}") from None
    if not 1 <= k <= n:
        raise GradcheckError(f"shard {text!r}: K must be between 1 and N")
    return k, n


def shard(specs: Sequence[CellSpec], k: int, n: int) -> list[CellSpec]:
    """Shard K of N: every N-th cell starting at the K-th, so shards are balanced."""
    return [spec for index, spec in enumerate(specs) if index % n == k - 1]


# ---- one cell -------------------------------------------------------------------------------


@dataclass
class CellOutcome:
    """What a cell's run produced: its statistics and failures, kept whole."""

    cell: Cell
    failures: list[Failure]
    seconds: float


class _PrefixedDatabase(ExampleDatabase):
    """An example database whose every key starts with a tag (the cell's)."""

    def __init__(self, inner: ExampleDatabase, tag: bytes) -> None:
        super().__init__()
        self.inner, self.tag = inner, tag

    def save(self, key: bytes, value: bytes) -> None:
        self.inner.save(self.tag + key, value)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        return self.inner.fetch(self.tag + key)

    def delete(self, key: bytes, value: bytes) -> None:
        self.inner.delete(self.tag + key, value)

    def move(self, source: bytes, destination: bytes, value: bytes) -> None:
        self.inner.move(self.tag + source, self.tag + destination, value)


def _prefixed_database(path: str | None, prefix: str) -> ExampleDatabase | None:
    """The example database, with every key prefixed by the cell, so that each cell's
    counterexamples replay in that cell only."""
    if path is None:
        return None
    return _PrefixedDatabase(DirectoryBasedExampleDatabase(path), prefix.encode())


def _stack_size(examples: int) -> int:
    """Stacks of at most STACK_SIZE cases that add up to `examples` (or just over)."""
    stacks = math.ceil(max(examples, 1) / STACK_SIZE)
    return math.ceil(max(examples, 1) / stacks)


def _searching(
    spec: CellSpec, *, examples: int, size: int, seed: int, database: str | None
) -> Callable[[Any], Any]:
    """The settings of a cell's search: enough stacks of `size` for `examples`, the
    cell's own seed and database keys, no deadline (timing is the machine's)."""
    configured = settings(
        max_examples=math.ceil(examples / size),
        database=_prefixed_database(database, f"gradcheck-run {spec.key}:"),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=False,
    )
    return lambda test: configured(seeded(cell_seed(seed, spec))(test))


def cell_seed(seed: int, spec: CellSpec) -> int:
    """A seed per cell derived from the campaign's, stable across runs and processes."""
    return (seed * 1_000_003 + zlib.crc32(spec.key.encode())) % (2**32)


def run_cell(spec: CellSpec, *, examples: int, seed: int, database: str | None) -> CellOutcome:
    """Check `examples` cases of one cell (a few more when the last stack overflows).

    Statistics count every case of the search until the first failure; the shrinking that
    follows runs many more cases, which are not counted. A mismatch is kept as a Failure
    with its shrunk case and reproduction; invalid input, which the generators should
    never produce, is kept as it first appears.
    """
    if spec.layer_type == NETWORK:
        return run_network_cell(spec, examples=examples, seed=seed, database=database)
    started = time.perf_counter()
    layer = catalogue_layers.LAYER_TYPES[spec.layer_type]
    activation = ACTIVATIONS[spec.activation]
    # A layer that cannot move its pre-activations off a kink (cosine, layer norm) is drawn
    # where values fall, and a case on a kink gets the subgradient check instead.
    placeable = layer.clear_of_kinks is not None or not activation.kinks
    generate, kinks = ("avoid", "report") if placeable else ("allow", "subgradient")
    cell = Cell(layer_type=spec.layer_type, activation=spec.activation, dtype=spec.dtype)
    failures: list[Failure] = []
    size = _stack_size(examples)
    counting = [True]  # until the first failure: shrinking is not part of the statistics
    invalid_kept = [False]

    def keep(case: Case, result: CheckResult) -> None:
        failures.append(
            Failure.from_check_result(
                result,
                z=np.asarray(case.z),
                theta=np.asarray(case.theta),
                delta=np.asarray(case.delta),
                reproduction=reproduction(case, result.diagnosis),
                diagnosis=None if result.diagnosis is None else result.diagnosis.kind,
                activation=spec.activation,
            )
        )

    @_searching(spec, examples=examples, size=size, seed=seed, database=database)
    @given(
        strategies.case_stacks(
            layer_types=[layer],
            activations=[activation],
            dtypes=(spec.dtype,),
            coupled=None,
            min_size=size,
            max_size=size,
            kinks=generate,
        )
    )
    def search(stack: list[Case]) -> None:
        results = check_many(stack, kinks=kinks)
        for case, result in zip(stack, results, strict=True):
            if counting[0]:
                cell.add(result)
            if result.verdict is Verdict.INVALID_INPUT and not invalid_kept[0]:
                invalid_kept[0] = True  # a generated case should never be invalid
                keep(case, result)
        for case, result in zip(stack, results, strict=True):
            if result.verdict is Verdict.MISMATCH:
                counting[0] = False
                raise GradientMismatch(result, case=case)

    try:
        search()
    except GradientMismatch as found:  # raised again by hypothesis on the shrunk case
        keep(found.case, found.result)
    return CellOutcome(cell, failures, time.perf_counter() - started)


@dataclass(frozen=True)
class _NetworkCase:
    """What a report cell reads of a network check: the cell's key."""

    layer_type: str
    activation: str
    dtype: str

    def describe(self) -> str:
        """The case line of a GradientMismatch: a network cell has no I, J, N or P."""
        return f"case: {self.layer_type} / {self.activation} / {self.dtype}"


@dataclass(frozen=True)
class _NetworkOutcome(Outcome):
    """A NetworkResult as a report cell folds it in."""

    verdict: Any
    message: str
    case: _NetworkCase
    comparisons: tuple[Any, ...]
    seconds: Any
    diagnosis: Any = None


def run_network_cell(
    spec: CellSpec, *, examples: int, seed: int, database: str | None
) -> CellOutcome:
    """Like run_cell, for random networks (depth 1 to 4, any unit-partitioned layer types
    and activations) ending in the cell's loss."""
    started = time.perf_counter()
    cell = Cell(layer_type=NETWORK, activation=spec.activation, dtype=spec.dtype)
    failures: list[Failure] = []
    size = _stack_size(examples)
    counting = [True]

    def outcome(result: Any) -> _NetworkOutcome:
        case = _NetworkCase(NETWORK, spec.activation, spec.dtype)
        return _NetworkOutcome(
            result.verdict, result.message, case, result.comparisons, result.seconds
        )

    @_searching(spec, examples=examples, size=size, seed=seed, database=database)
    @given(
        strategies.network_stacks(
            losses=[spec.activation], dtypes=(spec.dtype,), min_size=size, max_size=size
        )
    )
    def search(stack: list[Any]) -> None:
        results = check_networks(stack)
        for network, result in zip(stack, results, strict=True):
            if counting[0]:
                cell.add(outcome(result))  # type: ignore[arg-type]  # a CheckResult's fields
            if result.verdict is Verdict.MISMATCH:
                counting[0] = False
                raise GradientMismatch(outcome(result), case=network)

    try:
        search()
    except GradientMismatch as found:  # raised again by hypothesis on the shrunk network
        network = found.case
        failures.append(
            Failure.from_check_result(
                found.result,
                z=np.asarray(network.z),
                theta=np.concatenate([np.ravel(layer.theta) for layer in network.layers])[None],
                delta=np.asarray(network.targets, dtype=np.float64).reshape(len(network.z), -1),
                reproduction=(
                    "import numpy as np\nimport gradcheck\nfrom gradcheck import Network, "
                    f"NetworkLayer\n\nnetwork = {network!r}\n"
                    "print(gradcheck.check_network(network).message)"
                ),
                activation=spec.activation,
            )
        )
    return CellOutcome(cell, failures, time.perf_counter() - started)


# ---- many cells -----------------------------------------------------------------------------


def _ignore_interrupts() -> None:
    # Workers leave Ctrl-C and SIGTERM to the parent, which stops the pool (terminating
    # them) and saves the report; a worker that raised on a signal would print a traceback
    # (BrokenPipeError, KeyboardInterrupt) for every task it was handed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run_packed(arguments: tuple[CellSpec, int, int, str | None]) -> tuple[CellSpec, CellOutcome]:
    spec, examples, seed, database = arguments
    return spec, run_cell(spec, examples=examples, seed=seed, database=database)


def run_cells(
    specs: Sequence[CellSpec],
    *,
    examples: int,
    seed: int,
    database: str | None,
    workers: int,
    on_outcome: Callable[[CellSpec, CellOutcome], None],
) -> None:
    """Run every cell, calling on_outcome in the parent as each finishes. On
    KeyboardInterrupt the pool's workers are terminated and the interrupt propagates;
    every cell that finished has been handed over."""
    jobs = [(spec, examples, seed, database) for spec in specs]
    with _interrupts_remembered() as interrupted:
        if workers <= 1:
            for job in jobs:
                on_outcome(*_run_packed(job))
                interrupted()
            return
        with multiprocessing.Pool(workers, initializer=_ignore_interrupts) as pool:
            for spec, outcome in pool.imap_unordered(_run_packed, jobs):
                on_outcome(spec, outcome)  # leaving the block terminates the workers
                interrupted()


@contextmanager
def _interrupts_remembered() -> Iterator[Callable[[], None]]:
    """Ctrl-C raises KeyboardInterrupt as usual and is remembered: Python drops an
    exception raised where it cannot propagate (a gc callback, which hypothesis installs,
    prints "Exception ignored"), so the loop asks the returned function between cells,
    and it raises KeyboardInterrupt for a Ctrl-C that was lost. An error that escapes
    after a Ctrl-C is taken for the interrupt too: code the KeyboardInterrupt unwound can
    fail on its way out (hypothesis, interrupted before its engine starts, fails its own
    assertion), and the user asked to stop, not for an internal error."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None  # only the main thread receives signals
        return
    seen: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    def interrupted() -> None:
        if seen:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield interrupted
    except Exception as problem:
        if seen:
            raise KeyboardInterrupt from problem
        raise
    finally:
        signal.signal(signal.SIGINT, previous)


# ---- the cost plot ---------------------------------------------------------------------------


def cost_points() -> list[CostPoint]:
    """Compact A = δ ⊙ B against the explicit block-diagonal product at a few sizes, for
    the report's cost plot (best of three timings; bytes of the arrays each forms)."""
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


def default_database() -> str:
    """Where the campaign keeps counterexamples: hypothesis's usual directory."""
    return str(Path(".hypothesis") / "examples")
