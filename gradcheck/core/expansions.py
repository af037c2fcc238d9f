"""Error bounds kept as sums of products of small arrays, and their contractions.

An outer product x · y ((N, J, 1) * (N, 1, P)) is much larger than its operands, and so is
the running bound of its rounding, |x| (e_y + u'|y|) + e_x (|y| + e_y) + η. `Tracked` keeps
such a bound as an `Expansion`, Σ_t Π_i factor_ti + constant, with every factor the size of
an operand, and forms the array only when something reads it. A contraction
(A = Σ_n δ_n ⊙ B_n) of an expansion is, by multilinearity, a sum of contractions of its
factors, which numpy turns into matrix products: the bound of A never passes through an
array of B's size. `Bounds` pairs an expansion for |value| with one for the error.

Every factor is >= 0. This module is free of I/O, hypothesis and pytest, and knows
nothing of `Tracked` (`gradcheck.core.tolerance` builds on it).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.floating[Any]]


def spare_letters(count: int, exclude: str = "") -> list[str]:
    """count einsum subscript letters, none of them in exclude."""
    pool = [c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in exclude]
    return pool[:count]


def distinct(a: Any) -> np.ndarray:
    """a without its broadcast axes: one index along each axis of stride 0, kept as an
    axis of length 1, so that the result holds each stored entry once and still
    broadcasts to a's shape. `Tracked` stores an error given as a scalar (an exact
    input, a constant radius) as such a view: rules then work on one number rather than
    on a result-sized array of copies."""
    a = np.asarray(a)
    if all(a.strides):
        return a
    return a[tuple(slice(0, 1) if stride == 0 else slice(None) for stride in a.strides)]


def is_zero(error: Any) -> bool:
    """Whether an error is exactly 0 everywhere (an exact operand), looking at each stored
    entry once, and at the first entry alone where that is not 0: a computed error is
    nonzero in every entry (each rounding adds at least η), so it settles most cases."""
    stored = distinct(error)
    return not (stored.size and (stored.item(0) != 0 or stored.any()))


def aligned(a: Any, ndim: int) -> np.ndarray:
    """a with leading axes of length 1 up to ndim, as broadcasting would give it."""
    a = np.asarray(a)
    return a if a.ndim == ndim else a.reshape((1,) * (ndim - a.ndim) + a.shape)


def times(magnitude: Any, error: Any) -> Any:
    """magnitude · error, where an exact quantity (error 0) contributes nothing even when
    the other factor overflowed: 0 · inf is 0 here, not NaN."""
    magnitude = np.asarray(magnitude, dtype=np.float64)
    error = np.asarray(error, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        product = magnitude * error
        # Both factors are >= 0, so only 0 · inf or a NaN factor makes a NaN. When both
        # factors are finite (their sums are) there is none; otherwise the sum of the
        # product is NaN exactly when one of its entries is. Whichever is the smaller pass
        # goes first: the factors of a broadcast product are much smaller than it.
        if magnitude.size + error.size <= product.size and np.isfinite(
            np.add.reduce(magnitude, axis=None) + np.add.reduce(error, axis=None)
        ):
            return product
        if not np.isnan(np.add.reduce(product, axis=None)):
            return product
    return np.where((error == 0) | (magnitude == 0), 0.0, product)


def plus(total: Any, term: Any) -> Any:
    """total + term, in place when total is a writeable array of the sum's shape that the
    caller owns (a fresh intermediate): a result-sized sum then allocates nothing."""
    shape = np.shape(term)
    if (
        isinstance(total, np.ndarray)
        and total.flags.writeable
        and (shape in ((), total.shape) or total.shape == np.broadcast_shapes(total.shape, shape))
    ):
        total += term
        return total
    return total + term


@dataclass(frozen=True, eq=False)
class Expansion:
    """Σ_t Π_i terms[t][i] + constant: a bound kept as products of arrays that broadcast
    to the bounded array's shape (each with its number of axes) without being as large
    as it. Every factor is >= 0; `Bounds` keeps only finite ones."""

    terms: tuple[tuple[FloatArray, ...], ...]
    constant: float = 0.0

    def evaluate(self) -> Any:
        """The bound as one array (0 · inf counting as 0, as in `times`), at the shape
        the factors broadcast to."""
        total: Any = None
        with np.errstate(over="ignore"):
            for factors in self.terms:
                product: Any = factors[0]
                for factor in factors[1:]:
                    product = times(product, factor)  # a new array, which the sum may reuse
                if total is None:
                    total = product if len(factors) > 1 else np.array(product, dtype=np.float64)
                else:
                    total = plus(total, product)
            if total is None or self.constant:
                total = plus(total if total is not None else 0.0, self.constant)
        return total


@dataclass(frozen=True, eq=False)
class Bounds:
    """|value| <= magnitude and error <= error, entry by entry, as expansions: how a rule
    whose result is larger than its operands (an outer product) hands over its bounds
    without forming result-sized arrays. A contraction uses the factors directly; reading
    `Tracked.error` evaluates them."""

    magnitude: Expansion
    error: Expansion


def explicit_subscripts(subscripts: str, ndims: list[int]) -> tuple[list[str], str]:
    """An einsum's input and output subscripts with every '...' spelled out in letters of
    its own (numpy aligns the axes an ellipsis covers from the right, across operands)."""
    inputs, output = subscripts.replace(" ", "").split("->")
    operands = inputs.split(",")
    spare = spare_letters(52, exclude=subscripts)
    width = max(
        (ndim - len(s) + 3 for s, ndim in zip(operands, ndims, strict=True) if "..." in s),
        default=0,
    )
    broadcast = "".join(spare[:width])

    def spelled(letters: str, count: int) -> str:
        return letters.replace("...", broadcast[width - count :] if count else "")

    explicit = [spelled(s, ndim - len(s) + 3) for s, ndim in zip(operands, ndims, strict=True)]
    return explicit, spelled(output, width)


#: Iteration spaces above which a contraction of two or more factors lets numpy choose its
#: order (and BLAS), which turns outer-product factors into matrix products; below, the
#: choice costs more than it saves.
OPTIMIZE_ABOVE = 1 << 14


def contract(
    inputs: list[str],
    output: str,
    sizes: dict[str, int],
    expansions: list[Expansion],
    offset: float = 0.0,
) -> Any:
    """offset + the contraction of nonnegative expansions, one per operand.

    By multilinearity, one einsum per choice of a term (or the constant) from each. A
    factor's axes of length 1 are left out of its einsum (it is constant along them): a
    letter no factor keeps is broadcast in the result where the output has it, and counts
    its length where summed. Factors with the same letters are multiplied first (an outer
    product's magnitude and a matching operand's), so that numpy meets a matrix product.
    Parts that are constant along an output axis are summed before they meet the others.
    """
    shape = tuple(sizes[letter] for letter in output)
    choices = [
        [(1.0, factors) for factors in e.terms] + ([(e.constant, ())] if e.constant else [])
        for e in expansions
    ]
    full: Any = None  # parts with every output axis: new arrays, added into in place
    broadcast: Any = offset
    for combination in itertools.product(*choices):
        weight = math.prod(w for w, _ in combination)
        grouped: dict[str, np.ndarray] = {}
        for operand, (_, factors) in zip(inputs, combination, strict=True):
            for factor in factors:
                factor = aligned(factor, len(operand))
                kept = [axis for axis, length in enumerate(factor.shape) if length != 1]
                letters = "".join(operand[axis] for axis in kept)
                factor = factor.reshape([factor.shape[axis] for axis in kept])
                if not letters:
                    weight *= float(factor)
                elif letters in grouped:
                    grouped[letters] = grouped[letters] * factor
                else:
                    grouped[letters] = factor
        present = set("".join(grouped))
        weight *= math.prod(n for letter, n in sizes.items() if letter not in present | set(output))
        part: Any = np.float64(1.0)
        if grouped:
            space = math.prod(sizes[letter] for letter in present)
            arrays = list(grouped.values())
            part = np.einsum(
                ",".join(grouped) + "->" + "".join(x for x in output if x in present),
                *arrays,
                optimize=len(arrays) > 1 and space > OPTIMIZE_ABOVE,
            )
            if len(arrays) == 1 or any(np.may_share_memory(part, a) for a in arrays):
                part = np.array(part)  # a view of a factor (einsum of one operand)
        if weight != 1.0:
            part *= weight
        part = np.reshape(part, [sizes[x] if x in present else 1 for x in output])
        if part.shape == shape:
            full = part if full is None else plus(full, part)
        else:
            broadcast = broadcast + part
    return broadcast if full is None else plus(full, broadcast)


def fold(magnitude: Expansion, error: Expansion | None, scale: float, *, reuse: bool) -> Expansion:
    """γ M + E as one expansion with as few terms as its factors allow: one-factor terms
    summed into one array (γ|x| + e for a plain operand), terms with the same first factor
    merged by summing the rest (an outer product's bounds become |x| ((γ(1 + 2u) + u')|y|
    + e_y) + e_x (|y| + e_y) + (γ + 1)η). reuse: M's array belongs to this contraction
    and may be scaled in place."""
    single: Any = None
    grouped: dict[int, tuple[FloatArray, Any]] = {}
    for weight, expansion in ((scale, magnitude), (1.0, error)):
        for head, *rest in expansion.terms if expansion is not None else ():
            if rest:
                tail = functools.reduce(np.multiply, rest, np.float64(weight))
                if id(head) in grouped:
                    tail = grouped[id(head)][1] + tail
                grouped[id(head)] = (head, tail)
            elif single is None:
                single = head if reuse and expansion is magnitude else np.array(head)
                single *= weight
            else:
                single = plus(single, weight * head if weight != 1.0 else head)
    terms: list[tuple[FloatArray, ...]] = [(single,)] if single is not None else []
    terms += [(head, tail) for head, tail in grouped.values()]
    constant = scale * magnitude.constant + (error.constant if error is not None else 0.0)
    return Expansion(tuple(terms), constant)
