"""Task reports: what happened to a user's tasks in a window [start, end).

A user's tasks are those they own or are assigned to. ``created``,
``completed`` and ``deleted`` hold the tasks whose timestamp of that name falls
in the window; ``open`` holds the tasks created before ``end`` and neither
completed nor deleted before ``end``.

On demand, each list holds at most ``MAX_ITEMS_PER_LIST`` tasks (the first
in its order); ``counts`` still gives every list's full length and
``truncated`` says whether any list was cut. Only the user's tasks' ids and
timestamps are read for all of them (through the owner and assignee indexes,
streamed); the lists are filed and cut here, and only the tasks kept are read
whole. The periodic files hold every task: a window is read in a fixed number
of queries however many users and tasks it holds. Both file tasks with the
same code (``_categories_of``, ``_ORDERS``).

Tasks are read as plain columns, never ORM objects (building and then closing
a session of thousands of them held the worker for tens of milliseconds), and
every loop over rows paces itself (``core.cooperation``): a large report never
stalls the worker's other requests. On demand, reports read through a pool of
their own (``db.long_read_session``), so they never hold the connection the
worker's other requests wait for.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from gevent.lock import BoundedSemaphore
from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from galaxy_express.core.context import ServiceContext
from galaxy_express.core.cooperation import Pacer
from galaxy_express.db import long_read_session, unit_of_work
from galaxy_express.reports.commands import ReportQuery
from galaxy_express.tasks.models import Task, TaskAssignee
from galaxy_express.tasks.records import COLUMN_FIELDS, TaskRecord
from galaxy_express.tasks.service import assignee_ids_of

CATEGORIES = ("created", "completed", "deleted", "open")
# Bound on ids per IN (...) list, well under SQLite's and PostgreSQL's limits.
_CHUNK = 500
# Tasks per list in an on-demand report: 1,000 tasks per list is about 0.3 MB of JSON.
MAX_ITEMS_PER_LIST = 1000
# On-demand reports built at once per worker process (both edges); the others
# queue. Their work is the same, but other requests wait behind two, not ten.
ON_DEMAND = BoundedSemaphore(2)
# On demand, a list is cut back to MAX_ITEMS_PER_LIST whenever this many keys are added.
_CUT_EVERY = 256
# Rows fetched from the database at a time.
_FETCH = 20
# A task's record columns, selected as plain values.
_TASK_COLUMNS = tuple(getattr(Task, name) for name in COLUMN_FIELDS)


@dataclass
class TaskReport:
    user_id: str
    start: datetime
    end: datetime
    created: list[TaskRecord] = field(default_factory=list)
    completed: list[TaskRecord] = field(default_factory=list)
    deleted: list[TaskRecord] = field(default_factory=list)
    open: list[TaskRecord] = field(default_factory=list)
    # Full lengths when the lists were read bounded (on demand); None when whole.
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
    """One user's report for any window; an id with no tasks gets an empty report.

    The user's tasks are read as ids and timestamps first (through the owner and
    the assignee indexes), filed and cut here; only the tasks kept are then read whole.
    """
    pace = Pacer()
    start, end = query.start, query.end
    # Per list, its tasks' sort keys (timestamp, id): plain tuples sort fast, without a key.
    kept: dict[str, list[tuple[datetime, str]]] = {name: [] for name in CATEGORIES}
    totals = dict.fromkeys(CATEGORIES, 0)
    seen: set[str] = set()
    with long_read_session(context.db) as reads, unit_of_work(reads) as session:
        for moment in _moments_of(session, query.user_id, start, end, pace):
            if moment.id in seen:  # owned and assigned to oneself
                continue
            seen.add(moment.id)
            for name in _categories_of(moment, start, end):
                totals[name] += 1
                keys = kept[name]
                keys.append(_ORDERS[name](moment))
                if len(keys) >= MAX_ITEMS_PER_LIST + _CUT_EVERY:
                    _keep_first(keys)
        for keys in kept.values():
            _keep_first(keys)
        ids = {task_id for keys in kept.values() for _, task_id in keys}
        records = _records_of(session, ids, pace)
    report = TaskReport(query.user_id, start, end, totals=totals)
    for name, keys in kept.items():
        getattr(report, name).extend(records[task_id] for _, task_id in keys)
    return report


def _moments_of(
    session: Session, user_id: str, start: datetime, end: datetime, pace: Pacer
) -> Iterator[Row]:
    """Id and timestamps of the user's tasks that may be in a list of the window:
    owned ones, then assigned ones (one may be both). No order: rows stream as read."""
    moments = (Task.id, Task.created_at, Task.completed_at, Task.deleted_at)
    in_window = or_(_activity_in(start, end), _open_at(end))
    owned = select(*moments).where(Task.owner_id == user_id, in_window)
    assigned = (
        select(*moments)
        .join(TaskAssignee, TaskAssignee.task_id == Task.id)
        .where(TaskAssignee.user_id == user_id, in_window)
    )
    yield from _rows(session, owned, pace)
    yield from _rows(session, assigned, pace)


def _keep_first(keys: list[tuple[datetime, str]]) -> None:
    """Cut a list of sort keys to its first MAX_ITEMS_PER_LIST, in order.

    What was kept last time is one sorted run and at most ``_CUT_EVERY`` keys
    follow it, so each sort is a short sort and a merge: linear, not n log n.
    """
    keys.sort()
    del keys[MAX_ITEMS_PER_LIST:]


def _records_of(session: Session, task_ids: Collection[str], pace: Pacer) -> dict[str, TaskRecord]:
    """The records of ``task_ids``, by id, ``_CHUNK`` tasks a query."""
    assignees = _assignees_of(session, task_ids, pace)
    records = {}
    for chunk in _chunks(task_ids):
        for row in _rows(session, select(*_TASK_COLUMNS).where(Task.id.in_(chunk)), pace):
            records[row.id] = TaskRecord.from_row(row, assignees.get(row.id, ()))
    return records


def window_reports(session: Session, start: datetime, end: datetime) -> dict[str, TaskReport]:
    """Reports for every user with task activity in the window (the periodic files)."""
    pace = Pacer()
    active = list(_rows(session, select(*_TASK_COLUMNS).where(_activity_in(start, end)), pace))
    assignees = _assignees_of(session, [task.id for task in active], pace)
    users = {task.owner_id for task in active if task.owner_id} | {
        user for ids in assignees.values() for user in ids
    }
    return reports_for_users(session, start, end, users, active=active)


def reports_for_users(
    session: Session,
    start: datetime,
    end: datetime,
    user_ids: Collection[str],
    active: list[Row] | None = None,
) -> dict[str, TaskReport]:
    """The whole reports of ``user_ids``: a few queries per 500 users, never one per user.

    ``active``: the window's tasks with activity, when already read.
    """
    pace = Pacer()
    reports = {user: TaskReport(user, start, end) for user in user_ids}
    tasks: dict[str, Row] = {}
    if active is None:
        for chunk in _chunks(user_ids):
            statement = select(*_TASK_COLUMNS).where(_belongs_to(chunk), _activity_in(start, end))
            tasks.update((task.id, task) for task in _rows(session, statement, pace))
    else:
        tasks.update((task.id, task) for task in active)
    for chunk in _chunks(user_ids):
        statement = select(*_TASK_COLUMNS).where(_belongs_to(chunk), _open_at(end))
        tasks.update((task.id, task) for task in _rows(session, statement, pace))
    assignees = _assignees_of(session, list(tasks), pace)
    for task in tasks.values():
        pace()
        record = TaskRecord.from_row(task, assignees.get(task.id, ()))
        owners = {task.owner_id} if task.owner_id else set()
        members = (owners | set(assignees.get(task.id, ()))) & reports.keys()
        for user in members:
            _file_under(reports[user], record)
    for report in reports.values():
        _sort(report)
        pace()
    return reports


def _rows(session: Session, statement: Any, pace: Pacer) -> Iterator[Row]:
    """The statement's rows, fetched ``_FETCH`` at a time, pacing between rows."""
    result = session.execute(statement.execution_options(yield_per=_FETCH))
    for row in result:
        pace()
        yield row


