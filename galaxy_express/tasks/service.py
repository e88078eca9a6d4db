"""The tasks service.

Two layers. The functions taking a ``ServiceContext`` are the operations the
edges call; each is one unit of work. The functions taking a ``Session`` are
the building blocks those use, open to other domains that work inside their
own transaction: webhooks create, change and delete tasks at the instants
their events carry (``add_task``, ``apply_changes``, ``mark_deleted``), reports
render what they find with ``records_of`` (their HTTP edge with ``schemas.task_json``).

Rules kept here and nowhere else: ``completed_at`` follows the status
(``apply_changes``), the expiry sort keys follow ``expires_at`` (the model),
deleted tasks are invisible to every operation but reports.
"""

from __future__ import annotations

import functools
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from galaxy_express.core import clock
from galaxy_express.core.context import ServiceContext
from galaxy_express.core.errors import FieldError, NotFound
from galaxy_express.core.pagination import Page, SortKey, fingerprint, paginate
from galaxy_express.db import insert_ignoring_conflicts, unit_of_work
from galaxy_express.db.aggregates import joined_strings
from galaxy_express.db.driver import read_rows, reading
from galaxy_express.tasks.commands import TaskFields, TaskListQuery, TaskQuery
from galaxy_express.tasks.models import COMPLETED, PENDING, STATUSES, Task, TaskAssignee
from galaxy_express.tasks.records import COLUMN_FIELDS, TaskRecord
from galaxy_express.users.service import no_such_user, require_user

TASK_ID_PREFIX = "tsk_"
EDITABLE_FIELDS: tuple[str, ...] = ("name", "description", "status", "expires_at")

KeyOf = Callable[[Any], tuple[Any, ...]]  # of a row of the tasks table

# The table's columns, not the model's attributes: a page is a Core query of rows (see
# inbox.service.list_inbox), which cost far less CPU than a page of ORM objects.
_TASKS = Task.__table__.c

# Each order ends in seq (creation order), so every task has its own place.
ORDERS: dict[str, tuple[list[SortKey], KeyOf]] = {
    "-created_at": (
        [SortKey(_TASKS.created_at, descending=True), SortKey(_TASKS.seq, descending=True)],
        lambda task: (task.created_at, task.seq),
    ),
    "created_at": (
        [SortKey(_TASKS.created_at), SortKey(_TASKS.seq)],
        lambda task: (task.created_at, task.seq),
    ),
    "expires_at": (
        [SortKey(_TASKS.no_expiry), SortKey(_TASKS.expiry_key), SortKey(_TASKS.seq)],
        lambda task: (task.no_expiry, task.expiry_key, task.seq),
    ),
    "-expires_at": (
        [
            SortKey(_TASKS.no_expiry),
            SortKey(_TASKS.expiry_key, descending=True),
            SortKey(_TASKS.seq, descending=True),
        ],
        lambda task: (task.no_expiry, task.expiry_key, task.seq),
    ),
}


# ---- Operations (one unit of work each) ----------------------------------------


def create_task(context: ServiceContext, fields: TaskFields) -> TaskRecord:
    """Create a task from the editable fields; COMPLETED at creation completes it now."""
    with unit_of_work(context.db, write=True) as session:
        task = add_task(session, fields.model_dump())
        return TaskRecord.from_row(task, ())


def get_task(context: ServiceContext, task_id: str) -> TaskRecord:
    with unit_of_work(context.db) as session:
        return records_of(session, [require_live_task(session, task_id)])[0]


def list_tasks(context: ServiceContext, query: TaskListQuery) -> Page[TaskRecord]:
    """A page of live tasks matching the filters, in the query's order."""
    with reading(context.db) as session:
        return _page_of_tasks(session, query, query.assignee_id, context.settings.cursor_secrets)


def list_user_tasks(context: ServiceContext, user_id: str, query: TaskQuery) -> Page[TaskRecord]:
    """The live tasks assigned to a user (NotFound for an unknown user)."""
    with unit_of_work(context.db) as session:
        require_user(session, user_id)
        return _page_of_tasks(session, query, user_id, context.settings.cursor_secrets)


def update_task(context: ServiceContext, task_id: str, changes: Mapping[str, Any]) -> TaskRecord:
    """Change the given editable fields (PUT passes all of them, PATCH the ones sent)."""
    with unit_of_work(context.db, write=True) as session:
        task = require_live_task(session, task_id, for_update=True)
        apply_changes(task, changes, clock.now())
        session.flush()
        return records_of(session, [task])[0]


def delete_task(context: ServiceContext, task_id: str) -> None:
    """Soft delete: ``deleted_at`` is set and the task disappears from every operation."""
    with unit_of_work(context.db, write=True) as session:
        mark_deleted(require_live_task(session, task_id, for_update=True), clock.now())


