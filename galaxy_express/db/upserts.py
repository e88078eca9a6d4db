"""INSERT ... ON CONFLICT for both databases, through one writer interface.

A ``Writer`` is what runs the statements: a ``DriverTransaction`` (group
commit) or a Session (adapted once, by ``as_writer``). Sharded counters add up
here too; a driver transaction defers them to its commit.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import Table
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


def _insert_for(dialect: Dialect, table: Table) -> Any:
    if dialect.name == "postgresql":
        return postgresql.insert(table)
    if dialect.name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect: {dialect.name}")