def _assignees_of(session: Session, task_ids: Iterable[str], pace: Pacer) -> dict[str, list[str]]:
    """Each task's assignee ids (``tasks.service.assignee_ids_of``), ``_CHUNK`` tasks a
    query, pacing once per task."""
    assignees: dict[str, list[str]] = {}
    for chunk in _chunks(dict.fromkeys(task_ids)):
        found = assignee_ids_of(session, chunk)
        for task_id in chunk:
            pace()
            if task_id in found:
                assignees[task_id] = found[task_id]
    return assignees


class _Timed(Protocol):
    """What filing a task reads: a record, or a row of its id and timestamps."""

    @property
    def id(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def completed_at(self) -> datetime | None: ...
    @property
    def deleted_at(self) -> datetime | None: ...


def _categories_of(task: _Timed, start: datetime, end: datetime) -> Iterator[str]:
    """The lists of the window [start, end) that hold ``task``."""

    def within(instant: datetime | None) -> bool:
        return instant is not None and start <= instant < end

    def before_end(instant: datetime | None) -> bool:
        return instant is not None and instant < end

    if within(task.created_at):
        yield "created"
    if within(task.completed_at):
        yield "completed"
    if within(task.deleted_at):
        yield "deleted"
    if (
        task.created_at < end
        and not before_end(task.completed_at)
        and not before_end(task.deleted_at)
    ):
        yield "open"


# Each list's order: by the timestamp it is named after (open: created), then id.
_ORDERS: dict[str, Callable[[Any], Any]] = {
    "created": lambda t: (t.created_at, t.id),
    "completed": lambda t: (t.completed_at or t.created_at, t.id),
    "deleted": lambda t: (t.deleted_at or t.created_at, t.id),
    "open": lambda t: (t.created_at, t.id),
}


def _file_under(report: TaskReport, task: TaskRecord) -> None:
    for name in _categories_of(task, report.start, report.end):
        getattr(report, name).append(task)


def _sort(report: TaskReport) -> None:
    for name in CATEGORIES:
        getattr(report, name).sort(key=_ORDERS[name])


def _activity_in(start: datetime, end: datetime) -> Any:
    return or_(
        _within(Task.created_at, start, end),
        _within(Task.completed_at, start, end),
        _within(Task.deleted_at, start, end),
    )


def _open_at(end: datetime) -> Any:
    return and_(
        Task.created_at < end,
        or_(Task.completed_at.is_(None), Task.completed_at >= end),
        or_(Task.deleted_at.is_(None), Task.deleted_at >= end),
    )


def _within(column: Any, start: datetime, end: datetime) -> Any:
    return and_(column >= start, column < end)


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
