"""Group commit: concurrent writes of one process share a transaction.

A send costs SQLite far more to begin and commit (taking the write lock,
appending the changed pages to the WAL) than to run its few statements, and
with several processes every lock hand-off costs each of them again. So the
writes that requests of one process ask for at the same time run in one
transaction: the first to arrive leads, runs every write waiting by then,
commits once, and hands the lead to the next waiting request. Under load a
worker commits dozens of packages at a time; alone, a write commits at once.

Each request still gets its own outcome: a write that raises makes the batch
roll back and every write of it run again alone, so one bad write can't undo
or fail the others (a write alone that lost a deadlock runs once more too).
The writes must therefore be safe to run again (they see a rolled-back
database) and keep their side effects (metrics, Redis) for after.

On PostgreSQL each statement is a round trip to the server, so a batch of 60
sends, each running its own few statements, cost hundreds of them. A write
that is ``Joinable`` can run together with the batch's other writes of its
kind: the leader hands them all to its kind's ``run_all``, which runs one
statement per table for them all. If that fails, every write of the batch runs
again alone, as after any failure. SQLite runs each write by itself: its
statements are calls in the process, and cost nothing to make one by one.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from galaxy_express.core.errors import DependencyUnavailable
from galaxy_express.db.driver import DriverTransaction, driver_transaction
from galaxy_express.db.engine import engine_of
from galaxy_express.db.unit_of_work import in_request_transaction

T = TypeVar("T")

# Writes run per transaction at most: a batch blocks its process (SQLite runs in
# C, without yielding) for about this many times 50 microseconds. Above the
# requests one worker has in flight under load, or those left over would wait
# for the next batch: at 32, a worker with 35 of 64 connections had a p99 of
# twice its p50.
MAX_BATCH = 128


class Joinable(Protocol):
    """A write that can run together with the other writes of its kind (its class).

    Called, it runs alone, as any write; ``run_all`` runs several of its kind
    (``writes``, in the batch's order) in one go and returns their results in
    that order: exactly what each would have returned alone, one after another.
    """

    def __call__(self, transaction: DriverTransaction) -> Any: ...

    @classmethod
    def run_all(cls, transaction: DriverTransaction, writes: Sequence[Any]) -> list[Any]: ...


def group_commit(session: Session, write: Callable[[DriverTransaction], T]) -> T:
    """Run ``write`` in a write transaction shared with this process's concurrent writes.

    Returns what ``write`` returned, once its transaction has committed; raises
    what it raised (or ``DependencyUnavailable``), with nothing of it kept.
    """
    if in_request_transaction(session):
        # Under an idempotency key the write joins the request's own transaction,
        # which commits the key's answer too; it can't share a batch's.
        with driver_transaction(session) as transaction:
            return write(transaction)
    engine = engine_of(session)
    committer = _committers.get(engine)
    if committer is None:
        committer = _committers.setdefault(engine, _GroupCommitter())
    return committer.run(session, write)


class _Write(Generic[T]):
    """One request's write and, once its transaction has ended, its outcome."""

    def __init__(self, write: Callable[[DriverTransaction], T]) -> None:
        self.write = write
        self.wake = threading.Event()
        self.done = False
        self._result: Any = None
        self._error: BaseException | None = None

    def succeed(self, result: T) -> None:
        self._result, self.done = result, True

    def fail(self, error: BaseException) -> None:
        self._error, self.done = error, True

    def outcome(self) -> T:
        if self._error is not None:
            raise self._error
        return self._result


class _GroupCommitter:
    """The batches of one engine (one process's database): one leader at a time."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()  # gevent's in the servers; a thread lock elsewhere
        self._waiting: deque[_Write[Any]] = deque()
        self._leading = False

    def run(self, session: Session, write: Callable[[DriverTransaction], T]) -> T:
        mine = _Write(write)
        with self._mutex:
            self._waiting.append(mine)
        while True:
            with self._mutex:
                if mine.done:
                    return mine.outcome()
                lead = not self._leading
                self._leading = True
            if lead:
                self._lead(session, mine)
            else:
                mine.wake.wait()
                mine.wake.clear()

    def _lead(self, session: Session, mine: _Write[Any]) -> None:
        try:
            self._gather()
            self._commit_waiting(session, mine)
        finally:
            with self._mutex:
                self._leading = False
                successor = self._waiting[0] if self._waiting else None
            if successor is not None:
                successor.wake.set()

    def _commit_waiting(self, session: Session, mine: _Write[Any]) -> None:
        batch: list[_Write[Any]] = []
        try:
            try:
                with driver_transaction(session) as transaction:
                    # Taken once the write lock is held: whatever arrived while
                    # waiting for it joins this transaction.
                    batch = self._take_batch()
                    results = _run_batch(transaction, batch)
            except Exception as error:
                if not batch:
                    # It never began (the database is down, or another process held
                    # the lock past the busy timeout): the writes waiting meanwhile
                    # would each wait as long again, one after another; they fail
                    # now, as they would have waiting side by side.
                    batch = self._take_batch()
                    for write in batch:
                        write.fail(error)
                elif len(batch) == 1 and not _lost_a_lock_race(error):
                    batch[0].fail(error)
                else:
                    self._run_alone(session, batch)
            else:
                for write, result in zip(batch, results, strict=True):
                    write.succeed(result)
        finally:
            # Only when the leader itself was killed (shutdown) is a write left
            # without an outcome: the others must not wait for it forever.
            if not batch:
                self._withdraw(mine)
            for write in batch:
                if not write.done:
                    write.fail(DependencyUnavailable("the write was interrupted; retry"))
                if write is not mine:
                    write.wake.set()

    def _gather(self) -> None:
        """Let the requests that are ready get as far as asking to write.

        SQLite never yields, so nothing could join a batch started at once.
        Each pause lets every ready greenlet run until it waits (time.sleep is
        gevent's in the servers); while a pause brings new writes, those that
        became ready meanwhile get another, or they would wait a whole batch.
        """
        while True:
            waiting = len(self._waiting)
            time.sleep(0)
            if len(self._waiting) in (waiting, 0) or len(self._waiting) >= MAX_BATCH:
                return

    def _take_batch(self) -> list[_Write[Any]]:
        with self._mutex:
            count = min(len(self._waiting), MAX_BATCH)
            return [self._waiting.popleft() for _ in range(count)]

    def _withdraw(self, write: _Write[Any]) -> None:
        with self._mutex:
            if write in self._waiting:
                self._waiting.remove(write)

    @staticmethod
    def _run_alone(session: Session, batch: list[_Write[Any]]) -> None:
        """After a failed batch: each write in its own transaction, its own outcome."""
        for write in batch:
            try:
                with driver_transaction(session) as transaction:
                    result = write.write(transaction)
            except Exception as error:
                write.fail(error)
            else:
                write.succeed(result)


def _run_batch(transaction: DriverTransaction, batch: list[_Write[Any]]) -> list[Any]:
    """The batch's results in its order: on PostgreSQL, each kind of joinable write
    together (first: their rows are locked in the order of their keys), then the
    others one by one; on SQLite, every write by itself, in order."""
    if transaction.dialect.name != "postgresql":
        return [write.write(transaction) for write in batch]
    results: list[Any] = [None] * len(batch)
    kinds: dict[type[Joinable], list[int]] = {}  # a Joinable class: its writes
    alone: list[int] = []
    for index, write in enumerate(batch):
        kind: Any = type(write.write)
        # What isinstance(write.write, Joinable) would ask, without a runtime
        # protocol's walk of its attributes for each of a batch's writes.
        if hasattr(kind, "run_all"):
            kinds.setdefault(kind, []).append(index)
        else:
            alone.append(index)
    for joinable, indexes in kinds.items():
        together = joinable.run_all(transaction, [batch[i].write for i in indexes])
        for index, result in zip(indexes, together, strict=True):
            results[index] = result
    for index in alone:
        results[index] = batch[index].write(transaction)
    return results


def _lost_a_lock_race(error: BaseException) -> bool:
    """Whether PostgreSQL rolled the transaction back to break a deadlock (or a
    serialization failure): the same write alone, run again, normally succeeds.

    Two transactions inserting some of the same package ids in different orders
    (a batch and the sends a group commit gathered in another process) can wait
    for each other; PostgreSQL then aborts one of them.
    """
    cause = error.__cause__ or error
    return getattr(cause, "pgcode", None) in _LOCK_RACE_CODES


_LOCK_RACE_CODES = ("40P01", "40001")  # deadlock_detected, serialization_failure

_committers: weakref.WeakKeyDictionary[Engine, _GroupCommitter] = weakref.WeakKeyDictionary()
