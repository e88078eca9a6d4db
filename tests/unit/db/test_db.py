"""The database plumbing's performance-minded parts behave as the service needs.

Writers on SQLite wait for another process's lock without stopping their own
process, units of work on SQLite's one connection are served in arrival
order, the compiled upserts keep working per table on both databases, and
statements carry no trace comment unless tracing is on.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import gevent
import gevent.monkey
import psycopg2.extensions
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from galaxy_express import db
from galaxy_express.bootstrap import make_baseplate
from galaxy_express.core.errors import DependencyUnavailable
from galaxy_express.db.sqlite import restore_busy_handler
from galaxy_express.delivery import service
from galaxy_express.delivery.models import PackageCounter
from galaxy_express.http.app import make_wsgi_app
from galaxy_express.runtime.tables import Package
from tests.conftest import load_app_config
from tests.support import new_id
from tests.support import sqlite_engine as _engine


def _package_row(package_id: str) -> dict[str, object]:
    stamp = datetime.now(UTC)
    return {
        "package_id": package_id,
        "sender_id": "s",
        "recipient_id": "r",
        "package_type": "personal",
        "timestamp": stamp,
        "subject": None,
        "body": None,
        "status": "delivered",
        "reason": None,
        "processed_at": stamp,
    }


# ---- SQLite's write lock, taken cooperatively ------------------------------------


def test_a_writer_waits_for_another_process_lock_without_stopping_this_one(sqlite_url) -> None:
    engine = _engine(sqlite_url)
    other_process = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            gevent.sleep(0.01)

    def commit_later(seconds: float) -> None:
        # Not spawn_later: gevent's timers count from its loop's cached clock.
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            gevent.sleep(0.01)
        other_process.execute("COMMIT")

    ticker = gevent.spawn(tick)
    gevent.spawn(commit_later, 0.3)
    started = time.monotonic()
    with Session(engine) as session, db.unit_of_work(session, write=True):
        db.increment_counters(session, PackageCounter.__table__, {"delivered:personal": 1})
    waited = time.monotonic() - started
    ticker.kill()

    assert waited >= 0.25
    # SQLite's own busy handler would have slept in C: no greenlet could run meanwhile.
    assert ticks >= 10
    with engine.connect() as connection:
        assert connection.execute(select(func.sum(PackageCounter.value))).scalar() == 1
    other_process.close()


def test_a_lock_held_past_the_busy_timeout_is_a_503(sqlite_url) -> None:
    engine = _engine(sqlite_url, busy_timeout_ms=100)
    other_process = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")

    with (
        pytest.raises(DependencyUnavailable),
        Session(engine) as session,
        db.unit_of_work(session, write=True),
    ):
        db.increment_counters(session, PackageCounter.__table__, {"delivered:personal": 1})

    other_process.execute("COMMIT")
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(PackageCounter)).scalar() == 0
        # The busy timeout is restored for the connection's later statements.
        timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert timeout == 100
    other_process.close()


def _in_a_real_thread(action: Callable[[], object], after: float) -> Any:
    """Run ``action`` in an OS thread after a pause, even under gevent: SQLite's busy
    handler sleeps in C, where no greenlet could run. Returns a lock held until done."""
    start = gevent.monkey.get_original("_thread", "start_new_thread")
    sleep = gevent.monkey.get_original("time", "sleep")
    done = gevent.monkey.get_original("_thread", "allocate_lock")()
    done.acquire()

    def run() -> None:
        sleep(after)
        try:
            action()
        finally:
            done.release()

    start(run, ())

    class _Done:
        def wait(self, seconds: float) -> bool:
            return bool(done.acquire(timeout=seconds))

    return _Done()


def test_back_to_back_writes_leave_the_busy_handler_off_and_a_read_turns_it_on(
    sqlite_url,
) -> None:
    engine = _engine(sqlite_url, busy_timeout_ms=300)
    ran: list[str] = []
    with engine.connect() as connection:  # the pool's one connection, traced
        raw = cast(sqlite3.Connection, connection.connection.dbapi_connection)
        raw.set_trace_callback(ran.append)

    def write() -> None:
        with Session(engine) as session, db.unit_of_work(session, write=True):
            db.increment_counters(session, PackageCounter.__table__, {"delivered:personal": 1})

    def pragmas() -> list[str]:
        found = [sql for sql in ran if sql.startswith("PRAGMA")]
        ran.clear()
        return found

    write()
    assert pragmas() == ["PRAGMA busy_timeout", "PRAGMA busy_timeout=0"]
    write()
    write()
    assert pragmas() == []
    with engine.connect() as connection:
        # A read (or deferred) transaction waits for locks as configured.
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 300
    assert pragmas() == ["PRAGMA busy_timeout=300", "PRAGMA busy_timeout"]
    write()
    assert pragmas() == ["PRAGMA busy_timeout=0"]

    # Proof that it is on: a deferred transaction that writes while another
    # process holds the lock for a moment waits for it in SQLite's handler.
    other_process = sqlite3.connect(
        sqlite_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
    )
    other_process.execute("BEGIN IMMEDIATE")
    released = _in_a_real_thread(lambda: other_process.execute("COMMIT"), after=0.1)
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM package_counters")
    assert released.wait(5)
    other_process.close()
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(PackageCounter)).scalar() == 0


# ---- Units of work take turns in arrival order ------------------------------------


def test_the_lock_goes_to_waiters_in_arrival_order() -> None:
    turns = db.FirstComeFirstServed()
    served: list[int] = []
    assert turns.acquire("first", timeout=1)

    def wait_and_take(number: int) -> None:
        assert turns.acquire(number, timeout=5)
        served.append(number)
        gevent.sleep(0.001)
        turns.release(number)

    waiters = []
    for number in range(8):
        waiters.append(gevent.spawn(wait_and_take, number))
        gevent.sleep(0.001)  # each is waiting before the next arrives
    # A newcomer arriving as the holder releases must queue behind the waiters.
    turns.release("first")
    late = gevent.spawn(wait_and_take, 99)
    gevent.joinall([*waiters, late], timeout=5)

    assert served == [*range(8), 99]


def test_the_holder_may_take_the_lock_again_and_a_wait_can_time_out() -> None:
    turns = db.FirstComeFirstServed()
    assert turns.acquire("holder", timeout=1)
    assert turns.acquire("holder", timeout=1)  # a nested unit of work of the same session
    turns.release("holder")

    started = time.monotonic()
    assert not turns.acquire("other", timeout=0.05)
    assert time.monotonic() - started >= 0.05

    turns.release("holder")
    assert turns.acquire("other", timeout=0.05)  # the timed-out waiter left no trace


def test_at_most_capacity_hold_places_at_once() -> None:
    places = db.FirstComeFirstServed(capacity=3)
    inside, most = 0, 0

    def work(number: int) -> None:
        nonlocal inside, most
        assert places.acquire(number, timeout=5)
        inside += 1
        most = max(most, inside)
        gevent.sleep(0.005)
        inside -= 1
        places.release(number)

    gevent.joinall([gevent.spawn(work, n) for n in range(12)], timeout=5)

    assert most == 3


def test_nested_units_of_work_of_one_session_do_not_wait_for_themselves(sqlite_url) -> None:
    engine = _engine(sqlite_url)
    # A session waiting for itself would hang: fail in 5 s instead of pytest's 300.
    hang = AssertionError("a nested unit of work waited for itself")
    with gevent.Timeout(5, hang), Session(engine) as session:
        with db.unit_of_work(session), db.unit_of_work(session):
            inner = session.execute(select(1)).scalar_one()
        with db.unit_of_work(session):
            again = session.execute(select(2)).scalar_one()
    assert (inner, again) == (1, 2)


# ---- Compiled upserts, per table, on both databases --------------------------------


def test_upserts_stay_per_table_and_count_exactly(database_url) -> None:
    engine = _engine(database_url)
    package_id = new_id("p")
    with Session(engine) as session, db.unit_of_work(session, write=True):
        assert db.insert_ignoring_conflicts(session, Package.__table__, _package_row(package_id))
        assert not db.insert_ignoring_conflicts(
            session, Package.__table__, _package_row(package_id)
        )
        counter = {"name": "dropped:invalid", "shard": 3, "value": 5}
        assert db.insert_ignoring_conflicts(session, PackageCounter.__table__, counter)
        assert not db.insert_ignoring_conflicts(session, PackageCounter.__table__, counter)
    for _ in range(40):
        with Session(engine) as session, db.unit_of_work(session, write=True):
            db.increment_counters(
                session,
                PackageCounter.__table__,
                {"delivered:personal": 2, "delivered:marketing": 0, "dropped:invalid": 1},
            )

    with engine.connect() as connection:
        query = select(PackageCounter.name, func.sum(PackageCounter.value))
        totals = {row[0]: row[1] for row in connection.execute(query.group_by(PackageCounter.name))}
        assert connection.execute(select(func.count()).select_from(Package)).scalar() == 1
    assert totals == {"delivered:personal": 80, "dropped:invalid": 45}


# ---- No span, and no trace comment, per statement unless tracing is on ------------------


@pytest.mark.parametrize(("tracing", "commented"), [("false", False), ("true", True)])
def test_statements_carry_a_trace_comment_only_when_tracing_is_on(
    sqlite_url, redis_url, tmp_path, tracing, commented
) -> None:
    config = load_app_config(
        **{
            "db.url": sqlite_url,
            "redis.url": redis_url,
            "reports.dir": str(tmp_path),
            "tracing.enabled": tracing,
        }
    )
    baseplate, _ = make_baseplate(config)
    statements: list[str] = []
    context = baseplate.make_context_object()
    span = baseplate.make_server_span(context, "test")
    span.start()
    event.listen(
        context.db.get_bind(),
        "connect",
        lambda dbapi, _record: dbapi.set_trace_callback(statements.append),
    )
    service.get_statistics(context)
    span.finish()

    selects = [s for s in statements if s.startswith("SELECT")]
    assert selects
    assert all(("-- trace:" in s) is commented for s in selects)


def test_the_opentelemetry_request_tween_is_off_without_tracing(app_config) -> None:
    app = make_wsgi_app(app_config)

    assert app.registry.settings["opentelemetry-pyramid.trace_enabled"] is False


# ---- PostgreSQL waits through gevent in gevent-patched processes -------------------------


def test_psycopg2_waits_through_gevent_for_postgresql_only() -> None:
    previous = psycopg2.extensions.get_wait_callback()
    try:
        psycopg2.extensions.set_wait_callback(None)
        db.cooperate_with_gevent("sqlite:///x.db")
        assert psycopg2.extensions.get_wait_callback() is None
        db.cooperate_with_gevent("postgresql://u@127.0.0.1/x")  # pytest runs monkey-patched
        assert psycopg2.extensions.get_wait_callback() is not None
    finally:
        psycopg2.extensions.set_wait_callback(previous)


def test_a_raw_connection_gets_its_busy_handler_back_on_request(sqlite_url) -> None:
    """A PRAGMA run without a BEGIN (the loader's optimize and checkpoint) waits for
    locks once ``restore_busy_handler`` has undone the last BEGIN IMMEDIATE's off."""
    engine = _engine(sqlite_url, busy_timeout_ms=300)
    with Session(engine) as session, db.unit_of_work(session, write=True):
        db.increment_counters(session, PackageCounter.__table__, {"delivered:personal": 1})
    raw = engine.raw_connection()
    try:
        dbapi_connection = cast(sqlite3.Connection, cast(Any, raw).dbapi_connection)
        assert dbapi_connection.execute("PRAGMA busy_timeout").fetchone()[0] == 0
        restore_busy_handler(dbapi_connection)
        assert dbapi_connection.execute("PRAGMA busy_timeout").fetchone()[0] == 300
    finally:
        raw.close()
