"""Database plumbing shared by every domain.

The declarative base (with a naming convention, so migrations get stable
constraint names), a UTC datetime column type, the engine options for SQLite
and PostgreSQL, and the one way services open a unit of work.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from baseplate.clients.sqlalchemy import SQLAlchemySession, SQLAlchemySessionContextFactory
from baseplate.lib.config import RawConfig
from sqlalchemy import MetaData, Table, event, types
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, ExceptionContext
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
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


def engine_options(url: str, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> dict[str, Any]:
    """Keyword arguments for ``create_engine`` suited to the database at ``url``.

    ``busy_timeout_ms`` (SQLite only, ``db.sqlite_busy_timeout``): how long a
    write waits for another process's lock before answering 503.
    """
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
            # pysqlite sets SQLite's busy timeout from this.
            "connect_args": {"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        }
    return {"future": True, "pool_pre_ping": True}


class SessionClient(SQLAlchemySession):
    """baseplate's ``db`` context client, without an error listener that hides outages.

    baseplate's ``handle_error`` listener asserts that the failing statement had a
    connection; when connecting itself fails (the database is down) there is none,
    and its AssertionError replaced the OperationalError: a 500 instead of a 503.
    """

    def parse(self, key_path: str, raw_config: RawConfig) -> SQLAlchemySessionContextFactory:
        factory = super().parse(key_path, raw_config)
        event.remove(factory.engine, "handle_error", factory.on_error)

        def on_error(context: ExceptionContext) -> None:
            if context.connection is not None:
                factory.on_error(context)

        event.listen(factory.engine, "handle_error", on_error)
        return factory


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


# SQLite reports a missing table or a syntax error as OperationalError too; only
# these are outages a retry can outlive.
_SQLITE_OUTAGES = ("locked", "busy", "unable to open", "disk i/o error", "disk is full")


def _is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` is the database being down, busy or out of connections."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    if type(exc.orig).__module__.startswith("sqlite3"):
        message = str(exc.orig).lower()
        return any(outage in message for outage in _SQLITE_OUTAGES)
    # PostgreSQL: connection failures, lock and statement time-outs, serialization.
    return True


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
