"""One example of a user's layer in, one result out.

`check_example` runs the user's forward and backward on a drawn case, makes sure they
behave (deterministic, leave their inputs alone, return what the signature promises),
bounds the rounding of the hand-written gradients, and holds them against the
references of `gradcheck.user_oracles`:

    |g - r|  <=  rounding(g) + error(r)          entry by entry, as in gradcheck.tolerance

**rounding(g)**: the user's backward is run once more on `Tracked` inputs. When it runs
through the error model's rules and returns Tracked arrays without an "untracked" or
"tie" event, its running bound e_T is rigorous for the values v_T it computed; the plain
run's gradient g is then charged e_T + |v_T - g| (rigorous too), and the two runs must
agree within 2 e_T (the same sums in another order) or they computed different things.
The same code run in a higher precision measures its actual rounding, which also sees
constants rounded to the working dtype in plain arrays; g is charged the larger of the
two. Without a running bound the fallback model of `gradcheck.tolerance` applies, and the
result says so.

**error(r)**: autograd's own running bound when its Tracked evaluation works (else the
fallback model); for finite differences the Richardson error, with the forward's
rounding bounded the same way (Tracked run, else fallback).

This module is free of hypothesis and pytest.
"""

from __future__ import annotations

import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradcheck import compact
from gradcheck.checker import Comparison, Verdict
from gradcheck.errors import (
    CoupledLayerError,
    GradcheckError,
    InputMutationError,
    NondeterministicError,
    NonFiniteOutputError,
    UsageError,
    UserCodeError,
    UserOutputError,
)
from gradcheck.signature import Signature
from gradcheck.tolerance import Tracked, gamma, recording, summation_bound, track, unit_roundoff
from gradcheck.user_oracles import (
    ArgumentDifferences,
    AutogradReference,
    NotTraceableError,
    StencilError,
    autograd_reference,
    differences,
    structure,
)

#: Entries shown per failing gradient in a mismatch message.
SHOWN_ENTRIES = 3
#: Arrays with more entries than this are summarised (shape and range) in messages.
SHOWN_ARRAY_SIZE = 24


@dataclass(frozen=True)
class UserLayer:
    """A user's layer in functional form, whatever style it was written in.

    forward(*args) -> out; backward(dout, *args) -> one gradient per `wrt` argument.
    parameters: the arguments whose structure is analysed. bounds: per argument, an open
    interval its values stay in (or None). unit_jacobian(z, θ) -> B for the unit-Jacobian
    style, whose θ (argument 1) must be unit-partitioned along its axis 0.
    """

    name: str
    style: str
    forward: Callable[..., Any]
    backward: Callable[..., Any]
    signature: Signature
    argument_names: tuple[str, ...]
    wrt: tuple[int, ...]
    parameters: tuple[int, ...]
    bounds: tuple[tuple[float, float] | None, ...]
    unit_jacobian: Callable[..., Any] | None = None


@dataclass(frozen=True)
class Options:
    """kinks: "redraw" (a draw at a kink is non-differentiable) or "subgradient" (the
    hand-written gradient must lie between the one-sided differences there). autograd:
    None detects it, True requires it, False skips it."""

    kinks: str = "redraw"
    autograd: bool | None = None


@dataclass
class Memo:
    """What one check learns across its examples: why autograd was skipped. (Only
    reported: every example tries autograd again, so that replaying a case during
    shrinking reproduces it exactly.)"""

    autograd_skipped: str | None = None


def _format_array(value: np.ndarray) -> str:
    if value.size > SHOWN_ARRAY_SIZE:
        return (
            f"<{value.dtype.name} array of shape {value.shape}, values in "
            f"[{np.min(value):.6g}, {np.max(value):.6g}]>"
        )
    return repr(value.tolist())  # float reprs round-trip; float32 values are exact in them


