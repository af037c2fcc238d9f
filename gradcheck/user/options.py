"""Validating the options of check_backward and friends: each wrong argument raises a
UsageError that names it and says what it accepts, before any user code runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from gradcheck.errors import UsageError
from gradcheck.user.expressions import parse_constraint
from gradcheck.user.signature import Requirement, Signature, parse_signature
from gradcheck.user.types import Options

_KINKS = ("redraw", "subgradient")


def signature_of(signature: Any) -> Signature:
    return signature if isinstance(signature, Signature) else parse_signature(signature)


def differentiated(
    wrt: Sequence[int | str] | None,
    names: tuple[str, ...],
    signature: Signature | None = None,
) -> tuple[int, ...]:
    """The positions of the differentiated arguments: those wrt names (by name or
    position), by default every float argument; int and bool arguments never are."""
    floats = tuple(range(len(names))) if signature is None else signature.float_inputs
    if wrt is None:
        if not floats:
            raise UsageError(
                f"the signature {signature} has no float argument: nothing to differentiate"
            )
        return floats
    if isinstance(wrt, str | int):
        wrt = [wrt]
    if not isinstance(wrt, Sequence):
        raise UsageError(f"wrt takes argument names or positions, got {wrt!r}")
    chosen: list[int] = []
    for item in wrt:
        if isinstance(item, str):
            if item not in names:
                raise UsageError(f"wrt names {item!r}, which is not an argument: {list(names)}")
            index = names.index(item)
        elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(names):
            index = item
        else:
            raise UsageError(
                f"wrt takes argument names {list(names)} or positions 0..{len(names) - 1}, "
                f"got {item!r}"
            )
        if index in chosen:
            raise UsageError(f"wrt names argument {names[index]!r} twice")
        if index not in floats:
            assert signature is not None
            raise UsageError(
                f"wrt names {names[index]!r}, which the signature {signature} declares "
                f"{signature.types[index]}: only float arguments are differentiated (int and "
                "bool arguments are drawn in their range and passed as they are)"
            )
        chosen.append(index)
    if not chosen:
        raise UsageError("wrt must name at least one argument to differentiate")
    return tuple(sorted(chosen))  # backward returns them in the forward's order


def constraints_of(constraints: Any, signature: Signature) -> tuple[Requirement, ...]:
    """The user's constraints on the sizes ("h >= p", "h % 2 == 0", "1 <= p <= h"), each
    naming only sizes of the signature."""
    if constraints is None:
        return ()
    if isinstance(constraints, str):
        constraints = (constraints,)
    if not isinstance(constraints, Sequence):
        raise UsageError(
            f"constraints takes a sequence of strings such as ('h >= p', 'h % 2 == 0'), got "
            f"{constraints!r}"
        )
    found: list[Requirement] = []
    for text in constraints:
        where = f"the constraint {text!r}"
        for comparison in parse_constraint(text, where):
            unknown = [n for n in comparison.names if n not in signature.names]
            if unknown:
                raise UsageError(
                    f"{where} names {unknown[0]!r}, which the signature {signature} does not "
                    f"(its sizes: {', '.join(signature.names) or 'none'})"
                )
            found.append(Requirement(comparison, where, "constraint"))
    return tuple(found)


def bounds_of(
    bounds: Sequence[tuple[float, float] | None] | None,
    names: tuple[str, ...],
    signature: Signature | None = None,
) -> tuple[tuple[float, float] | None, ...]:
    if bounds is None:
        return (None,) * len(names)
    if isinstance(bounds, str) or not isinstance(bounds, Sequence) or len(bounds) != len(names):
        raise UsageError(
            f"bounds takes one (low, high) pair or None per argument of forward "
            f"({len(names)}: {', '.join(names)}), got {bounds!r}"
        )
    result: list[tuple[float, float] | None] = []
    for k, (name, pair) in enumerate(zip(names, bounds, strict=True)):
        if pair is None:
            result.append(None)
            continue
        if signature is not None and not signature.types[k].is_float:
            raise UsageError(
                f"bounds for {name} must be None: it is {signature.types[k]}, whose range the "
                f"signature {signature} gives"
            )
        try:
            low, high = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise UsageError(
                f"bounds for {name} must be (low, high) or None, got {pair!r}"
            ) from None
        if math.isnan(low) or math.isnan(high) or not low < high:
            raise UsageError(f"bounds for {name} must have low < high, got ({low}, {high})")
        result.append((low, high))
    return tuple(result)


def name_of(name: Any, default: str) -> str:
    if name is None:
        return default
    if not isinstance(name, str) or not name:
        raise UsageError(f"name must be a non-empty string, got {name!r}")
    return name


def options_of(
    kinks: str, autograd: bool | None, timeout: float | None, allow_aliases: bool
) -> Options:
    if not isinstance(kinks, str) or kinks not in _KINKS:
        raise UsageError(f"kinks must be 'redraw' or 'subgradient', got {kinks!r}")
    if not (autograd is None or isinstance(autograd, bool)):
        raise UsageError(f"autograd must be None (detect), True or False, got {autograd!r}")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
    ):
        raise UsageError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if not isinstance(allow_aliases, bool):
        raise UsageError(f"allow_aliases must be True or False, got {allow_aliases!r}")
    return Options(kinks=kinks, autograd=autograd, timeout=timeout, allow_aliases=allow_aliases)


def require_callable(value: Any, what: str) -> None:
    if not callable(value):
        raise UsageError(f"{what} must be callable, got {value!r}")
