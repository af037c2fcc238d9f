"""Running the checks of a user's layer under hypothesis, and collecting their summaries.

`run` draws cases (or takes the one given), checks each with
`gradcheck.user.engine.check_example`, redraws those at a non-differentiable point,
steers the search towards the largest error/bound, and raises the shrunk failure:
`GradientMismatch` with a reproduction snippet, or the user-code error. Every summary
goes to the `collect()` block around it, passed or not (the pytest plugin's summary).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from gradcheck.core.results import Verdict
from gradcheck.core.values import VALUE_DRAWS
from gradcheck.diagnosis.classes import decide
from gradcheck.errors import (
    GradcheckError,
    GradientMismatch,
    NondeterministicError,
    NonFiniteOutputError,
    UsageError,
    UserTimeoutError,
)
from gradcheck.report import Failure
from gradcheck.user.adapters import qualified_name
from gradcheck.user.calls import confirm_deterministic
from gradcheck.user.draw import Plan, cases, decode
from gradcheck.user.engine import check_example
from gradcheck.user.example import case_from_example
from gradcheck.user.reproduce import reproduction
from gradcheck.user.summary import LayerCheck
from gradcheck.user.types import Memo, Options, UserCase, UserLayer

_collector: contextvars.ContextVar[list[LayerCheck] | None] = contextvars.ContextVar(
    "gradcheck_layer_checks", default=None
)


_keep_going: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "gradcheck_keep_going", default=False
)


@contextmanager
def collect(*, keep_going: bool = False) -> Iterator[list[LayerCheck]]:
    """Collect the LayerCheck of every check run inside the block, passed or not (the
    pytest plugin uses it for its summary and report). keep_going: a check that fails or
    errs returns its LayerCheck instead of raising, so that a function of several checks
    runs them all (`gradcheck check`)."""
    checks: list[LayerCheck] = []
    token, going = _collector.set(checks), _keep_going.set(keep_going)
    try:
        yield checks
    finally:
        _collector.reset(token)
        _keep_going.reset(going)


# ---- running ------------------------------------------------------------------------------------


def settings_for(parent: Any, max_examples: int | None) -> Any:
    from hypothesis import HealthCheck, Phase, settings

    if max_examples is not None and (
        isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1
    ):
        raise UsageError(f"max_examples must be a positive integer, got {max_examples!r}")
    if parent is not None and not isinstance(parent, settings):
        raise UsageError(
            f"settings= takes a hypothesis.settings object (such as settings(max_examples=50)) "
            f"or None, got {parent!r}"
        )
    base = parent if parent is not None else settings()
    options: dict[str, Any] = {
        "deadline": None,
        "report_multiple_bugs": False,
        # the explain phase would list gradcheck's own lines, not the user's. The target
        # phase cannot steer a case: hypothesis's optimiser hill-climbs a bytes choice as
        # one big-endian integer moved by at most 2**20, and a case is one blob (see
        # gradcheck.user.draw), so it only ever changed the blob's last three bytes, the
        # end of the last dout's grid (mostly outside the drawn corner), and re-ran one
        # case for the second half of the budget (hypothesis starts it at max_examples // 2
        # below 1000): of 100 examples about 50 distinct cases were drawn, and a regime
        # drawn 1 time in 16 (tiny values) was missed on 1 seed in 20
        # (benchmarks/search_power.py). Without it every example is a fresh draw.
        "phases": [phase for phase in base.phases if phase not in (Phase.explain, Phase.target)],
        # a case is one fixed-size blob by design (see gradcheck.user.draw), and checking
        # a layer takes many calls of it
        "suppress_health_check": [
            *base.suppress_health_check,
            HealthCheck.too_slow,
            HealthCheck.large_base_example,
        ],
    }
    if max_examples is not None:
        options["max_examples"] = max_examples
    return settings(base, **options)


def run(
    layer: UserLayer,
    source: Mapping[str, Any],
    plan: Plan,
    options: Options,
    *,
    settings: Any,
    max_examples: int | None,
    example: Any,
) -> LayerCheck:
    __tracebackhide__ = True  # pytest: show the user's frames, not gradcheck's
    summary = LayerCheck(layer.name, layer.style, str(layer.signature))
    memo = Memo()
    functions = sorted(qualified_name(f) for f in source.values() if callable(f))
    collector = _collector.get()
    try:
        if example is not None:
            case = case_from_example(layer, plan, example)
            _one(layer, source, case, options, memo, summary, inside=False)
        else:
            key = ":".join(
                ["gradcheck.user.api", layer.style, layer.name, str(layer.signature), *functions]
            )
            _hypothesis(layer, source, plan, options, memo, summary, settings, max_examples, key)
        if memo.aliased is not None:
            raise memo.aliased
        summary.outcome = "passed"
        if summary.examples == 0:
            summary.message = f"every draw was non-differentiable (the last: {summary.message})"
    except GradientMismatch as error:
        error = _diagnosed(error, layer, source, plan, options, memo)
        if summary.failure is not None:  # the report holds the same decision
            summary.failure.diagnosis = error.diagnosis
            summary.failure.message = error.result.message
            summary.failure.reproduction = error.reproduction or summary.failure.reproduction
        summary.outcome, summary.message = "failed", str(error)
        if _keep_going.get():  # recorded; the next check of a function of checks runs
            return summary
        raise error from None
    except NonFiniteOutputError as error:
        unstable = _unstable(error, layer)
        summary.add_error(unstable, plan.dtypes[0].name)  # a cell "error" in the report
        if _keep_going.get():
            return summary
        raise unstable from error.__cause__
    except GradcheckError as error:
        summary.add_error(error, plan.dtypes[0].name)  # a cell "error" in the report
        if _keep_going.get():
            return summary
        raise
    finally:
        if collector is not None:
            collector.append(summary)
    return summary


#: Random draws checked after a failure, so that its diagnosis rests on several cases. They
#: come from a fixed seed, so the reproduction snippet (which checks the shown case with
#: example=) draws and diagnoses the same ones.
DIAGNOSIS_DRAWS = 6
DIAGNOSIS_SEED = 0


def _diagnosed(
    error: GradientMismatch,
    layer: UserLayer,
    source: Mapping[str, Any],
    plan: Plan,
    options: Options,
    memo: Memo,
) -> GradientMismatch:
    """The failure with its one diagnosis, decided once (`gradcheck.diagnosis.classes.
    decide`) from the shown case and the seeded random draws that fail too: the shown
    case alone is often too small to tell a constant factor from a wrong derivative, or
    a batch factor from a constant one. The message, the report and the reproduction
    snippet (which states the class) all carry this decision."""
    shown = _evidence(memo, options)
    if shown is None:  # no per-entry reference (random probes): nothing to diagnose from
        return error
    rng = np.random.default_rng(DIAGNOSIS_SEED)
    # The draws hold the small table's values, as before issue 16: they are read for a
    # pattern (a factor per row, a + b·x), which saturated values blur (e^-64 ≈ 0 makes a
    # wrong derivative look like a missing term); the search found the failure already.
    token = VALUE_DRAWS.set("table")
    try:
        draws = _diagnosis_draws(layer, plan, options, memo, rng)
    finally:
        VALUE_DRAWS.reset(token)
    diagnosis = decide(shown, draws)
    head = error.result.message.split("\ndiagnosis: ")[0]
    result = dataclasses.replace(
        error.result, message=f"{head}\ndiagnosis: {diagnosis}", diagnosis=diagnosis
    )
    snippet = error.reproduction
    if error.case is not None:
        snippet = reproduction({**source, "drawing": drawing_options(plan)}, layer, error.case)
        snippet = (
            f"# gradcheck's diagnosis: {diagnosis.kind}. Checking this case again checks the\n"
            f"# {DIAGNOSIS_DRAWS} seeded random draws the diagnosis read too, and names the "
            f"same class.\n{snippet}"
        )
    return GradientMismatch(result, case=error.case, reproduction=snippet)


def _diagnosis_draws(
    layer: UserLayer, plan: Plan, options: Options, memo: Memo, rng: np.random.Generator
) -> list[Any]:
    """The evidence of the seeded random draws that fail too."""
    draws: list[Any] = []
    for _ in range(DIAGNOSIS_DRAWS):
        memo.failing = []
        try:
            with time_limit(options.timeout):
                result = check_example(
                    layer, decode(layer, plan, rng.bytes(plan.length)), options, memo
                )
        except (GradcheckError, _Deadline):  # a draw that errs explains nothing
            continue
        if result.verdict is Verdict.MISMATCH:
            found = _evidence(memo, options)
            draws += [found] if found is not None else []
    return draws


#: check_backward's (and its siblings') default size range, min_size to max_size.
DEFAULT_SIZES = (1, 4)


def drawing_options(plan: Plan) -> dict[str, Any]:
    """The keyword arguments that make a check draw its cases as this plan does, where
    they differ from the defaults: dtypes=, and sizes= for each size drawn from another
    range than DEFAULT_SIZES."""
    drawing: dict[str, Any] = {}
    dtypes = tuple(dtype.name for dtype in plan.dtypes)
    if dtypes != ("float64",):
        drawing["dtypes"] = dtypes
    sizes = {}
    for name in plan.space.drawn:
        low, high = plan.space.ranges[name]
        if (low, high) != DEFAULT_SIZES:
            sizes[name] = low if low == high else (low, high)
    if sizes:
        drawing["sizes"] = sizes
    return drawing


def _evidence(memo: Memo, options: Options) -> Any:
    """The evidence of the latest failing example, gathered now (None if it has none)."""
    if not memo.failing:
        return None
    try:
        with time_limit(options.timeout):
            return memo.failing[-1]()
    except (Exception, _Deadline):  # the mismatch is reported anyway
        return None


def _unstable(error: NonFiniteOutputError, layer: UserLayer) -> NonFiniteOutputError:
    """A forward that is not finite on finite inputs inside the bounds, diagnosed: the
    layer's own instability (the case shows the input), not a gradient bug."""
    head, _, rest = str(error).partition("\n")
    what = head.split("; if the layer")[0]
    declared = any(bounds is not None for bounds in layer.bounds)
    within = "inside the declared bounds" if declared else "(no bounds= declared)"
    lines = [
        f"{layer.name}: {what}",
        f"diagnosis: non-finite: the forward itself is not finite on these finite inputs "
        f"{within}: the layer's own numerical instability (an overflow, a division by zero, "
        "a log or sqrt of a negative), not a wrong gradient",
    ]
    if not declared:
        lines.append(
            "  if the layer is defined on a restricted domain only, pass bounds= (one "
            "(low, high) pair or None per argument of forward)"
        )
    unstable = NonFiniteOutputError(
        "\n".join([*lines, rest]).rstrip(), function=error.function, case=error.case
    )
    return unstable


