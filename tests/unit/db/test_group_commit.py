"""Driver-level write transactions and group commit, on SQLite and PostgreSQL.

Rows written on the driver's cursor must be the rows the ORM writes; writes
asked for at the same time must share transactions and still each get their
own outcome; a failure must leave nothing of the write that failed.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta, timezone

import gevent
import gevent.event
import pytest
from sqlalchemy import column, event, func, insert, select, table, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from galaxy_express import db
from galaxy_express.core.errors import DependencyUnavailable
from galaxy_express.db import group_commit as group_commit_module
from galaxy_express.db.group_commit import group_commit
from galaxy_express.delivery.models import Package, PackageCounter
from tests.support import new_id, wait_until
from tests.support import sqlite_engine as _engine

STAMP = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def _package_row(package_id: str) -> dict[str, object]:
    return {
        "package_id": package_id,
        "sender_id": "s",
        "recipient_id": "r",
        "package_type": "personal",
        "timestamp": STAMP.astimezone(timezone(timedelta(hours=2))),  # stored as UTC
        "subject": "Hello",
        "body": None,
        "status": "delivered",
        "reason": None,
        "processed_at": STAMP,
    }


def _count_transactions(engine) -> list[int]:
    """Driver transactions each take one connection from the pool."""
    checkouts = [0]

    @event.listens_for(engine, "checkout")
    def _counted(*_args) -> None:
        checkouts[0] += 1

    return checkouts


def _stored_counter(engine, name: str) -> int:
    with engine.connect() as connection:
        total = connection.execute(
            select(func.coalesce(func.sum(PackageCounter.value), 0)).where(
                PackageCounter.name == name
            )
        ).scalar()
    return int(total)


# ---- Driver transactions ------------------------------------------------------------


def test_a_driver_written_row_is_the_row_the_orm_writes(database_url) -> None:
    engine = _engine(database_url)
    by_driver, by_orm = new_id("driver"), new_id("orm")
    with Session(engine) as session, db.driver_transaction(session) as transaction:
        assert transaction.execute(insert(Package.__table__), _package_row(by_driver)) == 1
    with Session(engine) as session, db.unit_of_work(session, write=True):
        session.execute(insert(Package.__table__), _package_row(by_orm))

    with Session(engine) as session:
        driver_row, orm_row = (session.get(Package, key) for key in (by_driver, by_orm))
        assert driver_row is not None
        assert orm_row is not None
        assert driver_row.timestamp == STAMP
        assert driver_row.timestamp.tzinfo is not None
        assert driver_row.processed_at == orm_row.processed_at == STAMP
        # As stored, too: SQLite compares datetimes as text, so the format must match.
        stored = session.execute(
            text("SELECT package_id, timestamp FROM packages WHERE package_id IN (:a, :b)"),
            {"a": by_driver, "b": by_orm},
        ).all()
    assert len({str(stamp) for _, stamp in stored}) == 1


def test_a_driver_transaction_reads_its_own_writes_and_rolls_back_on_error(database_url) -> None:
    engine = _engine(database_url)
    package_id = new_id("p")
    seen = []

    def write_then_fail() -> None:
        with Session(engine) as session, db.driver_transaction(session) as transaction:
            transaction.execute(insert(Package.__table__), _package_row(package_id))
            query = select(Package.subject, Package.timestamp).where(
                Package.package_id == package_id
            )
            seen.append(transaction.first(query, {}))
            raise RuntimeError("after the insert")

    with pytest.raises(RuntimeError):
        write_then_fail()

    assert seen == [("Hello", STAMP)]
    # Typed as the ORM types them: an aware datetime, whatever the driver stored.
    assert seen[0].timestamp.tzinfo is not None
    with Session(engine) as session:
        assert session.get(Package, package_id) is None


def test_postgresql_prepares_each_statement_once_per_connection(postgres_database) -> None:
    engine = _engine(postgres_database)
    prepared = select(column("name"), column("statement")).select_from(
        table("pg_prepared_statements")
    )
    seen = []
    for _ in range(3):
        with Session(engine) as session, db.driver_transaction(session) as transaction:
            assert transaction.execute(insert(Package.__table__), _package_row(new_id("p"))) == 1
            seen.append(sorted(transaction.all(prepared, {})))
    engine.dispose()

    # The pool hands the same connection back: the insert (and this query) were
    # prepared by the first transaction and only executed by the next ones.
    assert seen[0] == seen[1] == seen[2]
    inserts = [name for name, sql in seen[0] if sql.startswith("PREPARE ge_") and "INSERT" in sql]
    assert len(inserts) == 1


def test_a_statement_the_database_refuses_is_a_database_error_not_an_outage(
    database_url,
) -> None:
    engine = _engine(database_url)
    package_id = new_id("p")
    row = _package_row(package_id) | {"sender_id": None}  # NOT NULL
    with (
        pytest.raises(DBAPIError) as raised,
        Session(engine) as session,
        db.driver_transaction(session) as transaction,
    ):
        transaction.execute(insert(Package.__table__), row)
    assert not isinstance(raised.value, DependencyUnavailable)


def test_a_sqlite_lock_held_past_the_busy_timeout_is_an_outage(sqlite_url) -> None:
    engine = _engine(sqlite_url, busy_timeout_ms=100)
    other_process = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")
    try:
        with (
            pytest.raises(DependencyUnavailable),
            Session(engine) as session,
            db.driver_transaction(session),
        ):
            pass
    finally:
        other_process.execute("COMMIT")
        other_process.close()


# ---- Group commit -------------------------------------------------------------------


def _add_to_counter(name: str, result: str):
    def write(transaction: db.DriverTransaction) -> str:
        db.increment_counters(transaction, PackageCounter.__table__, {name: 1})
        return result

    return write


def test_concurrent_writes_share_transactions_and_each_gets_its_own_result(
    database_url,
) -> None:
    engine = _engine(database_url)
    transactions = _count_transactions(engine)
    name = f"delivered:{new_id('t')}"

    def send(number: int) -> str:
        with Session(engine) as session:
            return group_commit(session, _add_to_counter(name, f"result {number}"))

    writers = [gevent.spawn(send, number) for number in range(40)]
    gevent.joinall(writers, timeout=30, raise_error=True)

    assert [writer.value for writer in writers] == [f"result {n}" for n in range(40)]
    assert _stored_counter(engine, name) == 40
    assert transactions[0] < 40 / 4


def test_a_lone_write_commits_at_once_in_its_own_transaction(database_url) -> None:
    engine = _engine(database_url)
    transactions = _count_transactions(engine)
    name = f"delivered:{new_id('t')}"
    with Session(engine) as session:
        assert group_commit(session, _add_to_counter(name, "done")) == "done"
    assert transactions[0] == 1
    assert _stored_counter(engine, name) == 1


def test_a_failing_write_fails_alone_and_leaves_nothing(database_url) -> None:
    engine = _engine(database_url)
    name = f"delivered:{new_id('t')}"
    bad = f"dropped:{new_id('bad')}"

    def failing(transaction: db.DriverTransaction) -> str:
        db.increment_counters(transaction, PackageCounter.__table__, {bad: 1})
        raise ValueError("a bug in one write")

    def send(number: int) -> str:
        with Session(engine) as session:
            if number == 5:
                return group_commit(session, failing)
            return group_commit(session, _add_to_counter(name, f"result {number}"))

    writers = [gevent.spawn(send, number) for number in range(12)]
    gevent.joinall(writers, timeout=30)

    assert isinstance(writers[5].exception, ValueError)
    assert [w.value for n, w in enumerate(writers) if n != 5] == [
        f"result {n}" for n in range(12) if n != 5
    ]
    assert _stored_counter(engine, name) == 11
    assert _stored_counter(engine, bad) == 0


def test_writes_waiting_for_another_process_lock_join_one_transaction(sqlite_url) -> None:
    engine = _engine(sqlite_url)
    transactions = _count_transactions(engine)
    name = f"delivered:{new_id('t')}"
    other_process = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")

    def send() -> str:
        with Session(engine) as session:
            return group_commit(session, _add_to_counter(name, "done"))

    writers = [gevent.spawn(send)]
    committer = wait_until(lambda: group_commit_module._committers.get(engine))
    assert committer is not None
    wait_until(lambda: committer._leading)  # the first leads and waits for the lock
    writers += [gevent.spawn(send) for _ in range(9)]
    wait_until(lambda: len(committer._waiting) == 10)  # the rest queue behind it
    other_process.execute("COMMIT")
    other_process.close()
    gevent.joinall(writers, timeout=30, raise_error=True)

    assert _stored_counter(engine, name) == 10
    assert transactions[0] <= 2


def test_counters_are_summed_and_taken_in_one_order_so_transactions_cannot_deadlock(
    database_url,
) -> None:
    """Two transactions adding to the same counters in opposite orders both commit.

    Were the rows locked as each write asks (x then y, and y then x), each
    would wait for the other: PostgreSQL aborts one after a second.
    """
    engine = _engine(database_url)
    first, second = f"delivered:{new_id('x')}", f"delivered:{new_id('y')}"

    def add(names: list[str]) -> None:
        with Session(engine) as session, db.driver_transaction(session) as transaction:
            for name in names:
                for _ in range(5):
                    db.increment_counters(transaction, PackageCounter.__table__, {name: 1})
                gevent.sleep(0.05)  # let the other transaction take its turn

    writers = [gevent.spawn(add, [first, second]), gevent.spawn(add, [second, first])]
    gevent.joinall(writers, timeout=30, raise_error=True)

    assert (_stored_counter(engine, first), _stored_counter(engine, second)) == (10, 10)
    with engine.connect() as connection:
        rows = connection.execute(
            select(func.count()).where(PackageCounter.name.in_([first, second]))
        ).scalar_one()
    assert rows <= 4  # one upsert per counter per transaction, not one per addition


def test_writes_queued_behind_a_lock_timeout_fail_together_not_one_after_another(
    sqlite_url,
) -> None:
    engine = _engine(sqlite_url, busy_timeout_ms=200)
    other_process = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")

    def send() -> str:
        with Session(engine) as session:
            return group_commit(session, _add_to_counter("delivered:personal", "done"))

    started = time.monotonic()
    writers = [gevent.spawn(send) for _ in range(6)]
    gevent.joinall(writers, timeout=30)
    waited = time.monotonic() - started
    other_process.execute("COMMIT")
    other_process.close()

    assert all(isinstance(writer.exception, DependencyUnavailable) for writer in writers)
    assert waited < 0.2 * 3  # one busy timeout, not six in a row


def test_a_leader_killed_mid_batch_fails_the_batch_and_frees_the_lead(sqlite_url) -> None:
    engine = _engine(sqlite_url)
    name = f"delivered:{new_id('t')}"

    in_slow = gevent.event.Event()

    def slow(transaction: db.DriverTransaction) -> str:
        db.increment_counters(transaction, PackageCounter.__table__, {name: 1})
        in_slow.set()
        gevent.sleep(10)  # killed (a server shutting down) while its batch is open
        return "never"

    def send(write) -> str:
        with Session(engine) as session:
            return group_commit(session, write)

    leader = gevent.spawn(send, slow)
    followers = [gevent.spawn(send, _add_to_counter(name, "done")) for _ in range(4)]
    assert in_slow.wait(5), "the leader's batch never ran"
    # The batch was taken before `slow` ran: all five are in it, none left waiting.
    assert not group_commit_module._committers[engine]._waiting
    leader.kill()
    gevent.joinall(followers, timeout=5)

    assert all(isinstance(f.exception, DependencyUnavailable) for f in followers)
    assert _stored_counter(engine, name) == 0  # the batch rolled back whole
    assert send(_add_to_counter(name, "after")) == "after"  # nobody holds the lead
    assert _stored_counter(engine, name) == 1