@dataclass(frozen=True, eq=False)
class UserCase:
    """One draw for a user's layer: the named sizes, the forward's arguments and dout,
    all in one dtype."""

    sizes: Mapping[str, int]
    arguments: tuple[np.ndarray, ...]
    dout: np.ndarray
    names: tuple[str, ...]

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.dout.dtype

    def arrays(self) -> tuple[tuple[str, np.ndarray], ...]:
        return (*zip(self.names, self.arguments, strict=True), ("dout", self.dout))

    def describe(self) -> str:
        sizes = ", ".join(f"{name}={size}" for name, size in self.sizes.items()) or "none"
        lines = [f"sizes {sizes}, dtype {self.dtype.name}"]
        lines += [f"  {name} = {_format_array(value)}" for name, value in self.arrays()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={size}" for name, size in self.sizes.items())
        arrays = ", ".join(f"{name}={value.tolist()!r}" for name, value in self.arrays())
        return f"UserCase({self.dtype.name}, {sizes}, {arrays})"


@dataclass(frozen=True)
class UserCaseSummary:
    """The case as the report keys it: layer_type is the layer's name, activation the
    style of the layer ("functional", "cached", "object", "unit-jacobian")."""

    layer_type: str
    activation: str
    dtype: str
    sizes: Mapping[str, int]
    arrays: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        sizes = ", ".join(f"{name}={size}" for name, size in self.sizes.items()) or "none"
        lines = [f"case: {self.layer_type} ({self.activation}) / {self.dtype}, sizes {sizes}"]
        lines += [f"  {name} = {text}" for name, text in self.arrays]
        return "\n".join(lines)


@dataclass(frozen=True)
class UserResult:
    """The outcome of one example: a verdict, every comparison, what ran and how the
    errors were bounded (`error_models`: side -> model), and the structure found
    (parameter -> "partitioned along axis k" / "shared" / "unused" / "undetermined")."""

    verdict: Verdict
    message: str
    case: UserCaseSummary
    comparisons: tuple[Comparison, ...] = ()
    seconds: Mapping[str, float] = field(default_factory=dict)
    oracles: tuple[str, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)
    error_models: Mapping[str, str] = field(default_factory=dict)
    structure: Mapping[str, str] = field(default_factory=dict)
    compact_identity: Mapping[str, str] = field(default_factory=dict)
    diagnosis: Any = None  # the hook for gradcheck.diagnosis; not computed for user layers yet

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    def worst(self) -> Comparison | None:
        return max(self.comparisons, key=lambda c: c.worst_ratio, default=None)

    def failures(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if not c.passed)


# ---- running user code -----------------------------------------------------------------------


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit for bit (NaN equal to the same NaN)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _user_frames(error: BaseException) -> str:
    """The traceback of an exception from user code, without gradcheck's own frame."""
    tb = error.__traceback__.tb_next if error.__traceback__ is not None else None
    return "".join(traceback.format_exception(type(error), error, tb)).rstrip()


def call_user(
    function: Callable[..., Any],
    arguments: Sequence[np.ndarray],
    role: str,
    names: Sequence[str],
    case: UserCase,
) -> Any:
    """function(*copies of arguments), with what it raises reported as UserCodeError
    (with the user's traceback and the case), and its inputs compared bit for bit
    before and after: a function that changes them raises InputMutationError."""
    copies = [np.array(a, copy=True) for a in arguments]
    try:
        result = function(*copies)
    except UserCodeError as error:  # raised by an adapter about what user code returned
        if error.case is not None:
            raise
        raise type(error)(
            f"{error}\n{case.describe()}", function=error.function or role, case=case
        ) from None
    except GradcheckError:
        raise
    except Exception as error:
        raise UserCodeError(
            f"{role} raised {type(error).__name__}: {error}\n{case.describe()}\n\n"
            f"{_user_frames(error)}",
            function=role,
            case=case,
        ) from error
    for name, before, after in zip(names, arguments, copies, strict=True):
        if not _same(np.asarray(before), after):
            changed = np.flatnonzero(np.asarray(before).reshape(-1) != after.reshape(-1))
            where = f" (first changed entry: flat index {changed[0]})" if changed.size else ""
            raise InputMutationError(
                f"{role} changed its argument {name} in place{where}. gradcheck calls it many "
                "times on the same arrays, and callers of a layer expect their arrays "
                f"untouched: work on a copy (e.g. {name} = {name}.copy()).\n{case.describe()}",
                function=role,
                case=case,
            )
    return result


def _as_array(value: Any, role: str, what: str, case: UserCase) -> np.ndarray:
    if isinstance(value, Tracked) or not isinstance(value, np.ndarray | np.generic | float | int):
        raise UserOutputError(
            f"{role} returned a {type(value).__name__} as {what}; expected a numpy array\n"
            f"{case.describe()}",
            function=role,
            case=case,
        )
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise UserOutputError(
            f"{role} returned {what} of dtype {array.dtype}; expected floating point\n"
            f"{case.describe()}",
            function=role,
            case=case,
        )
    return array


def forward_output(value: Any, layer: UserLayer, case: UserCase) -> np.ndarray:
    """The forward's output, checked against the signature's output shape."""
    out = _as_array(value, "forward", "its output", case)
    expected = layer.signature.output_shape(case.sizes)
    if out.shape != expected:
        raise UserOutputError(
            f"forward returned an array of shape {out.shape}; the signature "
            f"{layer.signature} promises {expected} for these sizes\n{case.describe()}",
            function="forward",
            case=case,
        )
    return out


def gradients(value: Any, layer: UserLayer, case: UserCase) -> list[np.ndarray]:
    """The backward's gradients: one per differentiated argument, each of its argument's
    shape and dtype."""
    names = [layer.argument_names[k] for k in layer.wrt]
    expected = ", ".join(f"d{name}" for name in names)
    whom = (
        "one per argument of forward"
        if len(layer.wrt) == len(layer.argument_names)
        else "one per differentiated argument"
    )
    if isinstance(value, tuple | list):
        items = list(value)
    elif len(layer.wrt) == 1:
        items = [value]
    else:
        raise UserOutputError(
            f"backward returned a {type(value).__name__}; expected a tuple ({expected}), "
            f"{whom}\n{case.describe()}",
            function="backward",
            case=case,
        )
    if len(items) != len(layer.wrt):
        raise UserOutputError(
            f"backward returned {len(items)} gradient{'s' * (len(items) != 1)}; expected "
            f"{len(layer.wrt)} ({expected}), {whom}\n{case.describe()}",
            function="backward",
            case=case,
        )
    result = []
    for position, (k, item) in enumerate(zip(layer.wrt, items, strict=True)):
        name, argument = layer.argument_names[k], case.arguments[k]
        what = f"the gradient of {name} (output {position})"
        gradient = _as_array(item, "backward", what, case)
        if gradient.shape != argument.shape:
            raise UserOutputError(
                f"backward returned {what} with shape {gradient.shape}, but {name} has shape "
                f"{argument.shape}\n{case.describe()}",
                function="backward",
                case=case,
            )
        if gradient.dtype != argument.dtype:
            raise UserOutputError(
                f"backward returned {what} in {gradient.dtype}, but {name} is "
                f"{argument.dtype}: return each gradient in its argument's dtype\n"
                f"{case.describe()}",
                function="backward",
                case=case,
            )
        result.append(gradient)
    return result


# ---- error bounds ----------------------------------------------------------------------------

#: Events after which a running bound is incomplete. (A tie in a max is not one: the rule
#: of max bounds the value at a tie too; whether the function is differentiable there is
#: for the one-sided differences to say.)
_LOSSY = ("untracked",)


def _higher(dtype: np.dtype[Any]) -> type[np.floating[Any]] | None:
    """A dtype with a smaller unit roundoff: float64 for float32; long double for
    float64 where it is wider (x86's 80-bit extended), else None."""
    if dtype == np.float32:
        return np.float64
    if float(np.finfo(np.longdouble).eps) < float(np.finfo(np.float64).eps):
        return np.longdouble
    return None


def measured_rounding(
    function: Callable[..., Any], arguments: Sequence[np.ndarray], values: Sequence[np.ndarray]
) -> list[np.ndarray] | None:
    """|v - v_hi| / (1 - u_hi / u), the rounding of values v = function(*arguments)
    measured by running the function in a higher precision: under the fallback's
    assumption (the same operations, so errors scale with u) the error e of v satisfies
    e <= |v - v_hi| + (u_hi / u) e. None when there is no higher precision or the
    function does not compute in it."""
    dtype = np.result_type(*arguments)
    higher = _higher(np.dtype(dtype))
    if higher is None:
        return None
    copies = [np.asarray(a).astype(higher) for a in arguments]
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = function(*copies)
    except Exception:
        return None
    items = result if isinstance(result, tuple | list) else (result,)
    if len(items) != len(values) or not all(
        isinstance(r, np.ndarray) and r.dtype == higher and r.shape == v.shape
        for r, v in zip(items, values, strict=True)
    ):
        return None
    ratio = float(np.finfo(higher).eps) / float(np.finfo(dtype).eps)
    return [
        (np.abs(v.astype(higher) - r) / (1.0 - ratio)).astype(np.float64)
        for v, r in zip(values, items, strict=True)
    ]


def _tracked_run(
    function: Callable[..., Any], arguments: Sequence[np.ndarray]
) -> tuple[Any, set[str], str | None]:
    """function on Tracked copies of the arguments, quietly: (result, lossy event kinds,
    the failure's description or None)."""
    tracked = [track(np.array(a, copy=True)) for a in arguments]
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings(), recording() as events:
            warnings.simplefilter("ignore")
            result = function(*tracked)
    except Exception as error:
        return None, set(), _brief(error)
    return result, {event.kind for event in events if event.kind in _LOSSY}, None


def _brief(error: BaseException, limit: int = 160) -> str:
    """The first line of an exception, cut to `limit` characters."""
    text = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _running_bounds(
    results: Sequence[Any], plain: Sequence[np.ndarray], lossy: set[str]
) -> tuple[list[np.ndarray] | None, str]:
    """Bounds for the plain values from a Tracked run: e_T + |v_T - plain|, provided
    the run stayed tracked and agrees with the plain one within 2 e_T."""
    if lossy:
        return None, f"it met {' and '.join(sorted(lossy))} events"
    if len(results) != len(plain) or not all(
        isinstance(r, Tracked) and r.shape == p.shape for r, p in zip(results, plain, strict=True)
    ):
        return None, "it returned plain arrays for Tracked inputs"
    bounds = []
    for r, p in zip(results, plain, strict=True):
        difference = np.abs(np.asarray(r.value, np.float64) - np.asarray(p, np.float64))
        if np.any(difference > 2.0 * r.error):
            return None, "its Tracked run computed other values than the plain one"
        bounds.append(np.asarray(r.error, dtype=np.float64) + difference)
    return bounds, "running bound (Tracked)"


def hand_written_bounds(
    layer: UserLayer, case: UserCase, plain: Sequence[np.ndarray]
) -> tuple[list[np.ndarray] | None, str]:
    """The running bound of the user's backward, or None and why it is not available."""
    result, lossy, failure = _tracked_run(layer.backward, (case.dout, *case.arguments))
    if failure is not None:
        return None, f"fallback model: the backward does not run on Tracked arrays ({failure})"
    items = result if isinstance(result, tuple | list) else (result,)
    bounds, model = _running_bounds(items, plain, lossy)
    return bounds, model if bounds is not None else f"fallback model: the backward {model}"


def forward_bound(
    layer: UserLayer, arguments: Sequence[np.ndarray], outputs: np.ndarray, count: int
) -> tuple[np.ndarray, str]:
    """The float64 forward's rounding bound per output: its running bound, or the fallback
    γ_m(float64) |f| with m = count (the number of inputs and outputs)."""
    result, lossy, failure = _tracked_run(layer.forward, arguments)
    if failure is None:
        bounds, model = _running_bounds([result], [outputs], lossy)
        if bounds is not None:
            return bounds[0], model
        failure = model
    error = gamma(count, np.float64) * np.abs(outputs)
    measured = measured_rounding(layer.forward, arguments, [outputs])
    if measured is not None:
        error = error + measured[0]
    return error, f"fallback model: the forward ({failure})"


# ---- comparisons -----------------------------------------------------------------------------


def compare(
    oracle: str,
    target: str,
    method: str,
    hand_written: np.ndarray,
    reference: np.ndarray,
    bound: np.ndarray,
    axis_names: Sequence[str],
    seconds: float,
) -> tuple[Comparison, list[tuple[dict[str, int], float, float, float]]]:
    """One Comparison, and its worst entries: (entry, hand-written, reference, ratio)."""
    hand = np.asarray(hand_written, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    limit = np.broadcast_to(np.asarray(bound, dtype=np.float64), hand.shape)
    with np.errstate(all="ignore"):
        error = np.abs(hand - ref)
        ratio = np.where(limit > 0, error / limit, np.where(error == 0, 0.0, np.inf))
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    flat = ratio.reshape(-1)
    order = np.argsort(-flat, kind="stable")
    names = list(axis_names) if hand.ndim else []

    def entry(flat_index: int) -> dict[str, int]:
        index = np.unravel_index(flat_index, hand.shape) if hand.ndim else ()
        return {name: int(i) for name, i in zip(names, index, strict=True)}

    worst = int(order[0]) if flat.size else 0
    max_error = float(np.max(error)) if error.size else 0.0  # NaN when any entry is NaN
    scale = np.abs(ref[np.isfinite(ref)])
    largest = float(np.max(scale)) if scale.size else 0.0
    with np.errstate(all="ignore"):
        relative = max_error / largest if largest > 0 else (0.0 if max_error == 0 else np.inf)
    comparison = Comparison(
        oracle=oracle,
        target=target,
        method=method,
        max_abs_error=float(max_error),
        max_rel_error=float(relative),
        worst_ratio=float(flat[worst]) if flat.size else 0.0,
        worst_entry=entry(worst),
        worst_error=float(error.reshape(-1)[worst]) if flat.size else 0.0,
        worst_bound=float(limit.reshape(-1)[worst]) if flat.size else 0.0,
        hand_written=float(hand.reshape(-1)[worst]) if flat.size else 0.0,
        reference=float(ref.reshape(-1)[worst]) if flat.size else 0.0,
        seconds=seconds,
        unbounded_entries=int(np.isinf(limit).sum()),
    )
    shown = [
        (entry(int(i)), float(hand.reshape(-1)[i]), float(ref.reshape(-1)[i]), float(flat[i]))
        for i in order[:SHOWN_ENTRIES]
        if flat[i] > 1.0
    ]
    return comparison, shown


@dataclass
class _Findings:
    comparisons: list[Comparison] = field(default_factory=list)
    shown: dict[int, list[tuple[dict[str, int], float, float, float]]] = field(default_factory=dict)
    structure: dict[str, str] = field(default_factory=dict)
    compact_identity: dict[str, str] = field(default_factory=dict)

    def add(
        self, comparison: tuple[Comparison, list[tuple[dict[str, int], float, float, float]]]
    ) -> None:
        self.comparisons.append(comparison[0])
        if comparison[1]:
            self.shown[len(self.comparisons) - 1] = comparison[1]


# ---- the check -------------------------------------------------------------------------------


def check_example(layer: UserLayer, case: UserCase, options: Options, memo: Memo) -> UserResult:
    """Check one example; raises UserCodeError (and subclasses) for misbehaving user code,
    CoupledLayerError for a unit-Jacobian layer whose θ is not unit-partitioned."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    summary = UserCaseSummary(
        layer.name,
        layer.style,
        case.dtype.name,
        dict(case.sizes),
        tuple((name, _format_array(value)) for name, value in case.arrays()),
    )
    names = layer.argument_names

    # 1. the user's code, as the user runs it
    out = forward_output(
        call_user(layer.forward, case.arguments, "forward", names, case), layer, case
    )
    again = forward_output(
        call_user(layer.forward, case.arguments, "forward", names, case), layer, case
    )
    if not _same(out, again):
        raise NondeterministicError(
            "forward returned different outputs for the same inputs (largest difference "
            f"{float(np.nanmax(np.abs(out.astype(np.float64) - again))):.3g}); a gradient "
            "check needs a deterministic function: fix its random state or switch off "
            f"randomness (dropout) for the check\n{case.describe()}",
            function="forward",
            case=case,
        )
    if not np.all(np.isfinite(out)):
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(out))[0])
        raise NonFiniteOutputError(
            f"forward returned {out[index]} at output index {index} on finite inputs; if the "
            "layer is defined on a restricted domain, pass bounds= (one (low, high) pair or "
            f"None per argument of forward)\n{case.describe()}",
            function="forward",
            case=case,
        )
    backward_names = ("dout", *names)
    backward_arguments = (case.dout, *case.arguments)
    grads = gradients(
        call_user(layer.backward, backward_arguments, "backward", backward_names, case), layer, case
    )
    repeat = gradients(
        call_user(layer.backward, backward_arguments, "backward", backward_names, case), layer, case
    )
    for k, first, second in zip(layer.wrt, grads, repeat, strict=True):
        if not _same(first, second):
            raise NondeterministicError(
                f"backward returned different gradients of {names[k]} for the same inputs; "
                f"a gradient check needs a deterministic backward\n{case.describe()}",
                function="backward",
                case=case,
            )
    seconds["user code"] = time.perf_counter() - started

    # 2. how far the hand-written gradients may be from exact
    start = time.perf_counter()
    hand_bounds, hand_model = hand_written_bounds(layer, case, grads)
    arguments64 = tuple(a.astype(np.float64) for a in case.arguments)
    dout64 = case.dout.astype(np.float64)
    out64 = forward_output(
        call_user(layer.forward, arguments64, "forward", names, case), layer, case
    )
    if out.dtype == np.float64 and not _same(out, out64):  # a third call, same inputs
        raise NondeterministicError(
            "forward returned different outputs for the same inputs; a gradient check "
            f"needs a deterministic function\n{case.describe()}",
            function="forward",
            case=case,
        )
    if not np.all(np.isfinite(out64)):
        raise NonFiniteOutputError(
            f"forward is not finite in float64 on these inputs\n{case.describe()}",
            function="forward",
            case=case,
        )
    count = sum(a.size for a in case.arguments) + out.size + 1
    forward_error, forward_model = forward_bound(layer, arguments64, out64, count)
    seconds["error model"] = time.perf_counter() - start

    # 3. finite differences, and the kink test
    start = time.perf_counter()

    def evaluate(which: int, variant: np.ndarray) -> np.ndarray:
        full = list(arguments64)
        full[which] = variant
        try:
            value = layer.forward(*full)
        except Exception as error:
            raise UserCodeError(
                f"forward raised {type(error).__name__}: {error} at a point within the "
                f"finite-difference step of the case (argument {names[which]} moved by "
                f"at most 2h)\n{case.describe()}\n\n{_user_frames(error)}",
                function="forward",
                case=case,
            ) from error
        result = np.asarray(value, dtype=np.float64)
        if result.shape != out64.shape or not np.all(np.isfinite(result)):
            raise StencilError(names[which])
        return result

    for k in layer.wrt:
        reason = _outside_bounds(layer, arguments64[k], k)
        if reason is not None:
            return _non_differentiable(summary, reason, seconds, started)
    try:
        fd = {
            k: differences(evaluate, arguments64, k, dout64, out64, forward_error)
            for k in layer.wrt
        }
    except StencilError as where:
        return _non_differentiable(
            summary,
            f"the forward is not finite within the finite-difference step of {where}",
            seconds,
            started,
        )
    kinked = {k: d.kinked for k, d in fd.items() if d.kinked.any()}
    if kinked and options.kinks == "redraw":
        k, mask = next(iter(kinked.items()))
        return _non_differentiable(summary, _kink_text(layer, k, mask, fd[k]), seconds, started)
    seconds["finite-differences"] = time.perf_counter() - start

    # 4. autograd
    start = time.perf_counter()
    ad: AutogradReference | None = None
    skipped: dict[str, str] = {}
    if options.autograd is False:
        skipped["autograd"] = "switched off (autograd=False)"
    else:
        try:
            ad = autograd_reference(layer.forward, arguments64, layer.wrt, dout64, out64)
        except NotTraceableError as error:
            memo.autograd_skipped = f"forward is not traceable ({error})"
            if options.autograd:
                raise UsageError(
                    f"autograd=True, but autograd cannot differentiate the forward: {error}. "
                    "Write the forward with autograd.numpy, or pass autograd=None"
                ) from None
            skipped["autograd"] = memo.autograd_skipped
        if ad is not None and not all(np.all(np.isfinite(g)) for g in ad.gradients):
            skipped["autograd"] = "autograd's gradient is not finite at this point"
            ad = None
    if kinked:  # the subgradient check: autograd picks one side of the kink, as may the user
        if ad is not None:
            skipped["autograd"] = "at a kink: only the one-sided differences apply"
        ad = None
    seconds["autograd"] = time.perf_counter() - start

    # 5. the error model for both sides, then every comparison
    start = time.perf_counter()
    magnitude = [_magnitude(fd[k], dout64, g) for k, g in zip(layer.wrt, grads, strict=True)]
    dtype = case.dtype
    scale_down = unit_roundoff(np.float64) / unit_roundoff(dtype)
    hand_error: list[np.ndarray] = []
    ad_error: list[np.ndarray] = []
    # The hand-written code run in a higher precision shows its actual rounding, including
    # what no running bound sees: constants rounded to the working dtype in plain arrays
    # (np.where(x > 0, 1.0, 0.1).astype(np.float32)), while the references use the same
    # code's float64 constants.
    measured = measured_rounding(layer.backward, backward_arguments, grads)
    for i, m in enumerate(magnitude):
        if hand_bounds is not None:
            seen = measured[i] if measured is not None else 0.0
            hand_error.append(np.maximum(hand_bounds[i], seen))
        else:
            borrowed = ad.errors[i] / scale_down if ad is not None and ad.errors else 0.0
            seen = measured[i] if measured is not None else 0.0
            hand_error.append(borrowed + gamma(count, dtype) * m + seen)
        if ad is not None:
            if ad.errors is not None:
                ad_error.append(ad.errors[i])
            else:
                borrowed = hand_bounds[i] * scale_down if hand_bounds is not None else 0.0
                ad_error.append(borrowed + gamma(count, np.float64) * m)
    findings = _Findings()
    for i, (k, g) in enumerate(zip(layer.wrt, grads, strict=True)):
        axes = layer.signature.axis_names(k)
        name = names[k]
        if ad is not None:
            findings.add(
                compare(
                    "autograd",
                    name,
                    "reverse mode",
                    g,
                    ad.gradients[i],
                    hand_error[i] + ad_error[i],
                    axes,
                    0.0,
                )
            )
        findings.add(_differences_comparison(fd[k], k in kinked, g, hand_error[i], name, axes))
        if layer.unit_jacobian is not None and k == 1:
            findings.add(_dense(layer, case, name, axes))
        if k in layer.parameters and not kinked:  # central differences mean nothing at a kink
            _structure(layer, case, k, fd[k], g, hand_error[i], dout64, out64, findings)
    seconds["compare"] = time.perf_counter() - start
    seconds["total"] = time.perf_counter() - started

    ran = ["autograd"] if ad is not None else []
    ran.append("finite-differences")
    if any(c.oracle == "dense" for c in findings.comparisons):
        ran.append("dense")
    models = {"backward": hand_model, "forward": forward_model}
    if ad is not None:
        models["autograd"] = ad.reason
    verdict, message = _verdict(layer, findings, ran, skipped, models)
    return UserResult(
        verdict,
        message,
        summary,
        tuple(findings.comparisons),
        seconds,
        tuple(ran),
        skipped,
        models,
        findings.structure,
        findings.compact_identity,
    )


def _outside_bounds(layer: UserLayer, x: np.ndarray, k: int) -> str | None:
    bounds = layer.bounds[k]
    if bounds is None:
        return None
    from gradcheck.oracles import step_sizes

    low, high = bounds
    reach = 2.0 * step_sizes(x)
    if np.all(x - reach > low) and np.all(x + reach < high):
        return None
    return (
        f"{layer.argument_names[k]} lies within the finite-difference step of its bounds "
        f"({low}, {high})"
    )


def _non_differentiable(
    summary: UserCaseSummary, reason: str, seconds: dict[str, float], started: float
) -> UserResult:
    seconds["total"] = time.perf_counter() - started
    return UserResult(
        Verdict.NON_DIFFERENTIABLE, f"non-differentiable: {reason}; redrawn", summary, (), seconds
    )


def _kink_text(layer: UserLayer, k: int, mask: np.ndarray, fd: ArgumentDifferences) -> str:
    first = int(np.flatnonzero(mask.reshape(-1))[0])
    name = layer.argument_names[k]
    if fd.directions is not None:
        where = f"along random direction {first} in {name}"
    else:
        index = np.unravel_index(first, mask.shape)
        axes = layer.signature.axis_names(k)
        where = f"in {name} at " + ", ".join(
            f"{a} {int(i)}" for a, i in zip(axes, index, strict=True)
        )
    right, left = fd.right.reshape(-1)[first], fd.left.reshape(-1)[first]
    return (
        f"the one-sided differences of E disagree {where} (from the right {right:.6g}, from "
        f"the left {left:.6g}, central {fd.gradient.reshape(-1)[first]:.6g}): a kink within "
        "the finite-difference step"
    )


def _magnitude(fd: ArgumentDifferences, dout: np.ndarray, g: np.ndarray) -> np.ndarray:
    """M_k = Σ_o |δ_o| |∂f_o/∂x_k| (with the Jacobian's own error), the magnitude of the
    terms summed into gradient entry k; |g| where the Jacobian was not formed."""
    if fd.jacobian is None or fd.jacobian_error is None:
        return np.abs(g.astype(np.float64))
    terms = np.abs(fd.jacobian) + fd.jacobian_error  # (*out, entries)
    weights = np.abs(dout).reshape(-1)
    return (weights @ terms.reshape(weights.size, -1)).reshape(g.shape)


def _differences_comparison(
    fd: ArgumentDifferences,
    at_kink: bool,
    g: np.ndarray,
    hand_error: np.ndarray,
    name: str,
    axes: Sequence[str],
) -> tuple[Comparison, list[tuple[dict[str, int], float, float, float]]]:
    g64 = g.astype(np.float64)
    if fd.directions is not None:  # compared through ⟨g, w_q⟩ along each probe
        directions = fd.directions.reshape(len(fd.directions), -1)
        hand = directions @ g64.reshape(-1)
        errors = np.broadcast_to(np.asarray(hand_error, np.float64), g.shape).reshape(-1)
        hand_bound = np.abs(directions) @ errors
        entry_names: Sequence[str] = ("probe",)
    else:
        hand, hand_bound, entry_names = g64, np.broadcast_to(hand_error, g.shape), axes
    if at_kink:  # any subgradient: between the one-sided derivatives, within their slack
        low, high = np.minimum(fd.right, fd.left), np.maximum(fd.right, fd.left)
        slack = np.maximum(fd.right_slack, fd.left_slack)
        nearest = np.clip(hand, low, high)
        method = "one-sided differences (subgradient)"
        return compare(
            "finite-differences", name, method, hand, nearest, slack + hand_bound, entry_names, 0.0
        )
    return compare(
        "finite-differences",
        name,
        fd.method,
        hand,
        fd.gradient,
        hand_bound + fd.error,
        entry_names,
        0.0,
    )


def _dense(
    layer: UserLayer, case: UserCase, name: str, axes: Sequence[str]
) -> tuple[Comparison, list[tuple[dict[str, int], float, float, float]]]:
    """The seed's identity on the user's own B: A = δ ⊙ B against the block-diagonal
    product δ · blockdiag(B); the two differ only by the order of their sums."""
    assert layer.unit_jacobian is not None
    unit_jacobian = call_user(
        layer.unit_jacobian, case.arguments, "unit_jacobian", layer.argument_names, case
    )
    unit_jacobian = np.asarray(unit_jacobian)
    gradient = compact.compact_gradient(case.dout, unit_jacobian)
    product, method = compact.dense_gradient(case.dout, unit_jacobian)
    bound = summation_bound(case.dout, unit_jacobian)
    return compare(
        "dense", name, f"block-diagonal product ({method})", gradient, product, bound, axes, 0.0
    )


def _structure(
    layer: UserLayer,
    case: UserCase,
    k: int,
    fd: ArgumentDifferences,
    g: np.ndarray,
    hand_error: np.ndarray,
    dout: np.ndarray,
    outputs: np.ndarray,
    findings: _Findings,
) -> None:
    """Structure of parameter k and, where it is unit-partitioned, the compact identity:
    the hand-written gradient against δ ⊙ B with B the per-unit blocks of the
    finite-difference Jacobian."""
    name = layer.argument_names[k]
    if fd.jacobian is None or fd.jacobian_error is None:
        findings.structure[name] = "undetermined (too large for entry-by-entry differences)"
        return
    unit = layer.signature.unit_name
    if unit is None:
        findings.structure[name] = "undetermined (the output has no unit axis)"
        return
    candidates = [a for a, dim in enumerate(layer.signature.inputs[k]) if dim == unit]
    verdict, axis = structure(fd.jacobian, fd.jacobian_error, g.shape, candidates)
    if verdict == "shared" and layer.unit_jacobian is not None:
        raise CoupledLayerError(
            f"{layer.name}: output unit j depends on parameters of other units (θ is not "
            "unit-partitioned along its axis 0), so the compact form A = δ ⊙ B is not its "
            "gradient; check this layer with check_backward instead\n" + case.describe()
        )
    if verdict != "partitioned" or axis is None:
        findings.structure[name] = verdict
        return
    findings.structure[name] = f"partitioned along axis {axis}"
    units = outputs.shape[-1]
    owner = np.indices(g.shape)[axis].reshape(-1)  # the unit each entry belongs to
    jacobian = fd.jacobian.reshape(-1, units, owner.size)  # (rows, units, entries)
    jacobian_error = fd.jacobian_error.reshape(jacobian.shape)
    weights = dout.reshape(-1, units)  # δ per (row, unit)
    rows = np.arange(owner.size)
    blocks = jacobian[:, owner, rows]  # B: (rows, entries), entry e's own unit's output
    blocks_error = jacobian_error[:, owner, rows]
    own = weights[:, owner]
    compact_form = np.sum(own * blocks, axis=0).reshape(g.shape)
    error = np.sum(np.abs(own) * blocks_error, axis=0) + gamma(
        weights.shape[0], np.float64
    ) * np.sum(np.abs(own * blocks), axis=0)
    comparison = compare(
        "dense",
        name,
        "compact identity δ ⊙ B (B: per-unit blocks by finite differences)",
        g,
        compact_form,
        hand_error + error.reshape(g.shape),
        layer.signature.axis_names(k),
        0.0,
    )
    findings.add(comparison)
    findings.compact_identity[name] = "holds" if comparison[0].passed else "fails"


def _verdict(
    layer: UserLayer,
    findings: _Findings,
    ran: Sequence[str],
    skipped: Mapping[str, str],
    models: Mapping[str, str],
) -> tuple[Verdict, str]:
    oracles = ", ".join(ran)
    if skipped:
        oracles += " (" + "; ".join(f"{k} skipped: {v}" for k, v in skipped.items()) + ")"
    model = "; ".join(f"{side}: {text}" for side, text in models.items())
    failures = [i for i, c in enumerate(findings.comparisons) if not c.passed]
    if not failures:
        closest = max(findings.comparisons, key=lambda c: c.worst_ratio, default=None)
        detail = ""
        if closest is not None:
            detail = (
                f" (closest: {closest.oracle} on ∂E/∂{closest.target} at "
                f"{closest.worst_ratio:.2g} of its bound)"
            )
        return Verdict.PASS, (
            f"pass: {len(findings.comparisons)} comparisons agree{detail}\n"
            f"oracles: {oracles}\nerror model: {model}"
        )
    order = {name: position for position, name in enumerate(layer.argument_names)}
    failures.sort(
        key=lambda i: (
            order.get(findings.comparisons[i].target, 0),
            -findings.comparisons[i].worst_ratio,
        )
    )
    first = findings.comparisons[failures[0]]
    where = ", ".join(f"{a} {i}" for a, i in first.worst_entry.items()) or "the scalar"
    position = order.get(first.target, 0)
    lines = [
        f"mismatch: the gradient of {first.target} (argument {position} of forward) disagrees "
        f"with {first.oracle} ({first.method}) at {where}: hand-written "
        f"{first.hand_written:.9g}, reference {first.reference:.9g}, error "
        f"{first.worst_error:.3g} exceeds the bound {first.worst_bound:.3g} "
        f"({first.worst_ratio:.3g}x)",
    ]
    wrong = sorted(
        {findings.comparisons[i].target for i in failures}, key=lambda t: order.get(t, 0)
    )
    lines.append(f"wrong gradients: {', '.join(wrong)}; oracles: {oracles}")
    lines.append(f"error model: {model}")
    for i in failures:
        comparison = findings.comparisons[i]
        entries = findings.shown.get(i, [])
        if not entries:
            continue
        lines.append(f"worst entries of ∂E/∂{comparison.target} against {comparison.oracle}:")
        for entry, hand, reference, ratio in entries:
            at = ", ".join(f"{a} {v}" for a, v in entry.items()) or "scalar"
            lines.append(
                f"  at {at}: hand-written {hand:.9g}, reference {reference:.9g}, "
                f"error/bound {ratio:.3g}"
            )
    return Verdict.MISMATCH, "\n".join(lines)
