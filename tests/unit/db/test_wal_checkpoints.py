"""In a server, SQLite's WAL is copied back into the database by a thread, not by commits."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import gevent
from sqlalchemy import text

from galaxy_express.db.wal_checkpoints import WORKER_CHECKPOINT_PAGES, checkpoint_in_background
from tests.support import sqlite_engine as _engine

PAGE = 4096


def _write_pages(engine, pages: int) -> None:
    """About ``pages`` pages in one transaction: over SQLite's default 1,000-page checkpoint."""
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS ballast (data BLOB)"))
        for _ in range(pages // 4):
            connection.execute(text("INSERT INTO ballast VALUES (randomblob(:n))"), {"n": 4 * PAGE})


def test_the_background_thread_copies_the_log_the_commits_leave(sqlite_url) -> None:
    engine = _engine(sqlite_url)
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    assert checkpoint_in_background(engine) is not None
    with engine.connect() as connection:
        limit = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert limit == WORKER_CHECKPOINT_PAGES

    size_before = path.stat().st_size
    _write_pages(engine, 2000)
    # The commit itself (SQLite's default would checkpoint past 1,000 pages) copied nothing.
    assert path.stat().st_size < size_before + 1000 * PAGE

    deadline = time.monotonic() + 5
    while path.stat().st_size < size_before + 1500 * PAGE and time.monotonic() < deadline:
        gevent.sleep(0.05)
    assert path.stat().st_size >= size_before + 1500 * PAGE


def test_the_thread_stops_with_its_engine(sqlite_url) -> None:
    engine = _engine(sqlite_url)
    checkpoints = checkpoint_in_background(engine)
    assert checkpoints is not None
    del engine
    gc.collect()
    checkpoints.join(timeout=2)
    assert checkpoints.dead


def test_postgresql_and_memory_databases_have_no_thread(postgres_database) -> None:
    assert checkpoint_in_background(_engine(postgres_database)) is None
    assert checkpoint_in_background(_engine("sqlite://")) is None
