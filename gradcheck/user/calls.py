"""Running a user's code: safely and checked.

`run_user_code` calls the forward and the backward as the user would, on copies, and
refuses what a gradient check cannot use: exceptions (reported with the user's traceback
and the case), inputs changed in place, results that differ between two calls, outputs
of the wrong shape, number or dtype, a forward that is not finite. A forward with
several outputs returns a tuple of them; its backward takes one dout per output, before
the forward's arguments, and everything downstream sees the outputs joined
(`gradcheck.user.outputs`). The bounds on the code's rounding are in
`gradcheck.user.bounds`.

This module is free of hypothesis and pytest.
"""

from __future__ import annotations

import pathlib
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from gradcheck.core.tolerance import Tracked
from gradcheck.errors import (
    AliasedOutputError,
    GradcheckError,
    InputMutationError,
    NondeterministicError,
    NonFiniteOutputError,
    UserCodeError,
    UserOutputError,
)
from gradcheck.user.outputs import layout_of
from gradcheck.user.types import UserCase, UserLayer

# ---- running user code -----------------------------------------------------------------------


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit for bit (NaN equal to the same NaN), read through unsigned-integer views of the
    items instead of copies of the bytes (arguments of large layers are checked too)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    if a.dtype.hasobject or a.dtype.itemsize not in (1, 2, 4, 8):
        return a.tobytes() == b.tobytes()
    bits = np.dtype(f"u{a.dtype.itemsize}")
    return bool(np.array_equal(a.view(bits), b.view(bits)))


def user_frames(error: BaseException) -> str:
    """The traceback of an exception from user code, without gradcheck's own frame."""
    tb = error.__traceback__.tb_next if error.__traceback__ is not None else None
    return "".join(traceback.format_exception(type(error), error, tb)).rstrip()


_PACKAGE = pathlib.Path(__file__).resolve().parent.parent


def _raised_by_gradcheck(error: BaseException) -> bool:
    """Whether the innermost frame of the error's traceback is gradcheck's own code."""
    tb = error.__traceback__
    if tb is None:
        return True
    while tb.tb_next is not None:
        tb = tb.tb_next
    return pathlib.Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE)


def call_user(
    function: Callable[..., Any],
    arguments: Sequence[np.ndarray],
    role: str,
    names: Sequence[str],
    case: UserCase,
    *,
    aliases: list[AliasedOutputError] | None = None,
) -> Any:
    """function(*copies of arguments), with what it raises reported as UserCodeError
    (with the user's traceback and the case), and its inputs compared bit for bit
    before and after: a function that changes them raises InputMutationError. With a
    list `aliases`, a returned array (the result, or an item of a returned tuple) that
    shares memory with an argument adds an AliasedOutputError to it, for the caller to
    raise once it knows whether the gradient is right (a wrong one is the bigger news)."""
    copies = [np.array(a, copy=True) for a in arguments]
    try:
        result = function(*copies)
    except UserCodeError as error:  # raised by an adapter about what user code returned
        if error.case is not None:
            raise
        raise type(error)(
            f"{error}\n{case.describe()}", function=error.function or role, case=case
        ) from None
    except Exception as error:
        # An adapter's own complaint is already worded; user code that raises one of
        # gradcheck's exceptions is still user code failing.
        if isinstance(error, GradcheckError) and _raised_by_gradcheck(error):
            raise
        raise UserCodeError(
            f"{role} raised {type(error).__name__}: {error}\n{case.describe()}\n\n"
            f"{user_frames(error)}",
            function=role,
            case=case,
        ) from error
    for name, before, after in zip(names, arguments, copies, strict=True):
        if not same(np.asarray(before), after):
            changed = np.flatnonzero(np.asarray(before).reshape(-1) != after.reshape(-1))
            where = f" (first changed entry: flat index {changed[0]})" if changed.size else ""
            raise InputMutationError(
                f"{role} changed its argument {name} in place{where}. gradcheck calls it many "
                "times on the same arrays, and callers of a layer expect their arrays "
                f"untouched: work on a copy (e.g. {name} = {name}.copy()).\n{case.describe()}",
                function=role,
                case=case,
            )
    if aliases is not None:
        aliases.extend(_aliasing(result, copies, role, names, case))
    return result


