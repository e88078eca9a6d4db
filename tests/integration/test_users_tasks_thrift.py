"""Users and tasks over Thrift: the same rules as HTTP, errors as baseplate.Error codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from baseplate.thrift.ttypes import Error

from galaxy_express.core import clock
from galaxy_express.thrift.gen import ttypes
from tests.support import new_id

T0 = datetime(2142, 3, 1, 12, 0, tzinfo=UTC)


def ms(minutes: float) -> int:
    return clock.to_millis(T0 + timedelta(minutes=minutes))


def error_of(call, *args) -> Error:
    with pytest.raises(Error) as raised:
        call(*args)
    return raised.value


# ---- Users -----------------------------------------------------------------------


def test_user_lifecycle(thrift_client) -> None:
    with clock.frozen(T0):
        made = thrift_client.create_user(ttypes.CreateUserRequest(username="Hermes"))
    assert made.id.startswith("usr_")
    assert (made.username, made.created_at) == ("Hermes", ms(0))
    assert thrift_client.get_user(made.id) == made
    with clock.frozen(T0 + timedelta(minutes=1)):
        given = thrift_client.create_user(ttypes.CreateUserRequest(username="labarbara", id="lb"))
    assert given.id == "lb"
    assert [u.id for u in thrift_client.list_users(ttypes.ListUsersRequest()).items] == [
        made.id,
        "lb",
    ]

    thrift_client.delete_user(made.id, None)
    assert error_of(thrift_client.get_user, made.id).code == 404
    assert error_of(thrift_client.delete_user, made.id, None).code == 404


def test_user_conflicts_and_invalid_input(thrift_client) -> None:
    thrift_client.create_user(ttypes.CreateUserRequest(username="Zoidberg", id="z"))
    taken_name = error_of(thrift_client.create_user, ttypes.CreateUserRequest(username="ZOIDBERG"))
    assert (taken_name.code, set(taken_name.details)) == (409, {"username"})
    taken_id = error_of(thrift_client.create_user, ttypes.CreateUserRequest(username="x2x", id="z"))
    assert (taken_id.code, set(taken_id.details)) == (409, {"id"})
    short = error_of(thrift_client.create_user, ttypes.CreateUserRequest(username="zo"))
    assert (short.code, set(short.details)) == (422, {"username"})
    missing = error_of(thrift_client.create_user, ttypes.CreateUserRequest())
    assert (missing.code, set(missing.details)) == (422, {"username"})
    assert error_of(thrift_client.get_user, "no such").code == 422
    assert error_of(thrift_client.get_user, "nobody").code == 404


def test_list_users_pages(thrift_client) -> None:
    made = [
        thrift_client.create_user(ttypes.CreateUserRequest(username=new_id("u"))).id
        for _ in range(5)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        page = thrift_client.list_users(ttypes.ListUsersRequest(limit=2, cursor=cursor))
        seen.extend(user.id for user in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == made
    for bad in (ttypes.ListUsersRequest(limit=0), ttypes.ListUsersRequest(cursor="nope")):
        assert error_of(thrift_client.list_users, bad).code == 422


# ---- Tasks -----------------------------------------------------------------------


def test_task_lifecycle(thrift_client) -> None:
    with clock.frozen(T0):
        task = thrift_client.create_task(
            ttypes.CreateTaskRequest(name="Deliver", description="d", expires_at=ms(60))
        )
    assert task.id.startswith("tsk_")
    assert (task.name, task.description, task.status) == ("Deliver", "d", "PENDING")
    assert (task.expires_at, task.created_at, task.updated_at) == (ms(60), ms(0), ms(0))
    assert (task.completed_at, task.deleted_at, task.assignee_ids) == (None, None, [])
    assert (task.external_id, task.owner_id) == (None, None)
    assert thrift_client.get_task(task.id) == task

    thrift_client.delete_task(task.id, None)
    assert error_of(thrift_client.get_task, task.id).code == 404
    assert error_of(thrift_client.delete_task, task.id, None).code == 404
    update = ttypes.UpdateTaskRequest(task_id=task.id, name="x")
    assert error_of(thrift_client.update_task, update).code == 404
    assert thrift_client.list_tasks(ttypes.ListTasksRequest()).items == []


def test_update_task_patch_and_replace(thrift_client) -> None:
    with clock.frozen(T0):
        task = thrift_client.create_task(
            ttypes.CreateTaskRequest(name="a", description="d", expires_at=ms(60))
        )
    with clock.frozen(T0 + timedelta(minutes=1)):
        patched = thrift_client.update_task(
            ttypes.UpdateTaskRequest(task_id=task.id, status="COMPLETED")
        )
    # PATCH: unset fields stay; completed_at follows the status.
    assert (patched.name, patched.description, patched.expires_at) == ("a", "d", ms(60))
    assert (patched.status, patched.completed_at, patched.updated_at) == ("COMPLETED", ms(1), ms(1))
    with clock.frozen(T0 + timedelta(minutes=2)):
        replaced = thrift_client.update_task(
            ttypes.UpdateTaskRequest(task_id=task.id, name="b", replace=True)
        )
    # PUT: unset fields go back to their defaults.
    assert (replaced.name, replaced.description, replaced.expires_at) == ("b", None, None)
    assert (replaced.status, replaced.completed_at, replaced.updated_at) == ("PENDING", None, ms(2))
    no_name = ttypes.UpdateTaskRequest(task_id=task.id, status="PENDING", replace=True)
    assert set(error_of(thrift_client.update_task, no_name).details) == {"name"}
    assert thrift_client.get_task(task.id) == replaced


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"name": "t", "status": "DONE"}, "status"),
        ({"name": "t", "description": "d" * 16385}, "description"),
        ({"name": "t", "expires_at": -1}, "expires_at"),
        ({}, "name"),
    ],
)
def test_invalid_tasks_are_422(thrift_client, request_fields: dict, field: str) -> None:
    error = error_of(thrift_client.create_task, ttypes.CreateTaskRequest(**request_fields))
    assert (error.code, set(error.details)) == (422, {field})
    task = thrift_client.create_task(ttypes.CreateTaskRequest(name="ok"))
    update = ttypes.UpdateTaskRequest(task_id=task.id, **request_fields)
    if request_fields:
        assert error_of(thrift_client.update_task, update).code == 422


def test_assign_and_unassign(thrift_client) -> None:
    task = thrift_client.create_task(ttypes.CreateTaskRequest(name="t"))
    users = sorted(
        thrift_client.create_user(ttypes.CreateUserRequest(username=new_id("u"))).id
        for _ in range(2)
    )
    for user in reversed(users):
        thrift_client.assign_task(task.id, user, None)
        thrift_client.assign_task(task.id, user, None)
    assert thrift_client.get_task(task.id).assignee_ids == users
    thrift_client.unassign_task(task.id, users[0], None)
    thrift_client.unassign_task(task.id, users[0], None)
    assert thrift_client.get_task(task.id).assignee_ids == [users[1]]
    for call in (thrift_client.assign_task, thrift_client.unassign_task):
        assert error_of(call, task.id, "nobody", None).code == 404
        assert error_of(call, "tsk_nope", users[1], None).code == 404
        assert error_of(call, task.id, "bad id", None).code == 422
    thrift_client.delete_user(users[1], None)
    assert thrift_client.get_task(task.id).assignee_ids == []


def test_list_tasks_orders_filters_and_pages(thrift_client) -> None:
    user = thrift_client.create_user(ttypes.CreateUserRequest(username="amy")).id
    made = {}
    for name, created, expires, status in (
        ("a", 0, None, "PENDING"),
        ("b", 1, 30, "COMPLETED"),
        ("c", 1, 10, "PENDING"),
        ("d", 2, None, "IN_PROGRESS"),
    ):
        with clock.frozen(T0 + timedelta(minutes=created)):
            expires_at = None if expires is None else ms(expires)
            request = ttypes.CreateTaskRequest(name=name, status=status, expires_at=expires_at)
            made[name] = thrift_client.create_task(request).id
    thrift_client.assign_task(made["a"], user, None)
    thrift_client.assign_task(made["c"], user, None)

    def listed(**fields) -> list[str]:
        names = {task_id: name for name, task_id in made.items()}
        seen: list[str] = []
        cursor = None
        while True:
            request = ttypes.ListTasksRequest(limit=1, cursor=cursor, **fields)
            page = thrift_client.list_tasks(request)
            seen.extend(names[task.id] for task in page.items)
            cursor = page.next_cursor
            if cursor is None:
                return seen

    assert listed() == list("dcba")
    assert listed(order="created_at") == list("abcd")
    assert listed(order="expires_at") == list("cbad")
    assert listed(order="-expires_at") == list("bcda")
    assert listed(status="PENDING") == list("ca")
    assert listed(assignee_id=user) == list("ca")
    assert listed(assignee_id=user, order="expires_at") == list("ca")
    assert listed(owner_id=user) == []
    for bad in (
        ttypes.ListTasksRequest(order="name"),
        ttypes.ListTasksRequest(status="done"),
        ttypes.ListTasksRequest(limit=101),
        ttypes.ListTasksRequest(cursor="garbage"),
        ttypes.ListTasksRequest(assignee_id="not an id"),
    ):
        assert error_of(thrift_client.list_tasks, bad).code == 422


# ---- Reports ---------------------------------------------------------------------


def test_task_report_window_over_thrift(thrift_client) -> None:
    """The window travels as window_start/window_end (HTTP's start/end), ids 2 and 3."""
    owner = thrift_client.create_user(ttypes.CreateUserRequest(username=new_id("owner"))).id
    with clock.frozen(T0 + timedelta(minutes=5)):
        task = thrift_client.create_task(ttypes.CreateTaskRequest(name="inside"))
        thrift_client.assign_task(task.id, owner, None)
    request = ttypes.TaskReportRequest(user_id=owner, window_start=ms(0), window_end=ms(10))
    report = thrift_client.get_task_report(request)
    assert (report.window_start, report.window_end) == (ms(0), ms(10))
    assert [t.id for t in report.created] == [task.id]
    assert report.counts["created"] == 1
    backwards = ttypes.TaskReportRequest(user_id=owner, window_start=ms(10), window_end=ms(0))
    assert error_of(thrift_client.get_task_report, backwards).code == 422


def test_a_truncated_report_says_so_over_thrift(thrift_client, monkeypatch) -> None:
    """As HTTP's `truncated`: lists cut to the maximum, counts whole (field 9)."""
    monkeypatch.setattr("galaxy_express.reports.service.MAX_ITEMS_PER_LIST", 2)
    owner = thrift_client.create_user(ttypes.CreateUserRequest(username=new_id("owner"))).id
    for index in range(3):
        with clock.frozen(T0 + timedelta(minutes=5 + index)):
            task = thrift_client.create_task(ttypes.CreateTaskRequest(name=f"task {index}"))
        thrift_client.assign_task(task.id, owner, None)
    request = ttypes.TaskReportRequest(user_id=owner, window_start=ms(0), window_end=ms(10))
    report = thrift_client.get_task_report(request)
    assert len(report.created) == len(report.open) == 2
    assert report.counts == {"created": 3, "completed": 0, "deleted": 0, "open": 3}
    assert report.truncated is True
    other = new_id("nobody")
    whole = ttypes.TaskReportRequest(user_id=other, window_start=ms(0), window_end=ms(10))
    assert thrift_client.get_task_report(whole).truncated is False


def test_the_thrift_report_has_every_field_of_the_http_report() -> None:
    """A field added to the HTTP report (TaskReportOut) needs its Thrift field too."""
    from galaxy_express.reports.schemas import TaskReportOut

    renamed = {"start": "window_start", "end": "window_end"}  # `end` is reserved in Thrift
    thrift_fields = {spec[2] for spec in ttypes.TaskReport.thrift_spec if spec}
    http_fields = {renamed.get(name, name) for name in TaskReportOut.model_fields}
    assert http_fields <= thrift_fields, http_fields - thrift_fields
