"""How a field test states an outcome, through gradcheck's public API only.

- `passes`: the check must pass (a correct layer that gradcheck handles today).
- `caught`: the check must raise GradientMismatch (a real bug of the library); returns
  the error so that the test can look at its diagnosis and worst entry.
- `no_false_alarm`: what a check of a correct layer must do: pass, or end in a clear
  verdict that is not a mismatch (an error whose message says the differences cannot
  resolve the gradient). The checks of issue 14's false alarms use it.

Hypothesis settings are fixed here (derandomized, no example database) so that every
outcome, and so every strict xfail, is the same on every run and machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

import gradcheck


def field_settings(max_examples: int = 20, *, shrink: bool = True) -> settings:
    """shrink=False for the drawn checks of known false alarms: the first failure is the
    evidence, and shrinking it through a slow recurrent layer costs most of the corpus's
    time."""
    phases = [p for p in Phase if shrink or p is not Phase.shrink]
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
    )


def passes(check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    summary = check(*args, **kwargs)
    assert summary.passed, summary.describe()
    assert summary.examples > 0, summary.describe()
    return summary


def caught(check: Callable[..., Any], *args: Any, **kwargs: Any) -> gradcheck.GradientMismatch:
    with pytest.raises(gradcheck.GradientMismatch) as info:
        check(*args, **kwargs)
    return info.value


def failing_comparison(error: gradcheck.GradientMismatch) -> Any:
    """The comparison the mismatch message leads with (the worst failing one)."""
    failing = [c for c in error.result.comparisons if not c.passed]
    assert failing, str(error)
    return max(failing, key=lambda c: c.worst_ratio)


def no_false_alarm(check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The check of a correct layer: pass, or a clear "cannot resolve" verdict."""
    try:
        summary = check(*args, **kwargs)
    except gradcheck.GradientMismatch as error:
        pytest.fail(f"false alarm on a correct layer (issue 14):\n{error}")
    except gradcheck.UserCodeError:
        raise
    except gradcheck.GradcheckError as error:
        if "resolve" in str(error).lower():
            return None  # a verdict that names why the differences cannot tell
        pytest.fail(f"a correct, smooth layer ended in {type(error).__name__}:\n{error}")
    assert summary.outcome != "failed", summary.describe()
    return summary
