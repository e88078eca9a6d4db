"""Database plumbing shared by every domain.

The declarative base (with a naming convention, so migrations get stable
constraint names), a UTC datetime column type, the engine options for SQLite
and PostgreSQL, and the one way services open a unit of work.
"""

from __future__ import annotations

import functools
import random
import sqlite3
import threading
import time
import weakref
from collections import defaultdict, deque, namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from baseplate.clients import ContextFactory
from baseplate.clients.sqlalchemy import (
    SQLAlchemySession,
    SQLAlchemySessionContextFactory,
    SQLAlchemySessionSpanObserver,
    engine_from_config,
)
from sqlalchemy import MetaData, Table, event, types
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine, ExceptionContext
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, declarative_base
from sqlalchemy.pool import Pool, QueuePool
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import Compiled

from galaxy_express.core.errors import DependencyUnavailable
from galaxy_express.db import wal_checkpoints

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
SQLITE_POOL_TIMEOUT_SECONDS = 10
SQLITE_MMAP_BYTES = 1 << 30
BEGIN_RETRY_FIRST_PAUSE_SECONDS = 0.0001
BEGIN_RETRY_MAX_PAUSE_SECONDS = 0.0005
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
            "pool_timeout": SQLITE_POOL_TIMEOUT_SECONDS,
            # pysqlite sets SQLite's busy timeout from this.
            "connect_args": {"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        }
    return {"future": True, "pool_pre_ping": True}


class SessionClient(SQLAlchemySession):
    """baseplate's session client, without a span per SQL statement when tracing is off.

    baseplate wraps every statement in a span (and its Prometheus metrics) and
    appends the trace and span ids to the SQL as a comment. The comment makes
    each statement's text new, so SQLite re-compiles every statement every time
    (its statement cache never hits), and the spans are dropped unsampled
    anyway. With tracing off, each request gets a plain Session instead; the
    servers' own request spans and metrics stay.
    """

    def __init__(self, *, trace_statements: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trace_statements = trace_statements

    def parse(self, key_path: str, raw_config: Any) -> ContextFactory:
        factory: SQLAlchemySessionContextFactory | _UntracedSessions
        if self.trace_statements:
            factory = _without_outage_masking(super().parse(key_path, raw_config))
        else:
            engine = engine_from_config(
                raw_config, secrets=self.secrets, prefix=f"{key_path}.", **self.kwargs
            )
            factory = _UntracedSessions(engine)
        wal_checkpoints.track(factory.engine)
        return factory


def _without_outage_masking(
    factory: SQLAlchemySessionContextFactory,
) -> SQLAlchemySessionContextFactory:
    """baseplate's factory, minus an error listener that turned outages into 500s.

    baseplate's ``handle_error`` listener asserts that the failing statement had a
    connection; when connecting itself fails (the database is down) there is none,
    and its AssertionError replaced the OperationalError: a 500 instead of a 503.
    """
    event.remove(factory.engine, "handle_error", factory.on_error)

    def on_error(context: ExceptionContext) -> None:
        if context.connection is not None:
            factory.on_error(context)

    event.listen(factory.engine, "handle_error", on_error)
    return factory


class _UntracedSessions(ContextFactory):
    """A Session per request, closed when the request ends, as baseplate's, minus the tracing."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def make_object_for_context(self, name: str, span: Any) -> Session:
        session = Session(bind=self.engine)
        span.register(SQLAlchemySessionSpanObserver(session))
        return session


def cooperate_with_gevent(url: str) -> None:
    """Let psycopg2 wait for PostgreSQL through gevent's hub in a gevent-patched process.

    Without it every query stops the whole worker process (all its greenlets)
    until PostgreSQL answers. Processes that are not patched are left as they are.
    """
    if make_url(url).get_backend_name() != "postgresql":
        return
    from gevent import monkey

    if monkey.is_module_patched("socket"):
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()


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
    # Pages read through a memory map, not a read() each: with several processes
    # writing, every transaction after another process's commit re-reads them.
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.close()


@event.listens_for(Engine, "begin")
def _begin_sqlite_transaction(connection: Connection) -> None:
    if connection.dialect.name != "sqlite":
        return
    # A write transaction takes the write lock up front, so two processes can't
    # both read and then deadlock upgrading to write (SQLITE_BUSY_SNAPSHOT).
    # BEGIN goes straight to the driver: it needs no statement span or caching.
    dbapi_connection: Any = connection.connection.dbapi_connection
    immediate = connection.get_execution_options().get("write", False)
    statement = "BEGIN IMMEDIATE" if immediate else "BEGIN"
    try:
        if immediate:
            _begin_immediate(dbapi_connection)
        else:
            dbapi_connection.execute(statement)
    except sqlite3.Error as error:
        # Raised from an event, it would escape SQLAlchemy's wrapping (and so
        # unit_of_work's mapping of outages to 503) unless wrapped here.
        wrapper = OperationalError if isinstance(error, sqlite3.OperationalError) else DBAPIError
        raise wrapper(statement, None, error) from error


def _begin_immediate(dbapi_connection: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, waiting for another process's write lock without stopping this one.

    SQLite's own busy handler sleeps inside C, which would stop every greenlet
    of the process for each of its naps (1, 2, 5, 10... ms); so the lock is
    tried without it, and the wait between tries is gevent's (time.sleep is
    patched in the servers): the process serves its other requests meanwhile.
    """
    busy_timeout_ms = dbapi_connection.execute("PRAGMA busy_timeout").fetchone()[0]
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = BEGIN_RETRY_FIRST_PAUSE_SECONDS
    dbapi_connection.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                dbapi_connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                busy = error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, BEGIN_RETRY_MAX_PAUSE_SECONDS)
    finally:
        dbapi_connection.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")


@contextmanager
def unit_of_work(session: Session, *, write: bool = False) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error.

    Database outages and lock time-outs become ``DependencyUnavailable`` (503,
    Retry-After), and nothing of the unit is left half-written.
    """
    with _turn_on_pool(engine_of(session).pool, session):
        try:
            if write:
                session.connection(execution_options={"write": True})
            yield session
            session.commit()
        except BaseException as exc:
            session.rollback()
            if _is_unavailable(exc):
                raise _outage() from exc
            raise


class FirstComeFirstServed:
    """Up to ``capacity`` holders at once; waiters get in, in the order they asked.

    SQLAlchemy's pool hands a returned connection to whoever asks next, not to
    whoever waited longest, so with more requests than connections some waited
    again and again (a send-package p99 over a second, and connections served
    a third as often as others). Here a release hands the place straight to
    the oldest waiter. A holder may enter again (nested units of work of one
    session). Built on ``threading.Lock``, which gevent patches in the servers,
    so waiting yields to the other greenlets.
    """

    def __init__(self, capacity: int = 1) -> None:
        self._mutex = threading.Lock()
        self._capacity = capacity
        self._depths: dict[int, int] = {}  # id(holder) -> times entered
        self._waiters: deque[tuple[threading.Lock, int]] = deque()

    def acquire(self, holder: object, timeout: float) -> bool:
        key = id(holder)
        with self._mutex:
            if key in self._depths or (len(self._depths) < self._capacity and not self._waiters):
                self._depths[key] = self._depths.get(key, 0) + 1
                return True
            entry = (threading.Lock(), key)
            entry[0].acquire()
            self._waiters.append(entry)
        if entry[0].acquire(timeout=timeout):
            return True  # release() gave us the place
        with self._mutex:
            if entry in self._waiters:
                self._waiters.remove(entry)
                return False
            return True  # given the place just as the wait timed out

    def release(self, holder: object) -> None:
        key = id(holder)
        with self._mutex:
            self._depths[key] -= 1
            if self._depths[key]:
                return
            del self._depths[key]
            if self._waiters:
                lock, successor = self._waiters.popleft()
                self._depths[successor] = 1
                lock.release()


_places: weakref.WeakKeyDictionary[Pool, tuple[FirstComeFirstServed, float]] = (
    weakref.WeakKeyDictionary()
)


def engine_of(session: Session) -> Engine:
    """The engine a session runs on (bound to it, or to one of its connections)."""
    bind = session.get_bind()
    return bind.engine if isinstance(bind, Connection) else bind


@contextmanager
def _turn_on_pool(pool: Pool, holder: object) -> Iterator[None]:
    """Units of work wait for a pooled connection in arrival order."""
    if pool not in _places:
        # QueuePool keeps its overflow limit private; -1 (or a size of 0) means no limit.
        overflow = getattr(pool, "_max_overflow", -1)
        if not isinstance(pool, QueuePool) or overflow < 0 or pool.size() <= 0:
            yield  # no limit to wait for
            return
        _places[pool] = (FirstComeFirstServed(pool.size() + overflow), pool.timeout())
    places, timeout = _places[pool]
    if not places.acquire(holder, timeout):
        raise DependencyUnavailable("the database is busy; retry later")
    try:
        yield
    finally:
        places.release(holder)


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


_SQLITE_UNAVAILABLE = ("locked", "busy", "unable to open", "disk i/o", "disk is full")


class DriverTransaction:
    """A write transaction on the driver's own connection; see ``driver_transaction``."""

    def __init__(self, dialect: Dialect, cursor: Any) -> None:
        self.dialect = dialect
        self._cursor = cursor
        self._counters: dict[tuple[Table, str], int] = defaultdict(int)

    def add_to_counters(self, table: Table, names: Mapping[str, int]) -> None:
        """Add to sharded counters when the transaction ends (see ``increment_counters``)."""
        for name, amount in names.items():
            self._counters[table, name] += amount

    def write_counters(self) -> None:
        """The counters' sums, one upsert a counter, in one order for every transaction.

        A group commit adds to the counters for dozens of packages: summed, they
        cost a statement per counter instead of one per package, and taken in
        the same order (and last) by every transaction, two transactions can't
        wait for each other's counter rows (on PostgreSQL, they deadlocked).
        """
        ordered = sorted(self._counters.items(), key=lambda item: (item[0][0].name, item[0][1]))
        self._counters.clear()
        for (table, name), amount in ordered:
            if amount:
                statement = _compiled_upsert(
                    self.dialect, table, ("name", "shard", "value"), ("name", "shard")
                )
                shard = random.randrange(COUNTER_SHARDS)
                self.execute(statement, {"name": name, "shard": shard, "value": amount})

    def execute(self, statement: Executable | Compiled, values: Mapping[str, Any]) -> int:
        """Run ``statement``; the number of rows it added or changed."""
        self._run(statement, values)
        return int(self._cursor.rowcount)

    def first(self, statement: Executable, values: Mapping[str, Any]) -> Any:
        """The first row of a query (a named tuple of its columns, with the values
        the ORM would give, such as aware datetimes), or None."""
        sql = self._run(statement, values)
        found = self._cursor.fetchone()
        return None if found is None else sql.row(found)

    def _run(self, statement: Executable | Compiled, values: Mapping[str, Any]) -> _DriverSQL:
        sql = _driver_sql(self.dialect, statement, tuple(values))
        self._cursor.execute(sql.text, sql.parameters(values))
        return sql


@contextmanager
def driver_transaction(session: Session) -> Iterator[DriverTransaction]:
    """A write unit of work that runs its statements straight on the driver's cursor.

    For the hottest write, sending a package. Through the Session and Core
    layers each statement cost 50-150 microseconds of Python (execution
    contexts, events, the Session's transaction bookkeeping) against a few for
    SQLite itself: most of a send's CPU. Statements are still SQLAlchemy
    statements, compiled once per dialect, and values still pass through the
    columns' types, so rows are stored exactly as the ORM stores them. The rest
    is ``unit_of_work``'s: the same connection turns, BEGIN IMMEDIATE on SQLite,
    commit on success, roll back on any error, outages as ``DependencyUnavailable``.
    """
    engine = engine_of(session)
    dialect = engine.dialect
    driver_error: type[Exception] = dialect.dbapi.Error  # type: ignore[attr-defined]
    with _turn_on_pool(engine.pool, session):
        try:
            # The pool's proxy of the driver's connection (typed too narrowly upstream).
            connection: Any = engine.raw_connection()
        except DBAPIError as error:
            raise _outage_or(error) from error
        cursor = connection.cursor()
        try:
            if dialect.name == "sqlite":
                _begin_immediate(connection.dbapi_connection)
            transaction = DriverTransaction(dialect, cursor)
            yield transaction
            transaction.write_counters()
            connection.commit()
        except BaseException as exc:
            with suppress(Exception):  # a lost connection can't roll back, nor needs to
                connection.rollback()
            if not isinstance(exc, driver_error):
                raise
            disconnected = dialect.is_disconnect(exc, connection.dbapi_connection, cursor)
            if disconnected:
                connection.invalidate(exc)
            wrapped = DBAPIError.instance(
                None, None, exc, driver_error, connection_invalidated=disconnected
            )
            raise _outage_or(wrapped) from exc
        finally:
            with suppress(Exception):
                cursor.close()
            connection.close()


def _outage_or(error: DBAPIError) -> Exception:
    return _outage() if _is_unavailable(error) else error


def _outage() -> DependencyUnavailable:
    """What both kinds of unit of work raise when the database is down or locked."""
    return DependencyUnavailable("the database is unavailable or busy; retry later")


@dataclass(frozen=True)
class _DriverSQL:
    """A statement's SQL for one dialect and how to turn values into its parameters."""

    text: str
    order: tuple[str, ...] | None  # positional parameters' names; None for named ones
    defaults: Mapping[str, Any]  # values the statement carries itself (LIMIT 1)
    processors: Mapping[str, Callable[[Any], Any]]  # the columns' types' bind processing
    row_type: Callable[..., tuple[Any, ...]]  # a named tuple of the selected columns
    converters: tuple[Callable[[Any], Any] | None, ...]  # their types' result processing

    def parameters(self, values: Mapping[str, Any]) -> Any:
        merged = {**self.defaults, **values}
        for name, process in self.processors.items():
            if name in merged:
                merged[name] = process(merged[name])
        return merged if self.order is None else tuple(merged[name] for name in self.order)

    def row(self, found: Sequence[Any]) -> tuple[Any, ...]:
        converted = (
            value if convert is None else convert(value)
            for value, convert in zip(found, self.converters, strict=True)
        )
        return self.row_type(*converted)


@functools.cache
def _driver_sql(
    dialect: Dialect, statement: Executable | Compiled, keys: tuple[str, ...]
) -> _DriverSQL:
    """Compile once per dialect, statement and set of value names.

    Reads SQLAlchemy 1.4's compiler (``bind_names``, ``positiontup``) and the
    columns' types (``dialect_impl(...).bind_processor``/``result_processor``),
    as its own execution does; ``tests/unit/test_group_commit.py`` checks the
    rows it writes and reads against the ORM's on both databases.
    """
    if isinstance(statement, Compiled):
        compiled = statement
    else:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
    binds = {name: bind for bind, name in compiled.bind_names.items()}  # type: ignore[attr-defined]
    processors = {}
    for name, bind in binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[name] = process
    columns = list(getattr(statement, "selected_columns", ()))
    return _DriverSQL(
        text=compiled.string,
        order=tuple(compiled.positiontup) if compiled.positional else None,  # type: ignore[attr-defined]
        defaults={name: bind.effective_value for name, bind in binds.items() if not bind.required},
        processors=processors,
        row_type=namedtuple("Row", [column.key for column in columns]),
        converters=tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ),
    )


