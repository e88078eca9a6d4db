"""Task reports: what happened to a user's tasks in a window [start, end).

A user's tasks are those they own or are assigned to. ``created``,
``completed`` and ``deleted`` hold the tasks whose timestamp of that name falls
in the window; ``open`` holds the tasks created before ``end`` and neither
completed nor deleted before ``end``. The same code answers on demand and
writes the periodic files, and it reads a window in a fixed number of queries
however many users and tasks it holds.

On demand, each list holds at most ``MAX_ITEMS_PER_LIST`` tasks (the first
in its order); ``counts`` still gives every list's full length and
``truncated`` says whether any list was cut. Building yields to the gevent hub
every ``_YIELD_EVERY`` tasks, so a large report never stalls the worker's
other requests. The periodic files hold every task.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import gevent
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from galaxy_express.core.context import ServiceContext
from galaxy_express.db import unit_of_work
from galaxy_express.reports.commands import ReportQuery
from galaxy_express.tasks.models import Task, TaskAssignee
from galaxy_express.tasks.records import TaskRecord
from galaxy_express.tasks.service import assignee_ids_of

CATEGORIES = ("created", "completed", "deleted", "open")
# Bound on ids per IN (...) list, well under SQLite's and PostgreSQL's limits.
_CHUNK = 500
# Tasks per list in an on-demand report: 1,000 tasks per list is about 0.3 MB of JSON.
MAX_ITEMS_PER_LIST = 1000
# How many tasks are filed or rendered between two yields to other greenlets.
_YIELD_EVERY = 50


@dataclass
class TaskReport:
    user_id: str
    start: datetime
    end: datetime
    created: list[TaskRecord] = field(default_factory=list)
    completed: list[TaskRecord] = field(default_factory=list)
    deleted: list[TaskRecord] = field(default_factory=list)
    open: list[TaskRecord] = field(default_factory=list)
    # Full lengths when the lists were cut to MAX_ITEMS_PER_LIST; None when whole.
    totals: dict[str, int] | None = None

    @property
    def truncated(self) -> bool:
        return self.totals is not None and any(
            self.totals[name] > len(getattr(self, name)) for name in CATEGORIES
        )

    def counts(self) -> dict[str, int]:
        if self.totals is not None:
            return dict(self.totals)
        return {name: len(getattr(self, name)) for name in CATEGORIES}


def get_task_report(context: ServiceContext, query: ReportQuery) -> TaskReport:
    """One user's report for any window; an id with no tasks gets an empty report."""
    with unit_of_work(context.db) as session:
        reports = reports_for_users(session, query.start, query.end, [query.user_id])
    return _bounded(reports[query.user_id])


def _bounded(report: TaskReport) -> TaskReport:
    report.totals = {name: len(getattr(report, name)) for name in CATEGORIES}
    for name in CATEGORIES:
        del getattr(report, name)[MAX_ITEMS_PER_LIST:]
    return report


def window_reports(session: Session, start: datetime, end: datetime) -> dict[str, TaskReport]:
    """Reports for every user with task activity in the window (the periodic files)."""
    active = list(session.execute(select(Task).where(_activity_in(start, end))).scalars())
    assignees = assignee_ids_of(session, [task.id for task in active])
    users = {task.owner_id for task in active if task.owner_id} | {
        user for ids in assignees.values() for user in ids
    }
    return reports_for_users(session, start, end, users, active=(active, assignees))


def reports_for_users(
    session: Session,
    start: datetime,
    end: datetime,
    user_ids: Collection[str],
    active: tuple[list[Task], dict[str, list[str]]] | None = None,
) -> dict[str, TaskReport]:
    """The reports of ``user_ids``: a few queries per 500 users, never one per user."""
    reports = {user: TaskReport(user, start, end) for user in user_ids}
    tasks: dict[str, Task] = {}
    if active is None:
        for chunk in _chunks(user_ids):
            statement = select(Task).where(_belongs_to(chunk), _activity_in(start, end))
            tasks.update((task.id, task) for task in _loaded(session, statement))
    else:
        tasks.update((task.id, task) for task in active[0])
    for chunk in _chunks(user_ids):
        statement = select(Task).where(_belongs_to(chunk), _open_at(end))
        tasks.update((task.id, task) for task in _loaded(session, statement))
    assignees = assignee_ids_of(session, list(tasks))
    for index, task in enumerate(tasks.values()):
        cooperate(index)
        record = TaskRecord.from_row(task, assignees.get(task.id, ()))
        owners = {task.owner_id} if task.owner_id else set()
        members = (owners | set(assignees.get(task.id, ()))) & reports.keys()
        for user in members:
            _file_under(reports[user], record)
    for report in reports.values():
        _sort(report)
    return reports


def _loaded(session: Session, statement: Any) -> Iterator[Task]:
    """The statement's tasks, built ``_YIELD_EVERY`` at a time with a yield between.

    Building ORM objects is most of a big report's CPU; fetched all at once it
    would hold the worker for the whole result.
    """
    result = session.execute(statement.execution_options(yield_per=_YIELD_EVERY)).scalars()
    for index, task in enumerate(result):
        cooperate(index)
        yield task


def cooperate(index: int) -> None:
    """Let other greenlets run now and then (a no-op cost outside gevent)."""
    if index and index % _YIELD_EVERY == 0:
        gevent.sleep(0)


def _file_under(report: TaskReport, task: TaskRecord) -> None:
    start, end = report.start, report.end

    def within(instant: datetime | None) -> bool:
        return instant is not None and start <= instant < end

    def before_end(instant: datetime | None) -> bool:
        return instant is not None and instant < end

    if within(task.created_at):
        report.created.append(task)
    if within(task.completed_at):
        report.completed.append(task)
    if within(task.deleted_at):
        report.deleted.append(task)
    if (
        task.created_at < end
        and not before_end(task.completed_at)
        and not before_end(task.deleted_at)
    ):
        report.open.append(task)


def _sort(report: TaskReport) -> None:
    report.created.sort(key=lambda t: (t.created_at, t.id))
    report.completed.sort(key=lambda t: (t.completed_at or t.created_at, t.id))
    report.deleted.sort(key=lambda t: (t.deleted_at or t.created_at, t.id))
    report.open.sort(key=lambda t: (t.created_at, t.id))


def _activity_in(start: datetime, end: datetime) -> Any:
    return or_(
        and_(Task.created_at >= start, Task.created_at < end),
        and_(Task.completed_at >= start, Task.completed_at < end),
        and_(Task.deleted_at >= start, Task.deleted_at < end),
    )


def _open_at(end: datetime) -> Any:
    return and_(
        Task.created_at < end,
        or_(Task.completed_at.is_(None), Task.completed_at >= end),
        or_(Task.deleted_at.is_(None), Task.deleted_at >= end),
    )


def _belongs_to(user_ids: list[str]) -> Any:
    assigned = select(TaskAssignee.task_id).where(TaskAssignee.user_id.in_(user_ids))
    return or_(Task.owner_id.in_(user_ids), Task.id.in_(assigned))


def _chunks(items: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == _CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch
