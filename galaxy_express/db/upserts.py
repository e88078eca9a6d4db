"""INSERT ... ON CONFLICT for both databases, through one writer interface.

A ``Writer`` is what runs the statements: a ``DriverTransaction`` (group
commit) or a Session (adapted once, by ``as_writer``). Sharded counters add up
here too; a driver transaction defers them to its commit.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from sqlalchemy import Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import Compiled

from galaxy_express.db.engine import engine_of

# Counters are spread over this many rows so concurrent writers on PostgreSQL
# don't queue on one hot row; reads sum at most this many rows per counter.
COUNTER_SHARDS = 16


class Writer(Protocol):
    """What the upserts need of a transaction: its dialect, a statement run, counters."""

    dialect: Dialect

    def execute(self, statement: Executable | Compiled, values: Mapping[str, Any]) -> int: ...

    def add_to_counters(self, table: Table, names: Mapping[str, int]) -> None: ...


class SessionWriter:
    """A Session as a ``Writer``: statements on its connection, counters added at once."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = engine_of(session).dialect

    def execute(self, statement: Executable | Compiled, values: Mapping[str, Any]) -> int:
        return int(self.session.connection().execute(statement, dict(values)).rowcount)

    def add_to_counters(self, table: Table, names: Mapping[str, int]) -> None:
        statement = counter_upsert(self.dialect, table)
        for name, amount in names.items():
            if amount:
                shard = random.randrange(COUNTER_SHARDS)
                self.execute(statement, {"name": name, "shard": shard, "value": amount})


def as_writer(target: Session | Writer) -> Writer:
    """The one place a Session becomes a ``Writer``."""
    return SessionWriter(target) if isinstance(target, Session) else target


def insert_ignoring_conflicts(
    target: Session | Writer, table: Table, values: Mapping[str, Any]
) -> bool:
    """INSERT that does nothing when the key exists; True when a row was added."""
    writer = as_writer(target)
    statement = compiled_upsert(writer.dialect, table, tuple(values), None)
    return bool(writer.execute(statement, values))


def increment_counters(target: Session | Writer, table: Table, names: Mapping[str, int]) -> None:
    """Add to sharded counters (``name``, ``shard``, ``value``) in the writer's transaction.

    A driver transaction writes them as it commits, summed and in order.
    """
    as_writer(target).add_to_counters(table, names)


def counter_upsert(dialect: Dialect, table: Table) -> Compiled:
    """The upsert adding ``value`` to one shard of a counter."""
    return compiled_upsert(dialect, table, ("name", "shard", "value"), ("name", "shard"))


@functools.cache
def compiled_upsert(
    dialect: Dialect, table: Table, columns: tuple[str, ...], add_on: tuple[str, ...] | None
) -> Compiled:
    """INSERT ... ON CONFLICT DO NOTHING, or (``add_on`` the key) DO UPDATE adding ``value``.

    Compiled once per process: SQLAlchemy 1.4 can't cache the dialects' ON
    CONFLICT constructs, so executing them as statements compiled them again on
    every call (a third of a millisecond each, twice per package sent).
    """
    statement = _insert_for(dialect, table)
    if add_on is None:
        statement = statement.on_conflict_do_nothing()
    else:
        statement = statement.on_conflict_do_update(
            index_elements=list(add_on),
            set_={"value": table.c.value + statement.excluded.value},
        )
    return statement.compile(dialect=dialect, column_keys=list(columns))


# What a multi-row INSERT does with a row whose key is taken: fail (a plain INSERT),
# skip it (DO NOTHING), or add its ``add_column`` to the stored row's (DO UPDATE).
OnConflict = Literal["fail", "skip", "add"]


@functools.cache
def compiled_rows(
    dialect: Dialect,
    table: Table,
    columns: tuple[str, ...],
    count: int,
    on_conflict: OnConflict = "fail",
    key: tuple[str, ...] = (),
    add_column: str | None = None,
    returning: tuple[str, ...] = (),
) -> Compiled:
    """INSERT of ``count`` rows in one statement (``VALUES (...), (...)``), compiled once
    per size: the statement of a batch, whose values ``row_values`` names.

    On PostgreSQL every statement is a round trip to the server: a group commit's
    batch of 60 sends wrote its rows one statement each, 60 round trips a table,
    where this is one. The rows are taken (and their keys locked) in the order given.
    """
    rows: list[dict[str, Any]] = [
        {name: bindparam(_value_name(name, i), type_=table.c[name].type) for name in columns}
        for i in range(count)
    ]
    statement = _insert_for(dialect, table).values(rows)
    if on_conflict == "skip":
        statement = statement.on_conflict_do_nothing()
    elif on_conflict == "add":
        if add_column is None or not key:
            raise ValueError("on_conflict='add' needs the key and the column added to")
        statement = statement.on_conflict_do_update(
            index_elements=list(key),
            set_={add_column: table.c[add_column] + statement.excluded[add_column]},
        )
    if returning:
        statement = statement.returning(*(table.c[name] for name in returning))
    return statement.compile(dialect=dialect)


def row_values(columns: tuple[str, ...], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The values of ``compiled_rows``'s statement for these rows (each has ``columns``)."""
    names = _value_names(columns, len(rows))
    return dict(zip(names, (row[name] for row in rows for name in columns), strict=True))


@functools.cache
def _value_names(columns: tuple[str, ...], count: int) -> tuple[str, ...]:
    """The names of ``count`` rows' values, row by row: formatted once per size."""
    return tuple(_value_name(name, i) for i in range(count) for name in columns)


def _value_name(column: str, row: int) -> str:
    return f"{column}_r{row}"


def _insert_for(dialect: Dialect, table: Table) -> Any:
    if dialect.name == "postgresql":
        return postgresql.insert(table)
    if dialect.name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect: {dialect.name}")