Writer = Session | DriverTransaction


def insert_ignoring_conflicts(writer: Writer, table: Table, values: Mapping[str, Any]) -> bool:
    """INSERT that does nothing when the key exists; True when a row was added."""
    statement = _compiled_upsert(_dialect_of(writer), table, tuple(values), None)
    return bool(_execute(writer, statement, values))


def increment_counters(writer: Writer, table: Table, names: Mapping[str, int]) -> None:
    """Add to sharded counters (``name``, ``shard``, ``value``) in the writer's transaction.

    A driver transaction writes them as it commits, summed and in order.
    """
    if isinstance(writer, DriverTransaction):
        writer.add_to_counters(table, names)
        return
    statement = _compiled_upsert(
        _dialect_of(writer), table, ("name", "shard", "value"), ("name", "shard")
    )
    for name, amount in names.items():
        if amount:
            shard = random.randrange(COUNTER_SHARDS)
            _execute(writer, statement, {"name": name, "shard": shard, "value": amount})


def _dialect_of(writer: Writer) -> Dialect:
    if isinstance(writer, DriverTransaction):
        return writer.dialect
    return engine_of(writer).dialect


def _execute(writer: Writer, statement: Compiled, values: Mapping[str, Any]) -> int:
    if isinstance(writer, DriverTransaction):
        return writer.execute(statement, values)
    return int(writer.connection().execute(statement, dict(values)).rowcount)


@functools.cache
def _compiled_upsert(
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
