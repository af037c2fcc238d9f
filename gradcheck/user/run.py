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
import math
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from gradcheck.core.results import Verdict
from gradcheck.diagnosis.classes import diagnose_draws
from gradcheck.errors import (
    GradcheckError,
    GradientMismatch,
    NondeterministicError,
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
        # the explain phase would list gradcheck's own lines, not the user's
        "phases": [phase for phase in base.phases if phase is not Phase.explain],
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
        error = (
            _diagnosed_over_draws(error, layer, plan, options, memo) if example is None else error
        )
        if summary.failure is not None:
            summary.failure.diagnosis = error.diagnosis
        summary.outcome, summary.message = "failed", str(error)
        if _keep_going.get():  # recorded; the next check of a function of checks runs
            return summary
        raise error from None
    except GradcheckError as error:
        summary.add_error(error, plan.dtypes[0].name)  # a cell "error" in the report
        if _keep_going.get():
            return summary
        raise
    finally:
        if collector is not None:
            collector.append(summary)
    return summary


#: Random draws checked after a failure, so that its diagnosis rests on several cases.
DIAGNOSIS_DRAWS = 6


def _diagnosed_over_draws(
    error: GradientMismatch, layer: UserLayer, plan: Plan, options: Options, memo: Memo
) -> GradientMismatch:
    """The shrunk failure, diagnosed over a few random draws that fail too: the shrunk
    case alone is often too small to tell a constant factor from a wrong derivative."""
    shrunk = memo.failing[-1:]
    memo.failing = []
    rng = np.random.default_rng(0)
    for _ in range(DIAGNOSIS_DRAWS):
        try:
            check_example(layer, decode(layer, plan, rng.bytes(plan.length)), options, memo)
        except GradcheckError:  # the failure is what matters; a draw that errs explains nothing
            continue
    # The random draws decide; the shrunk case speaks only when no other draw fails.
    draws = memo.failing or shrunk
    if not draws or error.result.diagnosis is None:
        return error
    result = dataclasses.replace(error.result, diagnosis=diagnose_draws(draws))
    return GradientMismatch(result, case=error.case, reproduction=error.reproduction)


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
    if inside and result.verdict is Verdict.PASS:  # steer the search towards the bound
        from hypothesis import target

        worst = result.worst()
        if worst is not None and math.isfinite(worst.worst_ratio):
            target(worst.worst_ratio, label="largest error / bound")
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
