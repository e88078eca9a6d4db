"""SQLite's side of the engine: pragmas on connect, and a cooperative BEGIN IMMEDIATE.

Both listeners are registered on every ``Engine`` when this module is imported
and do nothing for PostgreSQL connections.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

SQLITE_BUSY_TIMEOUT_MS = 5000
SQLITE_POOL_TIMEOUT_SECONDS = 10
SQLITE_MMAP_BYTES = 0
BEGIN_RETRY_FIRST_PAUSE_SECONDS = 0.0001
BEGIN_RETRY_MAX_PAUSE_SECONDS = 0.0005


class SQLiteConnection(sqlite3.Connection):
    """pysqlite's connection (``engine_options`` makes the pool's of this class),
    knowing its busy timeout and whether ``begin_immediate`` left it off."""

    busy_timeout_ms: int | None = None
    busy_handler_off = False


def _is_sqlite(dbapi_connection: Any) -> bool:
    return isinstance(dbapi_connection, sqlite3.Connection)


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
    # No memory map: pages read through one stay in each worker's RSS (1 GiB of map
    # took a worker to 582 MB at ten million packages), while a pread() per page the
    # cache misses is served from the OS page cache, shared by every worker. Measured
    # in docs/bench.md: peak RSS 114-115 MB per worker, CPU per send within noise.
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
            begin_immediate(dbapi_connection)
        else:
            restore_busy_handler(dbapi_connection)
            dbapi_connection.execute(statement)
    except sqlite3.Error as error:
        # Raised from an event, it would escape SQLAlchemy's wrapping (and so
        # unit_of_work's mapping of outages to 503) unless wrapped here.
        wrapper = OperationalError if isinstance(error, sqlite3.OperationalError) else DBAPIError
        raise wrapper(statement, None, error) from error


def begin_immediate(dbapi_connection: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, waiting for another process's write lock without stopping this one.

    SQLite's own busy handler sleeps inside C, which would stop every greenlet
    of the process for each of its naps (1, 2, 5, 10... ms); so the lock is
    tried without it, and the wait between tries is gevent's (time.sleep is
    patched in the servers): the process serves its other requests meanwhile.

    The handler stays off after BEGIN IMMEDIATE: a transaction holding the
    write lock never waits for a lock (nor does its COMMIT: in WAL mode the
    automatic checkpoint is passive). Any other BEGIN on the connection turns
    it back on first (``_begin_sqlite_transaction``), so reads and deferred
    transactions keep waiting as configured. Back-to-back writes (a worker's
    group commits under load) pay no PRAGMA; they paid three each.
    """
    # A connection of another engine (one not made with engine_options) keeps no
    # state: its handler is turned back on at once, as before.
    kept = isinstance(dbapi_connection, SQLiteConnection)
    busy_timeout_ms = _busy_timeout_of(dbapi_connection)
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = BEGIN_RETRY_FIRST_PAUSE_SECONDS
    if not isinstance(dbapi_connection, SQLiteConnection):
        dbapi_connection.execute("PRAGMA busy_timeout=0")
    elif not dbapi_connection.busy_handler_off:
        dbapi_connection.execute("PRAGMA busy_timeout=0")
        dbapi_connection.busy_handler_off = True
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
        if not kept:
            dbapi_connection.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")


def _busy_timeout_of(dbapi_connection: sqlite3.Connection) -> int:
    """The busy timeout the connection was opened with (read once, before any change)."""
    if not isinstance(dbapi_connection, SQLiteConnection):
        return int(dbapi_connection.execute("PRAGMA busy_timeout").fetchone()[0])
    if dbapi_connection.busy_timeout_ms is None:
        row = dbapi_connection.execute("PRAGMA busy_timeout").fetchone()
        dbapi_connection.busy_timeout_ms = int(row[0])
    return dbapi_connection.busy_timeout_ms


def restore_busy_handler(dbapi_connection: sqlite3.Connection) -> None:
    """Turn the busy handler back on if ``begin_immediate`` left it off.

    Every BEGIN but IMMEDIATE does this itself; code that runs statements on a
    raw connection without a BEGIN (a PRAGMA that needs a lock) calls it first."""
    if isinstance(dbapi_connection, SQLiteConnection) and dbapi_connection.busy_handler_off:
        timeout_ms = _busy_timeout_of(dbapi_connection)
        dbapi_connection.execute(f"PRAGMA busy_timeout={timeout_ms}")
        dbapi_connection.busy_handler_off = False
