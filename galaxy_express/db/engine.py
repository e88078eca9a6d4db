"""Engine options for SQLite and PostgreSQL and the session client baseplate puts on the context.

``SessionClient`` is baseplate's, minus a span per statement when tracing is
off; every engine it builds is tracked for the WAL checkpoint thread.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from baseplate.clients import ContextFactory
from baseplate.clients.sqlalchemy import (
    SQLAlchemySession,
    SQLAlchemySessionContextFactory,
    SQLAlchemySessionSpanObserver,
    engine_from_config,
)
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, ExceptionContext
from sqlalchemy.engine.url import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from galaxy_express.db import wal_checkpoints
from galaxy_express.db.sqlite import (
    SQLITE_BUSY_TIMEOUT_MS,
    SQLITE_POOL_TIMEOUT_SECONDS,
    SQLiteConnection,
)


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
            "connect_args": {
                "check_same_thread": False,
                "timeout": busy_timeout_ms / 1000,
                "factory": SQLiteConnection,
            },
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
        session = _RequestSession(bind=self.engine)
        span.register(SQLAlchemySessionSpanObserver(session))
        return session


class _RequestSession(Session):
    """A request's Session, whose closing at the request's end costs nothing when unused.

    Most requests that ask for the session only take its engine (a send runs on
    the driver's cursor) or read plain rows, and close it with no transaction
    open and no object in it; ``Session.close`` still rebuilt its identity map
    and detached nothing, every request. Nothing held means nothing to release:
    the session is dropped with the request.
    """

    def close(self) -> None:
        if self.in_transaction() or self.identity_map or self.new:
            super().close()


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


# Per engine, the engine of its long reads: the same database, dialect and
# connection events, and a pool of its own of the same size.
_LONG_READ_ENGINES: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


@contextmanager
def long_read_session(session: Session) -> Iterator[Session]:
    """A session on ``session``'s database through a pool of its own, closed at the end.

    For reads that take long even paced (a big report): on the worker's pool they
    would hold the connection every other request of the worker waits for (a
    SQLite worker's pool holds one), so a health check queued behind ten big
    reports. On their own pool they queue among themselves only. Reads only: a
    SQLite reader in WAL mode blocks neither the writer nor other readers.
    """
    engine = engine_of(session)
    long_reads = _LONG_READ_ENGINES.get(engine)
    if long_reads is None:
        long_reads = type(engine)(engine.pool.recreate(), engine.dialect, engine.url)
        _LONG_READ_ENGINES[engine] = long_reads
    side = Session(bind=long_reads, future=True)
    try:
        yield side
    finally:
        side.close()


def engine_of(session: Session) -> Engine:
    """The engine a session runs on (bound to it, or to one of its connections)."""
    bind = session.get_bind()
    return bind.engine if isinstance(bind, Connection) else bind
