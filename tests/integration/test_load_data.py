"""scripts/load_data.py fills a database in bulk and keeps the statistics exact."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from galaxy_express.delivery import service
from galaxy_express.delivery.models import Package
from galaxy_express.inbox.models import InboxEntry
from tests.support.scripts import load_script


def _loader() -> Any:
    return load_script("load_data")


def test_the_loader_tops_up_and_the_statistics_stay_exact(database_url, context) -> None:
    loader = _loader()

    assert loader.load(database_url, 2_500, batch=1_000) == 2_500
    assert loader.load(database_url, 3_000, batch=1_000) == 500
    assert loader.load(database_url, 3_000) == 0

    engine = create_engine(database_url, future=True)
    with engine.connect() as connection:
        by_status = dict(
            connection.execute(select(Package.status, func.count()).group_by(Package.status)).all()
        )
        entries = connection.execute(select(func.count()).select_from(InboxEntry)).scalar()
        hot = connection.execute(
            select(func.count()).where(InboxEntry.recipient_id == loader.Shape.hot_recipient)
        ).scalar()
    with Session(engine) as session:
        stored = session.execute(select(Package).limit(1)).scalars().first()
    engine.dispose()
    statistics = service.get_statistics(context)

    assert by_status == {"delivered": 2_700, "dropped": 300}
    assert statistics.packages_delivered == entries == 2_700
    assert statistics.packages_dropped == statistics.dropped_by_reason["opted_out"] == 300
    assert sum(statistics.delivered_by_type.values()) == 2_700
    assert hot == 300  # a tenth of all packages, all delivered: its inbox grows with the data
    # Rows read back like the service's own (aware UTC timestamps).
    assert stored is not None
    assert stored.timestamp.tzinfo is not None


def test_the_fast_rows_are_the_plain_rows() -> None:
    loader = _loader()
    shape = loader.Shape(recipients=7, senders=3)
    chunk = range(2_870, 2_870 + 6_000)  # across days and the hot recipient's places

    assert loader._packages(chunk, shape, "now") == [
        loader._package(index, shape, "now") for index in chunk
    ]


def test_the_loader_says_to_migrate_a_database_without_tables(tmp_path) -> None:
    loader = _loader()
    url = f"sqlite:///{tmp_path / 'empty.db'}"

    with pytest.raises(SystemExit, match="make migratedb") as stopped:
        loader.load(url, 10)

    assert "empty.db" in str(stopped.value.code)
