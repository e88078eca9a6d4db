"""Real reporter processes: two at once, a restart, one SIGKILLed mid-window; every task
reported exactly once, every file written once.

What is observed is what an operator can observe: the ``report_windows`` table (who
claimed each window, and whether it is written) and the files, every write of which
the kernel reports (inotify; tests.support.folder_writes) with the process that wrote
it. Waits are on that state, bounded; no sleep stands for "long enough".
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, update

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.core import clock
from galaxy_express.db import unit_of_work
from galaxy_express.reports.models import CLAIMED, WRITTEN, ReportWindow
from galaxy_express.reports.runner import MIN_LEASE, report_file_name
from galaxy_express.tasks.service import add_task
from tests.conftest import ROOT, TEST_CONFIG, load_app_config
from tests.support import wait_until
from tests.support.folder_writes import FolderWrites

pytestmark = pytest.mark.slow  # starts processes

INTERVAL_SECONDS = 1


class Reporters:
    """Reporter processes as ``make reports`` runs them, on one database and folder."""

    def __init__(self, database_url: str, redis_url: str, folder: Path, **env: str) -> None:
        self.env = (
            os.environ
            | env
            | {
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "REPORTS_DIR": str(folder),
                "REPORT_INTERVAL_SECONDS": str(INTERVAL_SECONDS),
            }
        )
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, count: int) -> list[subprocess.Popen[bytes]]:
        script = Path(sys.executable).parent / "baseplate-script"
        argv = [str(script), str(TEST_CONFIG), "galaxy_express.runtime.reporter:run"]
        started = [subprocess.Popen(argv, cwd=ROOT, env=self.env) for _ in range(count)]
        self.processes += started
        return started

    def stop(self, processes: list[subprocess.Popen[bytes]]) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            assert process.wait(timeout=30) == 0, "stopped cleanly by SIGTERM"

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def name_of(process: subprocess.Popen[bytes]) -> str:
    """The name a reporter process claims windows under (runtime.reporter.run)."""
    return f"{socket.gethostname()}:{process.pid}"


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[tuple[Path, FolderWrites]]:
    reports = tmp_path / "reports"
    reports.mkdir(mode=0o750)
    writes = FolderWrites(reports)
    try:
        yield reports, writes
    finally:
        writes.close()


class Tasks:
    """Creates tasks, one a call, as a client would, and remembers them."""

    def __init__(self, app_config: dict[str, str]) -> None:
        self.baseplate, _ = make_baseplate(app_config)
        self.created: list[tuple[str, datetime]] = []

    def create_one(self) -> bool:
        """Always False, so ``until`` can chain the condition after it."""
        with (
            self.baseplate.server_context("test") as context,
            unit_of_work(context.db, write=True) as session,
        ):
            task = add_task(session, {"name": "job"}, owner_id="crew")
            self.created.append((task.id, task.created_at))
        return False

    def until(self, condition: Callable[[], Any], seconds: float = 30, what: str = "") -> Any:
        """Create a task every poll until ``condition`` holds (the traffic goes on)."""
        return wait_until(
            lambda: self.create_one() or condition(), seconds=seconds, interval=0.15, what=what
        )


def windows(database_url: str) -> list[Any]:
    engine = create_engine(database_url, future=True)
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(ReportWindow).order_by(ReportWindow.start)))
    finally:
        engine.dispose()


def written_through(database_url: str) -> datetime | None:
    """The end of the latest written window."""
    ends = [row.end for row in windows(database_url) if row.status == WRITTEN]
    return max(ends, default=None)


def written_after(database_url: str, instant: datetime) -> bool:
    end = written_through(database_url)
    return end is not None and end > instant


def reported_task_ids(folder: Path) -> list[str]:
    reported: list[str] = []
    for path in sorted(folder.glob("task_report_crew_*.json")):
        report: dict[str, Any] = json.loads(path.read_text())
        reported.extend(task["id"] for task in report["created"])
    return reported


def assert_every_task_reported_once(
    database_url: str, folder: Path, writes: FolderWrites, tasks: Tasks
) -> list[Any]:
    """The invariants of any run; the windows, for the caller's own checks."""
    rows = windows(database_url)
    assert rows, "the reporters wrote no window"
    assert all(row.status == WRITTEN for row in rows)
    assert all(later.start == earlier.end for earlier, later in itertools.pairwise(rows))

    seen = writes.writes()
    assert seen, "no file was written"
    twice = [name for name, count in Counter(w.name for w in seen).items() if count > 1]
    assert not twice, f"files written more than once: {twice}"
    claimant = {report_file_name("crew", row.start, row.end): row.claimed_by for row in rows}
    for write in seen:
        writer = f"{socket.gethostname()}:{writes.writers_pid(write)}"
        assert claimant[write.name] == writer, "each file written by its window's claimant"

    reported = reported_task_ids(folder)
    assert len(reported) == len(set(reported)), "no task in two windows"
    # The first window is the one that closed last when a reporter first ran.
    closed = {task_id for task_id, at in tasks.created if rows[0].start <= at < rows[-1].end}
    assert set(reported) == closed, "every task of a written window, and no other"
    assert not list(folder.glob(".*.tmp")), "no partial files left"
    return rows