def assign_task(context: ServiceContext, task_id: str, user_id: str) -> None:
    """Assign a user to a task; assigning again changes nothing."""
    with unit_of_work(context.db, write=True) as session:
        require_live_task(session, task_id)
        require_user(session, user_id)
        values = {"task_id": task_id, "user_id": user_id, "assigned_at": clock.now()}
        try:
            insert_ignoring_conflicts(session, TaskAssignee.__table__, values)
        except IntegrityError:
            # The user was deleted between our look-up and the insert (PostgreSQL).
            raise no_such_user(user_id) from None


def unassign_task(context: ServiceContext, task_id: str, user_id: str) -> None:
    """Take a user off a task; a user who isn't assigned is no error."""
    with unit_of_work(context.db, write=True) as session:
        require_live_task(session, task_id)
        require_user(session, user_id)
        session.execute(
            delete(TaskAssignee).where(
                TaskAssignee.task_id == task_id, TaskAssignee.user_id == user_id
            )
        )


# ---- Building blocks (inside the caller's transaction) -------------------------


def new_task_id() -> str:
    return TASK_ID_PREFIX + secrets.token_hex(12)


def add_task(
    session: Session,
    fields: Mapping[str, Any],
    *,
    created_at: datetime | None = None,
    completed_at: datetime | None = None,
    external_id: str | None = None,
    owner_id: str | None = None,
) -> Task:
    """Add a task made of ``fields`` (name and optionally description, status,
    expires_at) and flush it.

    ``created_at`` defaults to now (webhooks pass the event's timestamp); a task
    created COMPLETED is completed at ``completed_at``, by default ``created_at``.
    The caller handles a taken ``external_id`` (an IntegrityError at flush).
    """
    _check_editable(fields)
    created_at = created_at or clock.now()
    status = fields.get("status", PENDING)
    task = Task(
        id=new_task_id(),
        name=fields["name"],
        description=fields.get("description"),
        status=status,
        expires_at=fields.get("expires_at"),
        created_at=created_at,
        updated_at=created_at,
        completed_at=(completed_at or created_at) if status == COMPLETED else None,
        deleted_at=None,
        external_id=external_id,
        owner_id=owner_id,
    )
    session.add(task)
    session.flush()
    return task


def apply_changes(task: Task, changes: Mapping[str, Any], at: datetime) -> bool:
    """Set the given editable fields as of ``at``; True when anything changed.

    ``updated_at`` becomes ``at`` only when something changed. Entering
    COMPLETED sets ``completed_at`` to ``at``; leaving it clears it.
    """
    _check_editable(changes)
    changed = False
    for name, value in changes.items():
        if getattr(task, name) == value:
            continue
        if name == "status":
            task.completed_at = at if value == COMPLETED else None
        setattr(task, name, value)
        changed = True
    if changed:
        task.updated_at = at
    return changed


def mark_deleted(task: Task, at: datetime) -> None:
    """Soft-delete ``task`` as of ``at`` (its assignments stay, for reports)."""
    task.deleted_at = at
    task.updated_at = at


def set_event_fields(
    task: Task,
    *,
    name: str,
    status: str,
    completed_at: datetime | None,
    updated_at: datetime,
    deleted_at: datetime | None,
) -> None:
    """Set the fields a task's events decide, as replaying them in order gave
    (webhooks: the replay ran ``apply_changes`` and ``mark_deleted`` itself)."""
    _check_editable({"name": name, "status": status})
    task.name, task.status, task.completed_at = name, status, completed_at
    task.updated_at, task.deleted_at = updated_at, deleted_at


def find_task(session: Session, task_id: str, *, for_update: bool = False) -> Task | None:
    """A task by its public id, deleted or not."""
    statement = select(Task).where(Task.id == task_id)
    if for_update:
        statement = statement.with_for_update()
    return session.execute(statement).scalars().first()


def find_task_by_external_id(
    session: Session, external_id: str, *, for_update: bool = False
) -> Task | None:
    """A task by the external TODO service's id, deleted or not."""
    statement = select(Task).where(Task.external_id == external_id)
    if for_update:
        statement = statement.with_for_update()
    return session.execute(statement).scalars().first()


def require_live_task(session: Session, task_id: str, *, for_update: bool = False) -> Task:
    """The task unless it is unknown or deleted; then NotFound (404)."""
    task = find_task(session, task_id, for_update=for_update)
    if task is None or task.deleted_at is not None:
        raise NotFound(f"no task {task_id!r}", (FieldError("task_id", "no such task"),))
    return task


def records_of(session: Session, tasks: Sequence[Task]) -> list[TaskRecord]:
    """Records of ``tasks`` in their order, their assignees loaded in one query."""
    assignees = assignee_ids_of(session, [task.id for task in tasks])
    return [TaskRecord.from_row(task, assignees.get(task.id, ())) for task in tasks]


