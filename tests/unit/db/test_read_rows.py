"""``db.driver.read_rows`` reads what ``Session.execute`` reads, on both databases.

The list pages read their rows from the driver's cursor: the values must be
the ORM's (aware UTC timestamps, NULLs, integers), the statement's own bound
values (LIMIT) must still apply, and a driver error must come out as
SQLAlchemy's, so a unit of work still tells an outage from a bad statement.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, create_engine, event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from galaxy_express.db.driver import read_rows
from galaxy_express.runtime.tables import Package
from tests.support import new_id


def _package(package_id: str, at: datetime, subject: str | None) -> dict[str, object]:
    return {
        "package_id": package_id,
        "sender_id": "s",
        "recipient_id": "r-read-rows",
        "package_type": "personal",
        "timestamp": at,
        "subject": subject,
        "body": None if subject is None else "b",
        "status": "delivered",
        "reason": None,
        "processed_at": at,
    }


def test_rows_are_the_orms_rows(database_url: str) -> None:
    engine = create_engine(database_url, future=True)
    recipient = new_id("r")
    rows = [
        _package(new_id("p"), datetime(2142, 1, 1, 12, 0, 0, 123456, tzinfo=UTC), "hi"),
        _package(new_id("p"), datetime(2142, 1, 2, tzinfo=UTC), None),
        _package(new_id("p"), datetime(1970, 1, 1, tzinfo=UTC), "x"),
    ]
    for row in rows:
        row["recipient_id"] = recipient
    with Session(engine) as session:
        session.execute(Package.__table__.insert(), rows)
        session.commit()
    table = Package.__table__
    statement = (
        select(*table.columns)
        .where(table.c.recipient_id == bindparam("recipient_id"))
        .order_by(table.c.timestamp)
        .limit(2)
    )
    with Session(engine) as session:
        expected = [tuple(row) for row in session.execute(statement, {"recipient_id": recipient})]
        found = read_rows(session, statement, {"recipient_id": recipient})
    assert [tuple(row) for row in found] == expected
    assert len(found) == 2  # the statement's own LIMIT
    assert found[0].timestamp == datetime(1970, 1, 1, tzinfo=UTC)
    assert found[1].timestamp.tzinfo is UTC
    assert found[1].timestamp.microsecond == 123456
    assert found[1].subject == "hi"
    assert found[1].reason is None
    engine.dispose()


def test_a_driver_error_comes_out_as_sqlalchemys(database_url: str) -> None:
    engine = create_engine(database_url, future=True)
    statement = select(text("*")).select_from(text("no_such_table"))
    with Session(engine) as session, pytest.raises(DBAPIError):
        read_rows(session, statement, {})
    engine.dispose()


def test_listeners_of_the_engines_statements_still_see_them(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url, future=True)
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    statement = select(Package.__table__.c.package_id).limit(1)
    with Session(engine) as session:
        assert read_rows(session, statement, {}) == []
    assert any("FROM packages" in sql for sql in seen)
    engine.dispose()
