"""The catalogue's tables: rows keyed by their names, read-only, looked up by name.

Activations, layer types and losses are each one table of rows (adding one is adding a
row); these two functions build a table and resolve what a user passed (a row's name or
the row itself) against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from gradcheck.errors import UnknownNameError


class _Row(Protocol):
    @property
    def name(self) -> str: ...


RowT = TypeVar("RowT", bound=_Row)


def table(kind: str, *rows: RowT) -> Mapping[str, RowT]:
    """The rows by name, read-only; two rows of one name are a bug in the catalogue."""
    by_name = {row.name: row for row in rows}
    assert len(by_name) == len(rows), f"{kind} names must be unique"
    return MappingProxyType(by_name)


def resolve(kind: str, rows: Mapping[str, RowT], row_type: type[RowT], value: Any) -> RowT:
    """The row `value` names, or `value` itself when it is a row already."""
    if isinstance(value, row_type):
        return value
    if isinstance(value, str) and value in rows:
        return rows[value]
    raise UnknownNameError(kind, value, sorted(rows))
