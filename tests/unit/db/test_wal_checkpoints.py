"""In a server, SQLite's WAL is copied back into the database by a thread, not by commits."""

from __future__ import annotations

import gc
import itertools
import time
from pathlib import Path

import gevent
from sqlalchemy import text

from galaxy_express.db.wal_checkpoints import (
    WORKER_CHECKPOINT_PAGES,
    checkpoint,
    checkpoint_in_background,
)
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


def test_a_commit_is_not_held_while_the_thread_checkpoints(sqlite_url) -> None:
    """The thread's checkpoint copies a long log while writers go on committing.

    A passive checkpoint takes no write lock: a send that commits meanwhile
    (BEGIN IMMEDIATE, its pages appended to the log) waits for none of the
    copy or its fsyncs. A checkpoint that took the write lock (FULL, RESTART)
    would hold every commit until it ended, and this test would see none.
    """
    engine = _engine(sqlite_url)
    background = checkpoint_in_background(engine)  # the servers' setting: commits don't copy
    assert background is not None
    background.kill()
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    _write_pages(engine, 6000)  # about 24 MB of log for the checkpoint to copy and sync
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS sends (n INTEGER)"))

    times: dict[str, float] = {}

    def timed_checkpoint() -> tuple[int, int]:
        times["began"] = time.monotonic()
        try:
            return checkpoint(path)
        finally:
            times["ended"] = time.monotonic()

    copying = gevent.get_hub().threadpool.spawn(timed_checkpoint)
    commits: list[tuple[float, float]] = []
    deadline = time.monotonic() + 10
    while not copying.ready() and time.monotonic() < deadline:
        began = time.monotonic()
        with engine.connect().execution_options(write=True) as connection, connection.begin():
            connection.execute(text("INSERT INTO sends VALUES (1)"))
        commits.append((began, time.monotonic()))
        gevent.sleep(0)
    log_pages, copied = copying.get(timeout=10)

    assert copied >= 5000
    assert log_pages >= copied
    # Commits went on all through the copy: no stretch of it without one. A
    # checkpoint holding the write lock leaves a gap of about its whole length.
    began, ended = times["began"], times["ended"]
    marks = [began, *(end for start, end in commits if began < start and end < ended), ended]
    longest_gap = max(b - a for a, b in itertools.pairwise(marks))
    assert len(marks) > 2, f"no commit ran while the checkpoint did ({ended - began:.3f} s)"
    assert longest_gap < (ended - began) / 2, (longest_gap, ended - began, len(marks) - 2)