def _hypothesis(
    layer: UserLayer,
    source: Mapping[str, Any],
    plan: Plan,
    options: Options,
    memo: Memo,
    summary: LayerCheck,
    parent: Any,
    max_examples: int | None,
    key: str,
) -> None:
    __tracebackhide__ = True
    from hypothesis import given
    from hypothesis.errors import FailedHealthCheck, Flaky, Unsatisfiable

    @settings_for(parent, max_examples)
    @given(cases(layer, plan))
    def examples(case: UserCase) -> None:
        _one(layer, source, case, options, memo, summary, inside=True)

    try:  # a database key per layer, so that saved failures replay for their own layer
        inner = examples.hypothesis.inner_test
        inner._hypothesis_internal_add_digest = key.encode()
    except AttributeError:
        pass
    try:
        examples()
    except Flaky as error:  # the same case failed differently when replayed
        found = [
            e for e in getattr(error, "exceptions", ()) if isinstance(e, NondeterministicError)
        ]
        if found:
            raise found[0] from None
        raise NondeterministicError(
            f"{layer.name}: replaying a failing case gave a different outcome, so the layer "
            f"does not compute the same thing on the same inputs ({error})"
        ) from error
    except (Unsatisfiable, FailedHealthCheck) as error:
        if summary.rejected == 0:
            raise
        raise GradcheckError(
            f"{layer.name}: hypothesis could not draw enough differentiable cases "
            f"({summary.rejected} draws were redrawn, {summary.examples} checked; the "
            f"last: {summary.message or 'see above'}). Narrow the domain with bounds= or "
            "check the kinks with kinks='subgradient'"
        ) from error