def _aliasing(
    result: Any, copies: Sequence[np.ndarray], role: str, names: Sequence[str], case: UserCase
) -> Iterator[AliasedOutputError]:
    items = result if isinstance(result, tuple | list) else (result,)
    for position, item in enumerate(items):
        for name, argument in zip(names, copies, strict=True):
            if isinstance(item, np.ndarray) and np.may_share_memory(item, argument):
                what = "its output" if len(items) == 1 else f"item {position} of its result"
                yield AliasedOutputError(
                    f"{role} returned {what} sharing memory with its argument {name} (the "
                    "array itself or a view of it). A caller that updates one in place "
                    "(W -= lr * dW, dx += ...) silently changes the other: return a copy "
                    f"(e.g. {name}.copy()), or pass allow_aliases=True if the view is "
                    f"intended\n{case.describe()}",
                    function=role,
                    case=case,
                )


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
    """The forward's output, checked against the signature's output shapes; with several
    outputs (a tuple of arrays), their join."""
    expected = layer.signature.output_shapes(case.sizes)
    if len(expected) == 1:
        items, names = [value], ["its output"]
    elif not isinstance(value, tuple | list) or len(value) != len(expected):
        got = (
            f"a {type(value).__name__} of length {len(value)}"
            if isinstance(value, tuple | list)
            else f"a {type(value).__name__}"
        )
        raise UserOutputError(
            f"forward returned {got}; the signature {layer.signature} declares "
            f"{len(expected)} outputs: return them as a tuple\n{case.describe()}",
            function="forward",
            case=case,
        )
    else:
        items, names = list(value), [f"output {k}" for k in range(len(expected))]
    outputs = []
    for item, name, shape in zip(items, names, expected, strict=True):
        out = _as_array(item, "forward", name, case)
        if out.shape != shape:
            what = "an array" if len(expected) == 1 else f"{name} as an array"
            promise = shape if len(expected) == 1 else f"{shape} for {name}"
            raise UserOutputError(
                f"forward returned {what} of shape {out.shape}; the signature "
                f"{layer.signature} promises {promise} for these sizes\n{case.describe()}",
                function="forward",
                case=case,
            )
        outputs.append(out)
    if len(outputs) > 1 and len({o.dtype for o in outputs}) > 1:
        raise UserOutputError(
            f"forward returned outputs of dtypes {[o.dtype.name for o in outputs]}; return "
            f"every output in one dtype\n{case.describe()}",
            function="forward",
            case=case,
        )
    return np.asarray(layout_of(layer.signature, case.sizes).join(outputs))


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
    fixed = [
        f"{layer.argument_names[k]} ({kind})"
        for k, kind in enumerate(layer.signature.types)
        if not kind.is_float
    ]
    if fixed:
        whom += f"; {', '.join(fixed)} get{'s' * (len(fixed) == 1)} none"
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


# ---- the user's code, as the user runs it ---------------------------------------------------


def run_user_code(
    layer: UserLayer, case: UserCase
) -> tuple[np.ndarray, list[np.ndarray], list[AliasedOutputError]]:
    """The forward's output and the backward's gradients in the case's dtype, each
    computed twice and required to agree bit for bit (the output must be finite), and
    the AliasedOutputError of each of them that shares memory with an argument."""
    names = layer.argument_names
    aliases: list[AliasedOutputError] = []
    out = forward_output(
        call_user(layer.forward, case.arguments, "forward", names, case, aliases=aliases),
        layer,
        case,
    )
    _require_the_same_forward(layer, case, out, calls=1)
    if not np.all(np.isfinite(out)):
        layout = layout_of(layer.signature, case.sizes)
        output, index = layout.locate(int(np.flatnonzero(~np.isfinite(out))[0]))
        value = layout.split(out)[output][index]
        where = "" if layout.single else f"output {output}, "
        raise NonFiniteOutputError(
            f"forward returned {value} at {where}output index {index} on finite inputs; if the "
            "layer is defined on a restricted domain, pass bounds= (one (low, high) pair or "
            f"None per argument of forward)\n{case.describe()}",
            function="forward",
            case=case,
        )
    arguments = (*case.output_douts, *case.arguments)
    backward_names = (*case.dout_names, *names)
    grads = gradients(
        call_user(layer.backward, arguments, "backward", backward_names, case, aliases=aliases),
        layer,
        case,
    )
    repeat = gradients(
        call_user(layer.backward, arguments, "backward", backward_names, case), layer, case
    )
    for k, first, second in zip(layer.wrt, grads, repeat, strict=True):
        if not same(first, second):
            raise NondeterministicError(
                f"backward returned different gradients of {names[k]} for the same inputs; "
                f"a gradient check needs a deterministic backward\n{case.describe()}",
                function="backward",
                case=case,
            )
    return out, grads, aliases


#: More calls of the forward that must agree bit for bit before a mismatch is reported.
#: A forward that draws a fresh random mask per call (dropout) gives the same output on
#: one entry with probability 1/2, so the three calls of every example let one such case
#: in four through; these leave one in 2^16.
CONFIRMING_CALLS = 16


def confirm_deterministic(layer: UserLayer, case: UserCase) -> None:
    """Raise NondeterministicError unless CONFIRMING_CALLS more calls of the forward on the
    case's arguments give its output bit for bit: what looks like a wrong gradient may be
    a forward that changes from call to call."""
    names = layer.argument_names
    out = forward_output(
        call_user(layer.forward, case.arguments, "forward", names, case), layer, case
    )
    _require_the_same_forward(layer, case, out, calls=CONFIRMING_CALLS)


def _require_the_same_forward(
    layer: UserLayer, case: UserCase, out: np.ndarray, *, calls: int
) -> None:
    names = layer.argument_names
    for _ in range(calls):
        again = forward_output(
            call_user(layer.forward, case.arguments, "forward", names, case), layer, case
        )
        if not same(out, again):
            difference = float(np.nanmax(np.abs(out.astype(np.float64) - again)))
            raise NondeterministicError(
                f"forward returned different outputs for the same inputs (largest difference "
                f"{difference:.3g}); a gradient check needs a deterministic function: fix its "
                "random state or switch off randomness (dropout) for the check\n"
                f"{case.describe()}",
                function="forward",
                case=case,
            )


def reference_forward(
    layer: UserLayer, case: UserCase, out: np.ndarray
) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """The case's arguments and dout in float64, and the forward's float64 output (the
    point every reference is computed at). For a float64 case this is a third call on
    the same inputs, which must agree with the first two."""
    arguments64 = tuple(a.astype(np.float64) if a.dtype.kind == "f" else a for a in case.arguments)
    out64 = forward_output(
        call_user(layer.forward, arguments64, "forward", layer.argument_names, case), layer, case
    )
    if case.dtype == np.float64 and not same(out, out64):
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
    return arguments64, case.dout.astype(np.float64), out64
