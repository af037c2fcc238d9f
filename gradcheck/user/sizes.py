"""The sizes a case may have, and drawing them so that every constraint holds by
construction.

The named sizes of a signature are drawn from their ranges (min_size..max_size, or
`sizes=`) subject to requirements: the user's constraints (``"h >= p"``), and those the
signature implies (a computed size such as ``h-p+1`` is ≥ 1, a divisor is not 0, an int
range is not empty). Nothing is filtered: the feasible assignments are enumerated once
per check, and a case picks each name's value, in the signature's order, among the
values that can still be extended to a feasible assignment, one byte per name, byte 0
the smallest (`gradcheck.core.values.pick_choice`). So hypothesis never rejects a draw
for its sizes, and a shrinker that drives the bytes to 0 ends at the smallest sizes the
requirements allow (smallest first in the signature's order).

Names that share no requirement are independent, so the enumeration is per group of
linked names (`Component`), each a table of its feasible rows, built name by name and
pruned by every requirement as soon as its names are assigned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from gradcheck.core.values import pick_choice
from gradcheck.errors import UsageError
from gradcheck.user.expressions import Dimension, evaluate, names_of
from gradcheck.user.signature import Requirement

#: The most feasible rows one group of linked sizes may have (and hold while enumerating).
MAX_ASSIGNMENTS = 1 << 20


@dataclass(frozen=True)
class Derived:
    """A size computed from another (unit-Jacobian layers: P = parameters_per_unit(I))."""

    target: str
    source: str
    function: Callable[[int], int]
    values: Mapping[int, int]  # source size -> target size, over the source's range


@dataclass(frozen=True)
class Component:
    """A group of sizes linked by requirements: its names and its feasible rows."""

    names: tuple[str, ...]
    table: np.ndarray  # (rows, len(names)) int64


@dataclass(frozen=True)
class SizeSpace:
    """Every feasible assignment of the sizes, as independent components."""

    drawn: tuple[str, ...]  # the names drawn from a byte each, in the signature's order
    ranges: Mapping[str, tuple[int, int]]
    components: tuple[Component, ...]

    def _where(self, name: str) -> tuple[int, int]:
        for c, component in enumerate(self.components):
            if name in component.names:
                return c, component.names.index(name)
        raise KeyError(name)

    def draw(self, raw: Sequence[int]) -> dict[str, int]:
        """The sizes of one case from one byte per drawn name (see the module docstring).
        Sizes different from 1 and from each other are preferred by bytes other than 0:
        square weights hide transposition bugs and a batch of one hides bias bugs."""
        rows = [np.arange(len(c.table)) for c in self.components]
        sizes: dict[str, int] = {}
        for byte, name in zip(raw, self.drawn, strict=True):
            c, column = self._where(name)
            values = self.components[c].table[rows[c], column]
            # sorted(set()), not np.unique: the same list, without numpy's overhead per draw
            size = pick_choice(int(byte), sorted(set(values.tolist())), (1, *sizes.values()))
            rows[c] = rows[c][values == size]
            sizes[name] = size
        for c, component in enumerate(self.components):  # derived sizes follow
            first = component.table[rows[c][0]]
            for name, value in zip(component.names, first, strict=True):
                sizes.setdefault(name, int(value))
        return sizes

    def smallest(self) -> dict[str, int]:
        """The sizes a fully shrunk case has (every byte 0)."""
        return self.draw([0] * len(self.drawn))

    def largest(self, dimension: Dimension) -> int:
        """The largest value a dimension takes over the feasible assignments."""
        names = names_of(dimension)
        if not names:
            return int(evaluate(dimension, {}))
        located = {name: self._where(name) for name in names}
        (c,) = {c for c, _ in located.values()} or {0}  # one expression, one component
        table = self.components[c].table
        columns = {name: table[:, column] for name, (_, column) in located.items()}
        return int(np.max(evaluate(dimension, columns)))


def size_space(
    names: Sequence[str],
    ranges: Mapping[str, tuple[int, int]],
    requirements: Sequence[Requirement],
    derived: Derived | None = None,
) -> SizeSpace:
    """Enumerate the feasible assignments; UsageError (naming the requirements at fault
    and the ranges) when there is none, or too many to hold."""
    for requirement in requirements:
        if not requirement.names and not bool(requirement.comparison.holds({})):
            raise UsageError(requirement.failure())
    parent = {name: name for name in names}

    def root(name: str) -> str:
        while parent[name] != name:
            name = parent[name]
        return name

    links = [r.names for r in requirements]
    if derived is not None:
        links.append((derived.source, derived.target))
    for linked in links:
        for other in linked[1:]:
            parent[root(other)] = root(linked[0])
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(root(name), []).append(name)
    components = []
    for members in groups.values():
        if derived is not None and derived.target in members:  # the source comes first
            members.remove(derived.target)
            members.insert(members.index(derived.source) + 1, derived.target)
        mine = [r for r in requirements if r.names and set(r.names) <= set(members)]
        table = _enumerate(members, ranges, mine, derived)
        if len(table) == 0:
            raise UsageError(_infeasible(members, ranges, mine, derived))
        components.append(Component(tuple(members), table))
    drawn = tuple(n for n in names if derived is None or n != derived.target)
    return SizeSpace(drawn, dict(ranges), tuple(components))


def _enumerate(
    members: Sequence[str],
    ranges: Mapping[str, tuple[int, int]],
    requirements: Sequence[Requirement],
    derived: Derived | None,
) -> np.ndarray:
    """The feasible rows of a group of names, built name by name, each requirement
    applied as soon as all its names have a column."""
    table = np.zeros((1, 0), dtype=np.int64)
    pending = list(requirements)
    for position, name in enumerate(members):
        if derived is not None and name == derived.target:
            source = table[:, members.index(derived.source)]
            column = np.array([derived.values[int(s)] for s in source], dtype=np.int64)
            table = np.column_stack([table, column])
        else:
            low, high = ranges[name]
            values = np.arange(low, high + 1, dtype=np.int64)
            if len(table) * len(values) > MAX_ASSIGNMENTS:
                raise UsageError(
                    f"the sizes {', '.join(members[: position + 1])} are linked by constraints "
                    f"and together allow more than {MAX_ASSIGNMENTS} combinations in their "
                    f"ranges ({_ranges(members, ranges)}); narrow them with sizes= or max_size"
                )
            table = np.column_stack(
                [np.repeat(table, len(values), axis=0), np.tile(values, len(table))]
            )
        assigned = set(members[: position + 1])
        columns = {n: table[:, members.index(n)] for n in members[: position + 1]}
        for requirement in [r for r in pending if set(r.names) <= assigned]:
            pending.remove(requirement)
            keep = np.asarray(requirement.comparison.holds(columns), dtype=bool)
            table = table[keep]
            columns = {n: table[:, members.index(n)] for n in members[: position + 1]}
    return table


def _infeasible(
    members: Sequence[str],
    ranges: Mapping[str, tuple[int, int]],
    requirements: Sequence[Requirement],
    derived: Derived | None,
) -> str:
    """Which requirements cannot hold together: a smallest set of them with no feasible
    assignment (each one alone, when it is enough)."""
    at_fault = list(requirements)
    # Tried for removal first, so kept last: a computed size ≤ 0 often only follows from
    # a divisor of 0 or an empty range, which is the better news.
    order = {"size": 0, "constraint": 1, "range": 2, "divisor": 3}
    for requirement in sorted(at_fault, key=lambda r: order[r.kind]):
        rest = [r for r in at_fault if r is not requirement]
        try:
            if len(_enumerate(members, ranges, rest, derived)) == 0:
                at_fault = rest
        except UsageError:  # too many to tell without it: keep it
            continue
    names = [n for n in members if any(n in r.names for r in at_fault)] or list(members)
    shown = f"({_ranges(names, ranges)}; widen the ranges with sizes= or max_size)"
    if len(at_fault) == 1:
        return f"{at_fault[0].failure()} {shown}"
    return "no drawable sizes meet all of: " + "; ".join(r.where for r in at_fault) + f" {shown}"


def _ranges(names: Sequence[str], ranges: Mapping[str, tuple[int, int]]) -> str:
    shown = []
    for name in names:
        low, high = ranges[name]
        shown.append(f"{name} = {low}" if low == high else f"{name} in {low}..{high}")
    return ", ".join(shown)