class _Deadline(BaseException):
    """Raised by the timer inside user code. A BaseException, so that the `except
    Exception` around user calls (which turns their errors into reports) lets it through."""


#: Seconds beyond which a timeout is no limit (about three years; setitimer overflows
#: near 1e9 s on some platforms).
_LONGEST_TIMER = 1e8


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Stop the block with _Deadline after `seconds`, where a POSIX timer can: in the main
    thread of a process with SIGALRM (elsewhere the block runs unlimited)."""
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    # A limit no timer can hold (inf, 1e10 s: setitimer overflows) is no limit.
    if not usable or not float(seconds) < _LONGEST_TIMER:  # type: ignore[arg-type]
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise _Deadline

    previous = signal.signal(signal.SIGALRM, expired)
    try:  # the handler is restored whatever happens, setting the timer included
        # at least a microsecond: setitimer reads a delay that rounds to 0 as "no timer"
        signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 1e-6))  # type: ignore[arg-type]
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


def _one(
    layer: UserLayer,
    source: Mapping[str, Any],
    case: UserCase,
    options: Options,
    memo: Memo,
    summary: LayerCheck,
    *,
    inside: bool,
) -> None:
    __tracebackhide__ = True
    if memo.timed_out is not None:  # shrinking a hang would wait out the deadline each time
        raise memo.timed_out
    try:
        with time_limit(options.timeout):
            result = check_example(layer, case, options, memo)
            if result.verdict is Verdict.MISMATCH:  # not a forward that changes per call?
                confirm_deterministic(layer, case)
    except _Deadline:
        memo.timed_out = UserTimeoutError(
            f"{layer.name}: an example took longer than timeout={options.timeout} s and was "
            f"stopped (raise timeout= for slow layers, or look for a loop that never ends)\n"
            f"{case.describe()}",
            case=case,
        )
        raise memo.timed_out from None
    summary.add(result)
    if result.verdict is Verdict.NON_DIFFERENTIABLE:
        summary.message = result.message
        if inside:
            from hypothesis import reject

            reject()
        return
    if result.verdict is Verdict.MISMATCH:
        snippet = reproduction(source, layer, case)
        error = GradientMismatch(result, case=case, reproduction=snippet)
        summary.failure = Failure.from_check_result(
            result,  # type: ignore[arg-type]
            z=case.arguments[0],
            theta=list(case.arguments[1:]),
            delta=case.dout if case.douts is None else [d.tolist() for d in case.douts],
            reproduction=snippet,
        )
        raise error
