"""The tasks service's building blocks, as webhooks and reports will call them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError

from galaxy_express.core import clock
from galaxy_express.core.errors import NotFound
from galaxy_express.db import unit_of_work
from galaxy_express.tasks import service
from galaxy_express.tasks.models import NO_EXPIRY_KEY, Task, TaskAssignee
from galaxy_express.tasks.schemas import task_json
from galaxy_express.users.commands import CreateUser
from galaxy_express.users.service import create_user
from tests.support import instants

T0 = datetime(2142, 5, 1, 9, 0, tzinfo=UTC)


at = instants(T0, timedelta(minutes=1))


def test_add_task_with_the_instants_of_an_event(context) -> None:
    with unit_of_work(context.db, write=True) as session:
        task = service.add_task(
            session,
            {"name": "Buy slurm", "status": "COMPLETED"},
            created_at=at(0),
            completed_at=at(1),
            external_id="todo-1",
            owner_id="user-7",
        )
        task_id = task.id
    with unit_of_work(context.db) as session:
        found = service.find_task_by_external_id(session, "todo-1")
        assert found is not None
        record = service.records_of(session, [found])[0]
    assert task_json(record) == {
        "id": task_id,
        "name": "Buy slurm",
        "description": None,
        "status": "COMPLETED",
        "expires_at": None,
        "created_at": "2142-05-01T09:00:00Z",
        "updated_at": "2142-05-01T09:00:00Z",
        "completed_at": "2142-05-01T09:01:00Z",
        "deleted_at": None,
        "assignee_ids": [],
        "external_id": "todo-1",
        "owner_id": "user-7",
    }


def test_a_task_created_completed_is_completed_at_creation_by_default(context) -> None:
    with unit_of_work(context.db, write=True) as session:
        task = service.add_task(session, {"name": "t", "status": "COMPLETED"}, created_at=at(3))
        assert task.completed_at == at(3)


def test_external_ids_are_unique_when_set(context) -> None:
    with unit_of_work(context.db, write=True) as session:
        for _ in range(2):
            service.add_task(session, {"name": "no external id"})
        service.add_task(session, {"name": "a"}, external_id="todo-1")
    with pytest.raises(IntegrityError), unit_of_work(context.db, write=True) as session:
        service.add_task(session, {"name": "b"}, external_id="todo-1")
    with unit_of_work(context.db) as session:
        assert len(session.execute(select(Task)).scalars().all()) == 3


def test_apply_changes_at_a_given_instant(context) -> None:
    with unit_of_work(context.db, write=True) as session:
        task = service.add_task(session, {"name": "a"}, created_at=at(0))
        assert service.apply_changes(task, {"name": "b", "status": "COMPLETED"}, at(5))
        assert (task.name, task.completed_at, task.updated_at) == ("b", at(5), at(5))
        # Nothing to change: nothing moves.
        assert not service.apply_changes(task, {"name": "b", "status": "COMPLETED"}, at(6))
        assert (task.completed_at, task.updated_at) == (at(5), at(5))
        assert service.apply_changes(task, {"status": "PENDING"}, at(7))
        assert (task.completed_at, task.updated_at) == (None, at(7))


def test_apply_changes_refuses_what_is_not_editable(context) -> None:
    with unit_of_work(context.db, write=True) as session:
        task = service.add_task(session, {"name": "a"})
        with pytest.raises(ValueError, match="not editable"):
            service.apply_changes(task, {"owner_id": "x"}, at(1))
        with pytest.raises(ValueError, match="status"):
            service.apply_changes(task, {"status": "DONE"}, at(1))


def test_mark_deleted_at_a_given_instant(context) -> None:
    with unit_of_work(context.db, write=True) as session:
        task_id = service.add_task(session, {"name": "a"}, external_id="todo-9").id
    with unit_of_work(context.db, write=True) as session:
        task = service.find_task_by_external_id(session, "todo-9", for_update=True)
        assert task is not None
        service.mark_deleted(task, at(8))
    with unit_of_work(context.db) as session:
        deleted = service.find_task(session, task_id)
        assert deleted is not None
        assert (deleted.deleted_at, deleted.updated_at) == (at(8), at(8))
    with pytest.raises(NotFound), unit_of_work(context.db) as session:
        service.require_live_task(session, task_id)


def test_expiry_sort_keys_follow_expires_at(context) -> None:
    with unit_of_work(context.db, write=True) as session:
        task = service.add_task(session, {"name": "a", "expires_at": at(30)})
        assert (task.no_expiry, task.expiry_key) == (0, at(30))
        service.apply_changes(task, {"expires_at": None}, at(1))
        assert (task.no_expiry, task.expiry_key) == (1, NO_EXPIRY_KEY)
        service.apply_changes(task, {"expires_at": at(40)}, at(2))
        task_id = task.id
    with unit_of_work(context.db) as session:
        stored = service.find_task(session, task_id)
        assert stored is not None
        assert (stored.no_expiry, stored.expiry_key, stored.expires_at) == (0, at(40), at(40))


def test_records_of_loads_sorted_assignees_for_many_tasks(context) -> None:
    users = [create_user(context, CreateUser(username=name)).id for name in ("zed", "amy", "kif")]
    with clock.frozen(T0):
        with unit_of_work(context.db, write=True) as session:
            tasks = [service.add_task(session, {"name": str(i)}).id for i in range(3)]
        for user in users:
            service.assign_task(context, tasks[0], user)
        service.assign_task(context, tasks[2], users[0])
    with unit_of_work(context.db) as session:
        rows = [service.find_task(session, task_id) for task_id in tasks]
        records = service.records_of(session, [row for row in rows if row is not None])
    assert [record.id for record in records] == tasks
    assert [record.assignee_ids for record in records] == [
        tuple(sorted(users)),
        (),
        (users[0],),
    ]


def test_deleting_a_user_row_cascades_to_assignments(context, database_url) -> None:
    """The foreign key holds on its own, on both databases (SQLite's foreign keys are on)."""
    user = create_user(context, CreateUser(username="bender")).id
    with unit_of_work(context.db, write=True) as session:
        task_id = service.add_task(session, {"name": "t"}).id
    service.assign_task(context, task_id, user)
    engine = create_engine(database_url, future=True)
    try:
        # Any engine's SQLite connections get foreign_keys=ON (galaxy_express.db).
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM users WHERE id = :id"), {"id": user})
    finally:
        engine.dispose()
    with unit_of_work(context.db) as session:
        assert session.execute(select(TaskAssignee)).all() == []


def test_an_assignment_to_a_missing_user_is_refused_by_the_database(context) -> None:
    with unit_of_work(context.db, write=True) as session:
        task_id = service.add_task(session, {"name": "t"}).id

    def assign_a_ghost() -> None:
        with unit_of_work(context.db, write=True) as session:
            session.add(TaskAssignee(task_id=task_id, user_id="ghost", assigned_at=at(0)))

    with pytest.raises(IntegrityError):
        assign_a_ghost()


def test_assignees_of_any_number_of_tasks_are_each_tasks_own(context) -> None:
    # Statements come in powers of two, padded with the last id: with the unknown id,
    # 2 and 4 ids fill one exactly, 6 and 10 are padded, and no task gains or loses
    # an assignee.
    users = [create_user(context, CreateUser(username=f"user{i}")).id for i in range(3)]
    with unit_of_work(context.db, write=True) as session:
        tasks = [service.add_task(session, {"name": f"t{index}"}).id for index in range(9)]
        for index, task_id in enumerate(tasks):
            for user in users[: index % 4]:
                session.add(TaskAssignee(task_id=task_id, user_id=user, assigned_at=T0))
    expected = {t: sorted(users[: i % 4]) for i, t in enumerate(tasks) if i % 4}
    with unit_of_work(context.db) as session:
        for count in (1, 3, 5, 9):
            found = service.assignee_ids_of(session, [*tasks[:count], "no-such-task"])
            assert dict(found) == {t: ids for t, ids in expected.items() if t in tasks[:count]}
