"""``db.driver.reading``: a read unit of work on a driver connection of its own.

The statistics and the list pages read in these blocks. They must read what a
unit of work reads (committed rows, in one snapshot on SQLite), join a request
transaction (so a keyed request reads its own writes), step aside for whoever
listens to the statements, map outages as units of work do, and refuse a
block that used the Session itself (it would have read outside the block's
transaction).
"""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import bindparam, event, insert, select
from sqlalchemy.orm import Session

from galaxy_express.core.errors import DependencyUnavailable
from galaxy_express.db.driver import read_rows, reading
from galaxy_express.db.unit_of_work import request_transaction, unit_of_work
from galaxy_express.delivery.models import PackageCounter
from tests.support import new_id
from tests.support import sqlite_engine as _engine

COUNTERS = PackageCounter.__table__
VALUE_OF = select(COUNTERS.c.value).where(COUNTERS.c.name == bindparam("name"))


def _add_counter(session: Session, name: str, value: int) -> None:
    with unit_of_work(session, write=True):
        session.execute(insert(COUNTERS), {"name": name, "shard": 0, "value": value})


def test_a_block_reads_committed_rows_and_leaves_the_session_idle(database_url) -> None:
    engine = _engine(database_url)
    name = new_id("counter")
    with Session(engine) as session:
        _add_counter(session, name, 7)
        with reading(session) as reader:
            rows = read_rows(reader, VALUE_OF, {"name": name})
        assert [tuple(row) for row in rows] == [(7,)]
        assert not session.in_transaction()
    engine.dispose()


def test_a_block_reads_one_snapshot_on_sqlite(sqlite_url) -> None:
    engine = _engine(sqlite_url)
    name = new_id("counter")
    other_process = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    with Session(engine) as session:
        _add_counter(session, name, 1)
        with reading(session) as reader:
            before = read_rows(reader, VALUE_OF, {"name": name})
            other_process.execute("UPDATE package_counters SET value = 2 WHERE name = ?", (name,))
            after = read_rows(reader, VALUE_OF, {"name": name})
        assert before == after
        with reading(session) as reader:
            assert read_rows(reader, VALUE_OF, {"name": name})[0].value == 2
    other_process.close()
    engine.dispose()


def test_a_block_in_a_request_transaction_reads_its_writes(database_url) -> None:
    engine = _engine(database_url)
    name = new_id("counter")
    with Session(engine) as session:
        with request_transaction(session):
            session.execute(insert(COUNTERS), {"name": name, "shard": 0, "value": 3})
            with reading(session) as reader:
                rows = read_rows(reader, VALUE_OF, {"name": name})
        assert [row.value for row in rows] == [3]
    engine.dispose()


def test_listeners_of_the_statements_still_see_a_blocks_queries(sqlite_url) -> None:
    engine = _engine(sqlite_url)
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    with Session(engine) as session, reading(session) as reader:
        assert read_rows(reader, VALUE_OF, {"name": "none"}) == []
    assert any("FROM package_counters" in sql for sql in seen)
    engine.dispose()


def test_a_block_that_used_the_session_is_refused(database_url) -> None:
    engine = _engine(database_url)
    with Session(engine) as session:
        with pytest.raises(RuntimeError, match="through the Session"), reading(session):
            session.execute(VALUE_OF, {"name": "none"})
        assert not session.in_transaction()
    engine.dispose()


def test_a_database_that_cannot_be_opened_is_an_outage(tmp_path) -> None:
    engine = _engine(f"sqlite:///{tmp_path}/no-such-folder/galaxy.db")
    with (
        Session(engine) as session,
        pytest.raises(DependencyUnavailable),
        reading(session) as reader,
    ):
        read_rows(reader, VALUE_OF, {"name": "none"})
    engine.dispose()
