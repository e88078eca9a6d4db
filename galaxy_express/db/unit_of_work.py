"""The one way services open a transaction, the fair turn for a pooled connection, outages.

``unit_of_work`` commits on success and rolls back on any error; database
outages and lock time-outs become ``DependencyUnavailable`` (503). The driver
engine (``galaxy_express.db.driver``) shares the turn and the outage rules.

``request_transaction`` is the one exception, for requests under an
idempotency key: the edge opens one write transaction, and every unit of work
of the request joins it as a savepoint (rolled back alone on its errors, as
before), so the key's answer commits with the effects.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool, QueuePool

from galaxy_express.core.errors import DependencyUnavailable
from galaxy_express.db.engine import engine_of

logger = logging.getLogger(__name__)


@contextmanager
def unit_of_work(session: Session, *, write: bool = False) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error.

    Database outages and lock time-outs become ``DependencyUnavailable`` (503,
    Retry-After), and nothing of the unit is left half-written.
    """
    if in_request_transaction(session):
        with _joined(session):
            yield session
        return
    with turn_on_pool(engine_of(session).pool, session):
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


_REQUEST_TRANSACTION = "galaxy_express.request_transaction"
_AFTER_COMMIT = "galaxy_express.after_commit"


@contextmanager
def request_transaction(session: Session) -> Iterator[Session]:
    """One write transaction for a whole request; its units of work join it.

    Committed when the block ends, rolled back on any error (outages become
    ``DependencyUnavailable``). Only the edges open it, for requests under an
    idempotency key: what they write before the end commits with the effects.
    """
    try:
        with unit_of_work(session, write=True):
            # Set once the transaction is open, and kept until it has ended (commit
            # events see it): the units of work run inside join it.
            session.info[_REQUEST_TRANSACTION] = True
            session.info[_AFTER_COMMIT] = []
            yield session
        committed = session.info.pop(_AFTER_COMMIT, [])
    finally:
        session.info.pop(_REQUEST_TRANSACTION, None)
        session.info.pop(_AFTER_COMMIT, None)
    for action in committed:
        run_quietly(action)


def in_request_transaction(session: Session) -> bool:
    """Whether units of work of this session join a ``request_transaction``."""
    return _REQUEST_TRANSACTION in session.info


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run ``action`` once what the caller wrote has committed.

    Called after a unit of work ends: that is its commit, so ``action`` runs at
    once; inside a ``request_transaction`` it waits for the request's commit (and
    never runs if that rolls back). For notifications: a failure is logged only.
    """
    if in_request_transaction(session):
        session.info[_AFTER_COMMIT].append(action)
    else:
        run_quietly(action)


def run_quietly(action: Callable[[], None]) -> None:
    """Run a post-commit action; a failure is logged: the commit stands."""
    try:
        action()
    except Exception:
        logger.warning("an action after a commit failed; the commit stands", exc_info=True)


@contextmanager
def _joined(session: Session) -> Iterator[None]:
    """A unit of work inside a request transaction: a savepoint, rolled back on error."""
    try:
        with session.begin_nested():
            yield
    except BaseException as exc:
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


@contextmanager
def turn_on_pool(pool: Pool, holder: object) -> Iterator[None]:
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


def outage_or(error: DBAPIError) -> Exception:
    return _outage() if _is_unavailable(error) else error


def _outage() -> DependencyUnavailable:
    """What both kinds of unit of work raise when the database is down or locked."""
    return DependencyUnavailable("the database is unavailable or busy; retry later")