def test_windows_stay_contiguous_and_each_task_is_reported_once(
    app_config: dict[str, str], database_url: str, folder: tuple[Path, FolderWrites]
) -> None:
    reports, writes = folder
    reporters = Reporters(database_url, app_config["redis.url"], reports)
    tasks = Tasks(app_config)
    try:
        both = reporters.start(2)
        names = {name_of(process) for process in both}
        wait_until(lambda: windows(database_url), seconds=60, what="a reporter started")
        tasks.until(
            lambda: (
                len({r.claimed_by for r in windows(database_url) if r.status == WRITTEN} & names)
                == 2
            ),
            what="both reporters wrote windows",
        )
        reporters.stop(both)
        stopped_at = clock.now()
        # Nobody reports for two windows: the restart must catch up.
        tasks.until(lambda: (clock.now() - stopped_at).total_seconds() > 2 * INTERVAL_SECONDS)
        restarted = reporters.start(1)
        since_restart = clock.now()
        tasks.until(
            lambda: written_after(database_url, since_restart),
            what="the restarted reporter caught up",
        )
        last_task = tasks.created[-1][1]
        wait_until(lambda: written_after(database_url, last_task), seconds=30, what="all reported")
        reporters.stop(restarted)
    finally:
        reporters.kill_all()

    rows = assert_every_task_reported_once(database_url, reports, writes, tasks)
    assert len({row.claimed_by for row in rows}) == 3, "three processes, three names"
    assert len(tasks.created) > 20


def test_a_reporter_killed_mid_window_is_taken_over_and_the_window_written_once(
    sqlite_url: str, redis_url: str, tmp_path: Path, folder: tuple[Path, FolderWrites]
) -> None:
    """SIGKILLed holding a claim, files not yet written; its lease lapses; the other
    reporter takes the window over and writes it, once (tests/crash_hook kills, on SQLite)."""
    reports, writes = folder
    flag = tmp_path / "kill-at-statement"
    hook = {"PYTHONPATH": str(ROOT / "tests" / "crash_hook"), "GE_TEST_KILL_AT_SQL_FLAG": str(flag)}
    reporters = Reporters(sqlite_url, redis_url, reports, **hook)
    tasks = Tasks(load_app_config(**{"db.url": sqlite_url, "redis.url": redis_url}))
    try:
        pair = reporters.start(2)
        wait_until(lambda: windows(sqlite_url), seconds=60, what="a reporter started")
        tasks.until(lambda: written_through(sqlite_url), what="a first window written")
        # The next window's writer dies as it starts reading the window's tasks: its
        # claim committed, no file of it written.
        flag.write_text("FROM tasks")
        victim = tasks.until(
            lambda: next((p for p in pair if p.poll() is not None), None), what="a reporter died"
        )
        survivor = next(process for process in pair if process is not victim)
        held = [row for row in windows(sqlite_url) if row.claimed_by == name_of(victim)]
        stuck = next(row for row in held if row.status == CLAIMED)
        age_claim(sqlite_url, stuck.start)  # as if its lease (MIN_LEASE) ran out
        wait_until(
            lambda: (
                next(r for r in windows(sqlite_url) if r.start == stuck.start).status == WRITTEN
            ),
            seconds=30,
            what="the stuck window taken over and written",
        )
        last_task = tasks.created[-1][1]
        wait_until(lambda: written_after(sqlite_url, last_task), seconds=30, what="all reported")
        reporters.stop([survivor])
    finally:
        reporters.kill_all()

    assert victim.returncode == -signal.SIGKILL
    assert not flag.exists()
    rows = assert_every_task_reported_once(sqlite_url, reports, writes, tasks)
    taken = next(row for row in rows if row.start == stuck.start)
    assert taken.claimed_by == name_of(survivor), "the lease was taken over"
    assert taken.files == 1, "the window had activity: its file written, by the survivor"
    victims_writes = [w for w in writes.writes() if writes.writers_pid(w) == victim.pid]
    stuck_file = report_file_name("crew", stuck.start, stuck.end)
    assert stuck_file not in {w.name for w in victims_writes}


def age_claim(database_url: str, start: datetime) -> None:
    """Move a claim back past the lease: what 60 seconds of waiting would do, at once."""
    engine = create_engine(database_url, future=True)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(ReportWindow)
                .where(ReportWindow.start == start)
                .values(claimed_at=clock.now() - 2 * MIN_LEASE)
            )
    finally:
        engine.dispose()