def assignee_ids_of(session: Session, task_ids: Iterable[str]) -> dict[str, list[str]]:
    """Each task's assignee ids, sorted, for all the tasks at once."""
    ids = list(dict.fromkeys(task_ids))
    if not ids:
        return {}
    # Padded to a power of two with the last id again (the same rows): a handful of
    # statements, each built and compiled once, serve every number of ids.
    size = 1 << (len(ids) - 1).bit_length()
    statement, names = _assignees_of(size)
    values = dict(zip(names, ids + ids[-1:] * (size - len(ids)), strict=True))
    rows = read_rows(session, statement, values)
    assignees: dict[str, list[str]] = defaultdict(list)
    for task_id, user_id in rows:
        assignees[task_id].append(user_id)
    return assignees


@functools.cache
def _assignees_of(size: int) -> tuple[Select, tuple[str, ...]]:
    """The assignees of ``size`` tasks, by task then user, and its parameters' names.

    Built once per size and read on the driver's cursor (``read_rows``): built per
    call, with the ids in it, the statement was walked for its cache key and
    compiled each time, most of a task list page's CPU.
    """
    assignees = TaskAssignee.__table__.c
    names = tuple(f"task_id_{position}" for position in range(size))
    statement = (
        select(assignees.task_id, assignees.user_id)
        .where(assignees.task_id.in_([bindparam(name) for name in names]))
        .order_by(assignees.task_id, assignees.user_id)
    )
    return statement, names


def _page_of_tasks(
    session: Session, query: TaskQuery, assignee_id: str | None, cursor_secrets: tuple[bytes, ...]
) -> Page[TaskRecord]:
    order, key_of = ORDERS[query.order]
    filters = {"status": query.status, "owner_id": query.owner_id, "assignee_id": assignee_id}
    params = {name: value for name, value in filters.items() if value is not None}
    page = paginate(
        session,
        _live_tasks(frozenset(params), query.order),
        order,
        key_of,
        limit=query.limit,
        cursor=query.cursor,
        query_fingerprint=fingerprint(list="tasks", order=query.order, **filters),
        secrets=cursor_secrets,
        params=params,
        read_rows=read_rows,
        outer=_with_assignees,
    )
    records = [TaskRecord.from_row(row, _assignees_in(row.assignee_list)) for row in page.items]
    return Page(records, page.next_cursor)


# Between a task's assignee ids in the page's ``assignee_list``: user ids are of the
# id pattern (core.validation.ID_PATTERN), which has no comma.
_ASSIGNEE_SEPARATOR = ","


def _assignees_in(assignee_list: str | None) -> Sequence[str]:
    return () if assignee_list is None else assignee_list.split(_ASSIGNEE_SEPARATOR)


def _with_assignees(page_query: Select, order: Sequence[SortKey]) -> Select:
    """The page's tasks (``page_query``, a subquery), each with its assignee ids as one
    text (``assignee_list``, NULL for none), in the page's order: one statement.

    The assignees were a second query of 150 rows for a page of 50, each a row
    to build; now a task's are one string, split (``records`` sort them). Each
    list is computed outside the page query, so only for the page's own rows:
    in it, a database sorting the filtered tasks (a join by assignee) would
    compute one for every task it sorts.
    """
    page = page_query.subquery("page")
    assignees = TaskAssignee.__table__.c
    assignee_list = (
        select(joined_strings(assignees.user_id, _ASSIGNEE_SEPARATOR))
        .where(assignees.task_id == page.c.id)
        .scalar_subquery()
        .label("assignee_list")
    )
    in_order = (page.c[k.column.key] for k in order)
    return select(*page.c, assignee_list).order_by(
        *(
            column.desc() if key.descending else column.asc()
            for key, column in zip(order, in_order, strict=True)
        )
    )


@functools.cache
def _live_tasks(filtered: frozenset[str], order: str) -> Select:
    """Live tasks, filtered by the named bound values (``status``, ``owner_id``,
    ``assignee_id``); built once per shape, as the inbox's pages are
    (``inbox.service._folder_page``), and read on the driver's cursor.

    The record's columns and the sort keys of ``order`` (``ORDERS``), no more:
    every instant read is a conversion, and only the expiry orders need
    ``expiry_key``.
    """
    sort_keys, _ = ORDERS[order]
    extra = [key.column for key in sort_keys if key.column.key not in COLUMN_FIELDS]
    columns = [_TASKS[name] for name in COLUMN_FIELDS]
    statement = select(*columns, *extra).where(_TASKS.deleted_at.is_(None))
    if "status" in filtered:
        statement = statement.where(_TASKS.status == bindparam("status"))
    if "owner_id" in filtered:
        statement = statement.where(_TASKS.owner_id == bindparam("owner_id"))
    if "assignee_id" in filtered:
        assignees = TaskAssignee.__table__
        statement = statement.join(
            assignees,
            and_(assignees.c.task_id == _TASKS.id, assignees.c.user_id == bindparam("assignee_id")),
        )
    return statement


def _check_editable(fields: Mapping[str, Any]) -> None:
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable task fields: {sorted(unknown)}")
    status = fields.get("status", PENDING)
    if status not in STATUSES:
        raise ValueError(f"not a task status: {status!r}")
