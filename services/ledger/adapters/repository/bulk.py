"""Bulk statements from one column list.

The ledger writes many rows per round trip with `unnest`: one array parameter per
column, `unnest($1::varchar[], $2::text[]::numeric[], ...) AS t(id, amount, ...)`. A
`ColumnList` names each column once, with the Postgres type of its array and how a
Python value becomes what asyncpg sends for that type, and from that one list gives
both the SQL fragments (placeholders, names, assignments) and the arrays, in the
same order. Adding a column to a bulk statement is adding it to its list.

The SQL text is built when a module defines its statements (import time), never
per call: the hot paths send constant strings (asyncpg's statement cache keys on
the text) and per call only build the arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any


@dataclass(frozen=True)
class Column:
    """One column of a bulk statement. `pg_type` is the element type of its array
    parameter (`$n::<pg_type>[]`); `convert`, when given, turns each Python value
    into what asyncpg encodes for that type (an int into str for numeric, a dict
    into JSON text for jsonb)."""

    name: str
    pg_type: str
    convert: Callable[[Any], Any] | None = None

    def parameter(self, number: int) -> str:
        """The column's array parameter as a statement takes it, `$n::<pg_type>[]`.
        A numeric array travels as text and Postgres casts it: asyncpg encodes a str
        element as text in 0.7 us, as numeric in 2.6 us (it makes a Decimal of it
        first), and CreatePayment sends five per payment with three options
        (docs/BENCHMARKS.md, issue 14). Numeric values are therefore str (or None)."""
        if self.pg_type == "numeric":
            return f"${number}::text[]::numeric[]"
        return f"${number}::{self.pg_type}[]"


class ColumnList:
    """An ordered list of columns, the one source of a bulk statement's text and arrays."""

    def __init__(self, *columns: Column) -> None:
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            raise ValueError(f"a column is listed twice: {names}")
        self.columns = tuple(columns)
        self.names = tuple(names)
        # Readers made once: arrays() runs on the hot paths.
        self._by_key = tuple((itemgetter(c.name), c.convert) for c in columns)
        self._by_attribute = tuple((attrgetter(c.name), c.convert) for c in columns)

    def __add__(self, other: ColumnList) -> ColumnList:
        return ColumnList(*self.columns, *other.columns)

    def __iter__(self) -> Iterator[Column]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    # ------------------------------------------------------------ SQL text

    def unnest(self, alias: str, *, ordinality: str = "", start: int = 1) -> str:
        """`unnest($1::type[], ...) AS alias(name, ...)`: one row per array index.
        With `ordinality`, the row's position is one more column of that name.
        `start`: the first parameter's number (a second list in the same statement)."""
        arrays = ", ".join(c.parameter(i) for i, c in enumerate(self.columns, start=start))
        if ordinality:
            return f"unnest({arrays}) WITH ORDINALITY AS {alias}({', '.join((*self.names, ordinality))})"
        return f"unnest({arrays}) AS {alias}({', '.join(self.names)})"

    def select(self, alias: str = "", **instead: str) -> str:
        """The columns as a select list, each qualified by `alias`; `instead` gives
        another expression for some of them (name=SQL)."""
        unknown = set(instead) - set(self.names)
        if unknown:
            raise ValueError(f"not in the column list: {sorted(unknown)}")
        prefix = f"{alias}." if alias else ""
        return ", ".join(instead.get(name, prefix + name) for name in self.names)

    def set_from(self, alias: str) -> str:
        """`name = alias.name, ...`: an UPDATE's SET list taking every column from `alias`."""
        return ", ".join(f"{name} = {alias}.{name}" for name in self.names)

    # ------------------------------------------------------------ parameters

    def arrays(self, rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
        """One list per column, in the list's order, from rows keyed by column name."""
        return self._arrays(rows, self._by_key)

    def arrays_of(self, records: Sequence[object]) -> list[list[Any]]:
        """One list per column, in the list's order, from objects with an attribute per column."""
        return self._arrays(records, self._by_attribute)

    @staticmethod
    def _arrays(rows: Sequence[Any], readers: tuple) -> list[list[Any]]:
        return [
            [convert(read(r)) for r in rows] if convert is not None else [read(r) for r in rows]
            for read, convert in readers
        ]
