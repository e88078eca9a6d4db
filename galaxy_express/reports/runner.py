"""The periodic reporter: one JSON file per user with task activity, per window.

Run with ``make reports`` (``python -m galaxy_express.runtime.serve script CONFIG
galaxy_express.runtime.reporter:run``, baseplate-script with the service's logs);
``make run`` starts one. Every ``reports.interval_seconds`` it writes
``task_report_{user_id}_{start}_{end}.json`` into ``reports.dir`` for the
window [start, end) that just closed.

- No gap, no overlap, across restarts: the next window starts where the latest
  recorded one ends (``report_windows``), whatever the interval now is; a
  reporter that was down catches up window by window.
- Each window written once with several reporters: a window is claimed by
  inserting its row, which only one reporter can do. A claim not finished
  within its lease (a reporter killed mid-window) is taken over; one abandoned
  cleanly (SIGTERM, an error) is released at once.
- A file appears whole or not at all: written to a temporary name in the same
  folder, flushed to disk, then renamed. Files are 0640, the folder 0750.
- Housekeeping, every cycle, in bounded batches: report files older than
  ``reports.retention_days`` are deleted, and webhook bodies, deliveries and
  seen webhook-ids past their retention pruned. The loop runs the round it is given (the runtime's
  ``housekeeping_round``, which knows every domain's pruning); ``make prune``
  (``galaxy_express.runtime.reporter:prune``) does one round for operators who run
  no reporter.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from baseplate import Baseplate
from sqlalchemy import func, select, update

from galaxy_express.core import clock
from galaxy_express.core.context import ServiceContext
from galaxy_express.db import insert_ignoring_conflicts, unit_of_work
from galaxy_express.reports.models import CLAIMED, WRITTEN, ReportWindow
from galaxy_express.reports.schemas import encoded_report
from galaxy_express.reports.service import TaskReport, window_reports

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_LEASE = timedelta(seconds=60)
FILE_MODE = 0o640
FOLDER_MODE = 0o750
# Report files deleted per housekeeping round at most: a long-neglected folder
# is emptied over several rounds rather than in one long stall.
PRUNE_FILES_PER_ROUND = 1000


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


class Reporter:
    """Claims due windows and writes their files; safe to run several at once."""

    def __init__(
        self,
        baseplate: Baseplate,
        interval: timedelta,
        folder: Path,
        name: str,
        stopping: threading.Event | None = None,
        housekeeping: Callable[[ServiceContext, Path], object] | None = None,
    ) -> None:
        self.baseplate = baseplate
        self.interval = interval
        self.folder = folder
        self.name = name
        self.lease = max(MIN_LEASE, 4 * interval)
        self.stopping = stopping or threading.Event()
        self._housekeeping = housekeeping
        # The other reporter last said to hold the windows (said once, not every round).
        self._announced_holder: str | None = None

    def run_forever(self) -> None:
        self.folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        logger.info("reporter %s: every %s into %s", self.name, self.interval, self.folder)
        while not self.stopping.is_set():
            if self.write_due_windows():
                self._announced_holder = None
            else:
                self._say_who_holds_the_windows()
            self.housekeeping()
            self.stopping.wait(self._seconds_to_next_boundary())

    def housekeeping(self) -> None:
        """Prune what is past its retention; a failure is logged and retried next round."""
        if self._housekeeping is None:
            return
        try:
            with self._context() as context:
                self._housekeeping(context, self.folder)
        except Exception:
            logger.exception("reporter %s: housekeeping failed", self.name)

    def _say_who_holds_the_windows(self) -> None:
        """Once per change: another reporter writes the windows, so this one stands by."""
        with self._context() as context, unit_of_work(context.db) as session:
            holder = session.execute(
                select(ReportWindow.claimed_by).order_by(ReportWindow.end.desc()).limit(1)
            ).scalar()
        if holder and holder != self.name and holder != self._announced_holder:
            logger.info(
                "reporter %s: another reporter (%s) holds the windows; standing by "
                "to take over if it stops",
                self.name,
                holder,
            )
            self._announced_holder = holder

    def write_due_windows(self) -> list[Window]:
        """Write every window that has closed and nobody else is writing."""
        written: list[Window] = []
        for window in self._stale_claims_taken_over():
            if self.stopping.is_set():
                return written
            written.append(self._write(window))
        while not self.stopping.is_set():
            claimed = self._claim_next()
            if claimed is None:
                break
            written.append(self._write(claimed))
        return written

    def _claim_next(self) -> Window | None:
        """The next window if it has closed and we won it; None when none is due.

        When another reporter wins the race for a window, the next one is tried.
        """
        while True:
            with self._context() as context, unit_of_work(context.db, write=True) as session:
                latest_end = session.execute(select(func.max(ReportWindow.end))).scalar()
                # The very first window is the one that closed last.
                start = latest_end or _aligned(clock.now(), self.interval) - self.interval
                window = Window(start, start + self.interval)
                if window.end > clock.now():
                    return None
                won = insert_ignoring_conflicts(
                    session,
                    ReportWindow.__table__,
                    {
                        "start": window.start,
                        "end": window.end,
                        "status": CLAIMED,
                        "claimed_by": self.name,
                        "claimed_at": clock.now(),
                    },
                )
            if won:
                return window

    def _stale_claims_taken_over(self) -> list[Window]:
        taken = []
        with self._context() as context, unit_of_work(context.db, write=True) as session:
            stale = session.execute(
                select(ReportWindow)
                .where(
                    ReportWindow.status == CLAIMED,
                    ReportWindow.claimed_at < clock.now() - self.lease,
                )
                .order_by(ReportWindow.start)
            ).scalars()
            for row in list(stale):
                result = session.execute(
                    update(ReportWindow)
                    .where(
                        ReportWindow.start == row.start, ReportWindow.claimed_at == row.claimed_at
                    )
                    .values(claimed_by=self.name, claimed_at=clock.now())
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    taken.append(Window(row.start, row.end))
        return taken

    def _write(self, window: Window) -> Window:
        try:
            with self._context() as context, unit_of_work(context.db) as session:
                reports = window_reports(session, window.start, window.end)
            write_report_files(self.folder, reports)
            self._finish(window, len(reports))
        except BaseException:
            logger.exception("reporter %s: window %s abandoned", self.name, window.start)
            self._release(window)
            raise
        # Idle windows (no task activity) are the common case: silent at info.
        level = logging.INFO if reports else logging.DEBUG
        logger.log(level, "reporter: wrote %d reports for %s", len(reports), window.start)
        return window

    def _finish(self, window: Window, files: int) -> None:
        with self._context() as context, unit_of_work(context.db, write=True) as session:
            session.execute(
                update(ReportWindow)
                .where(ReportWindow.start == window.start, ReportWindow.claimed_by == self.name)
                .values(status=WRITTEN, written_at=clock.now(), files=files)
            )

    def _release(self, window: Window) -> None:
        """Expire our claim at once, so the next reporter round (ours or another's) redoes it."""
        with self._context() as context, unit_of_work(context.db, write=True) as session:
            session.execute(
                update(ReportWindow)
                .where(
                    ReportWindow.start == window.start,
                    ReportWindow.claimed_by == self.name,
                    ReportWindow.status == CLAIMED,
                )
                .values(claimed_at=EPOCH)
            )

    def _seconds_to_next_boundary(self) -> float:
        now = clock.now()
        next_end = _aligned(now, self.interval) + self.interval
        return max(0.05, (next_end - now).total_seconds())

    def _context(self) -> AbstractContextManager[ServiceContext]:
        return cast(
            AbstractContextManager[ServiceContext], self.baseplate.server_context("reporter")
        )


def write_report_files(folder: Path, reports: Mapping[str, TaskReport]) -> None:
    """Each report as its own file, atomically (temporary name, fsync, rename)."""
    folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    for report in reports.values():
        name = report_file_name(report.user_id, report.start, report.end)
        temporary = folder / f".{name}.{os.getpid()}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with open(descriptor, "wb") as file:
            file.write(encoded_report(report))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, folder / name)
    _fsync_folder(folder)


def prune_report_files(folder: Path, retention_days: int, *, now: datetime | None = None) -> int:
    """Delete report files (and leftover temporary files) modified over ``retention_days`` ago."""
    if not retention_days or not folder.is_dir():
        return 0
    cutoff = ((now or clock.now()) - timedelta(days=retention_days)).timestamp()
    deleted = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if deleted >= PRUNE_FILES_PER_ROUND:
                break
            ours = entry.name.startswith(("task_report_", ".task_report_"))
            if ours and entry.is_file() and entry.stat().st_mtime < cutoff:
                Path(entry.path).unlink(missing_ok=True)
                deleted += 1
    return deleted


def report_file_name(user_id: str, start: datetime, end: datetime) -> str:
    return f"task_report_{user_id}_{clock.compact(start)}_{clock.compact(end)}.json"


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _aligned(instant: datetime, interval: timedelta) -> datetime:
    """The start of the interval-aligned window that holds ``instant``."""
    seconds = interval.total_seconds()
    return EPOCH + timedelta(seconds=(instant - EPOCH).total_seconds() // seconds * seconds)
