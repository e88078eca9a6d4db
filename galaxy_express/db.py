"""Database plumbing shared by every domain.

The declarative base (with a naming convention, so migrations get stable
constraint names), a UTC datetime column type, the engine options for SQLite
and PostgreSQL, and the one way services open a unit of work.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import MetaData, Table, event, types
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, declarative_base
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql.dml import Insert

from galaxy_express.errors import DependencyUnavailable

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)
Base = declarative_base(metadata=metadata)

SQLITE_BUSY_TIMEOUT_MS = 5000
# Counters are spread over this many rows so concurrent writers on PostgreSQL
# don't queue on one hot row; reads sum at most this many rows per counter.
COUNTER_SHARDS = 16


class UTCDateTime(types.TypeDecorator):
    """Timezone-aware UTC in Python, naive UTC in the database.

    SQLite has no time zones, so both databases store naive UTC and every value
    read back is made aware again: one behaviour on both.
    """

    impl = types.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use clock.now() or aware values")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def engine_options(url: str) -> dict[str, Any]:
    """Keyword arguments for ``create_engine`` suited to the database at ``url``."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        # One pooled connection per process: SQLite has one writer anyway, and a
        # greenlet waiting on the pool yields to others, whereas one waiting on
        # SQLite's busy handler would block the whole gevent process.
        return {
            "future": True,
            "poolclass": QueuePool,
            "pool_size": 1,
            "max_overflow": 0,
            "pool_timeout": 10,
            "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        }
    return {"future": True, "pool_pre_ping": True}


def _is_sqlite(dbapi_connection: Any) -> bool:
    return type(dbapi_connection).__module__.startswith("sqlite3")


@event.listens_for(Engine, "connect")
def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    if not _is_sqlite(dbapi_connection):
        return
    # Take over BEGIN from pysqlite so writes can BEGIN IMMEDIATE (see begin below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@event.listens_for(Engine, "begin")
def _begin_sqlite_transaction(connection: Connection) -> None:
    if connection.dialect.name != "sqlite":
        return
    # A write transaction takes the write lock up front, so two processes can't
    # both read and then deadlock upgrading to write (SQLITE_BUSY_SNAPSHOT).
    immediate = connection.get_execution_options().get("write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def unit_of_work(session: Session, *, write: bool = False) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error.

    Database outages and lock time-outs become ``DependencyUnavailable`` (503,
    Retry-After), and nothing of the unit is left half-written.
    """
    try:
        if write:
            session.connection(execution_options={"write": True})
        yield session
        session.commit()
    except BaseException as exc:
        session.rollback()
        if _is_unavailable(exc):
            raise DependencyUnavailable("the database is unavailable or busy; retry later") from exc
        raise


def _is_unavailable(exc: BaseException) -> bool:
    """A failure of the database's availability, not of the statement."""
    if isinstance(exc, PoolTimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    if isinstance(exc.orig, sqlite3.OperationalError):
        # SQLite reports a missing table the same way as a lock: tell them apart.
        message = str(exc.orig).lower()
        return any(sign in message for sign in _SQLITE_UNAVAILABLE)
    return True  # psycopg2: connection refused or lost, server shutting down


_SQLITE_UNAVAILABLE = ("locked", "busy", "unable to open", "disk i/o")


def insert_ignoring_conflicts(session: Session, table: Table, values: Mapping[str, Any]) -> bool:
    """INSERT that does nothing when the key exists; True when a row was added."""
    statement: Insert = _dialect_insert(session, table).values(**values)
    result = session.execute(statement.on_conflict_do_nothing())  # type: ignore[attr-defined]
    return bool(result.rowcount)  # type: ignore[attr-defined]


def increment_counters(session: Session, table: Table, names: Mapping[str, int]) -> None:
    """Add to sharded counters (``name``, ``shard``, ``value``) in the session's transaction."""
    for name, amount in names.items():
        if not amount:
            continue
        statement = _dialect_insert(session, table).values(
            name=name, shard=random.randrange(COUNTER_SHARDS), value=amount
        )
        statement = statement.on_conflict_do_update(  # type: ignore[attr-defined]
            index_elements=["name", "shard"],
            set_={"value": table.c.value + statement.excluded.value},  # type: ignore[attr-defined]
        )
        session.execute(statement)


def _dialect_insert(session: Session, table: Table) -> Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect: {dialect}")
