"""Tasks over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from galaxy_express.core import clock
from galaxy_express.db import unit_of_work
from galaxy_express.tasks.service import add_task
from tests.support import instants, new_id
from tests.support.statements import statements_run

PROBLEM = "application/problem+json"
T0 = datetime(2142, 3, 1, 12, 0, tzinfo=UTC)


at = instants(T0, timedelta(minutes=1))


def iso(instant: datetime) -> str:
    return clock.to_rfc3339(instant)


def create_task(testapp, name: str = "deliver", **fields) -> dict:
    return testapp.post_json("/v1/tasks", {"name": name, **fields}, status=201).json


def create_user(testapp) -> str:
    return testapp.post_json("/v1/users", {"username": new_id("u")}, status=201).json["id"]


def ids(page: dict) -> list[str]:
    return [task["id"] for task in page["items"]]


def field_errors(response) -> set[str]:
    assert response.content_type == PROBLEM
    return {error["field"] for error in response.json["errors"]}


def walk(testapp, url: str, limit: int, **params: str) -> list[str]:
    """Every page of a list, checking each page's size."""
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        page = testapp.get(url, params=query).json
        assert len(page["items"]) <= limit
        seen.extend(ids(page))
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


# ---- Create and read -------------------------------------------------------------


def test_create_with_defaults(testapp) -> None:
    with clock.frozen(T0):
        response = testapp.post_json("/v1/tasks", {"name": "Deliver to Omicron Persei 8"})
    task = response.json
    assert response.status_int == 201
    assert re.fullmatch(r"tsk_[0-9a-f]{24}", task["id"])
    assert response.headers["Location"].endswith(f"/v1/tasks/{task['id']}")
    assert task == {
        "id": task["id"],
        "name": "Deliver to Omicron Persei 8",
        "description": None,
        "status": "PENDING",
        "expires_at": None,
        "created_at": iso(T0),
        "updated_at": iso(T0),
        "completed_at": None,
        "deleted_at": None,
        "assignee_ids": [],
        "external_id": None,
        "owner_id": None,
    }
    assert testapp.get(f"/v1/tasks/{task['id']}").json == task


def test_create_with_every_field(testapp) -> None:
    task = create_task(
        testapp,
        "Ship",
        description="Handle with care ✓",
        status="IN_PROGRESS",
        expires_at="2142-03-02T14:00:00+02:00",
    )
    assert (task["description"], task["status"]) == ("Handle with care ✓", "IN_PROGRESS")
    assert task["expires_at"] == "2142-03-02T12:00:00Z"
    assert create_task(testapp, expires_at=0)["expires_at"] == "1970-01-01T00:00:00Z"


def test_created_completed_is_completed_at_creation(testapp) -> None:
    with clock.frozen(T0):
        task = create_task(testapp, status="COMPLETED")
    assert task["completed_at"] == task["created_at"] == iso(T0)


@pytest.mark.parametrize("name", ["x", "n" * 200, " padded "])
def test_names_at_the_bounds_are_accepted(testapp, name: str) -> None:
    assert create_task(testapp, name)["name"] == name


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"name": None}, "name"),
        ({"name": 7}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({}, "name"),
        ({"name": "t", "description": "d" * 16385}, "description"),
        ({"name": "t", "description": 5}, "description"),
        ({"name": "t", "status": "DONE"}, "status"),
        ({"name": "t", "status": "pending"}, "status"),
        ({"name": "t", "status": None}, "status"),
        ({"name": "t", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "t", "expires_at": "2142-02-30T00:00:00Z"}, "expires_at"),
        ({"name": "t", "expires_at": -1}, "expires_at"),
        ({"name": "t", "assignee_ids": ["u"]}, "assignee_ids"),
        ({"name": "t", "owner_id": "u"}, "owner_id"),
        ({"name": "t", "id": "tsk_mine"}, "id"),
    ],
)
def test_invalid_task_bodies_are_422(testapp, body: dict, field: str) -> None:
    response = testapp.post_json("/v1/tasks", body, status=422)
    assert field in field_errors(response)
    assert testapp.get("/v1/tasks").json["items"] == []


def test_unparseable_bodies_are_400(testapp) -> None:
    task = create_task(testapp)
    testapp.post("/v1/tasks", "{", content_type="application/json", status=400)
    testapp.post("/v1/tasks", "name=x", status=400)
    testapp.put(f"/v1/tasks/{task['id']}", "[", content_type="application/json", status=400)
    testapp.patch(f"/v1/tasks/{task['id']}", "name=x", status=400)
    testapp.post_json("/v1/tasks", ["name"], status=422)


def test_unknown_tasks_are_404_and_bad_ids_422(testapp) -> None:
    for method in ("get", "delete"):
        assert getattr(testapp, method)("/v1/tasks/tsk_nope", status=404).content_type == PROBLEM
    testapp.put_json("/v1/tasks/tsk_nope", {"name": "x"}, status=404)
    testapp.patch_json("/v1/tasks/tsk_nope", {"name": "x"}, status=404)
    testapp.get("/v1/tasks/.bad", status=422)
    testapp.patch_json("/v1/tasks/.bad", {"name": "x"}, status=422)


# ---- PUT, PATCH, completed_at ------------------------------------------------------


def test_put_replaces_every_editable_field(testapp) -> None:
    with clock.frozen(at(0)):
        task = create_task(
            testapp, "a", description="d", status="COMPLETED", expires_at=iso(at(60))
        )
    with clock.frozen(at(5)):
        replaced = testapp.put_json(f"/v1/tasks/{task['id']}", {"name": "b"}).json
    assert replaced == {
        **task,
        "name": "b",
        "description": None,
        "status": "PENDING",
        "expires_at": None,
        "completed_at": None,
        "updated_at": iso(at(5)),
    }
    response = testapp.put_json(f"/v1/tasks/{task['id']}", {"status": "PENDING"}, status=422)
    assert field_errors(response) == {"name"}
    testapp.put_json(f"/v1/tasks/{task['id']}", {"name": "b", "x": 1}, status=422)
    assert testapp.get(f"/v1/tasks/{task['id']}").json == replaced


def test_patch_changes_only_the_given_fields(testapp) -> None:
    with clock.frozen(at(0)):
        task = create_task(testapp, "a", description="d", expires_at=iso(at(60)))
    url = f"/v1/tasks/{task['id']}"
    with clock.frozen(at(1)):
        renamed = testapp.patch_json(url, {"name": "b"}).json
    assert renamed == {**task, "name": "b", "updated_at": iso(at(1))}
    with clock.frozen(at(2)):
        cleared = testapp.patch_json(url, {"description": None, "expires_at": None}).json
    assert cleared == {**renamed, "description": None, "expires_at": None, "updated_at": iso(at(2))}
    with clock.frozen(at(3)):
        assert testapp.patch_json(url, {}).json == cleared
        # Setting what is already there changes nothing, updated_at included.
        assert testapp.patch_json(url, {"name": "b", "status": "PENDING"}).json == cleared


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": None}, "name"),
        ({"status": None}, "status"),
        ({"name": ""}, "name"),
        ({"status": "done"}, "status"),
        ({"expires_at": "soon"}, "expires_at"),
        ({"completed_at": "2142-01-01T00:00:00Z"}, "completed_at"),
    ],
)
def test_invalid_patches_are_422_and_change_nothing(testapp, body: dict, field: str) -> None:
    task = create_task(testapp)
    response = testapp.patch_json(f"/v1/tasks/{task['id']}", body, status=422)
    assert field_errors(response) == {field}
    assert testapp.get(f"/v1/tasks/{task['id']}").json == task


def test_completed_at_follows_the_status(testapp) -> None:
    task = create_task(testapp)
    url = f"/v1/tasks/{task['id']}"
    with clock.frozen(at(1)):
        assert testapp.patch_json(url, {"status": "COMPLETED"}).json["completed_at"] == iso(at(1))
    with clock.frozen(at(2)):
        # Still COMPLETED: completed_at keeps the moment it became so.
        again = testapp.patch_json(url, {"status": "COMPLETED", "name": "n"}).json
        assert (again["completed_at"], again["updated_at"]) == (iso(at(1)), iso(at(2)))
    with clock.frozen(at(3)):
        assert testapp.patch_json(url, {"status": "IN_PROGRESS"}).json["completed_at"] is None
    with clock.frozen(at(4)):
        put = testapp.put_json(url, {"name": "n", "status": "COMPLETED"}).json
        assert put["completed_at"] == iso(at(4))
    with clock.frozen(at(5)):
        assert testapp.put_json(url, {"name": "n"}).json["completed_at"] is None


# ---- Soft delete -----------------------------------------------------------------


def test_deleted_task_is_404_everywhere_and_not_listed(testapp) -> None:
    user = create_user(testapp)
    kept, gone = create_task(testapp, "kept"), create_task(testapp, "gone")
    for task in (kept, gone):
        testapp.put(f"/v1/tasks/{task['id']}/assignees/{user}", status=204)

    testapp.delete(f"/v1/tasks/{gone['id']}", status=204)

    url = f"/v1/tasks/{gone['id']}"
    testapp.get(url, status=404)
    testapp.put_json(url, {"name": "x"}, status=404)
    testapp.patch_json(url, {"name": "x"}, status=404)
    testapp.delete(url, status=404)
    testapp.put(f"{url}/assignees/{user}", status=404)
    testapp.delete(f"{url}/assignees/{user}", status=404)
    assert ids(testapp.get("/v1/tasks").json) == [kept["id"]]
    assert ids(testapp.get("/v1/tasks", params={"assignee_id": user}).json) == [kept["id"]]
    assert ids(testapp.get(f"/v1/users/{user}/tasks").json) == [kept["id"]]
    for order in ("created_at", "expires_at", "-expires_at"):
        assert ids(testapp.get("/v1/tasks", params={"order": order}).json) == [kept["id"]]


def test_delete_sets_deleted_at(testapp, context) -> None:
    from galaxy_express.tasks.service import find_task

    task = create_task(testapp)
    with clock.frozen(at(9)):
        testapp.delete(f"/v1/tasks/{task['id']}", status=204)
    with unit_of_work(context.db) as session:
        row = find_task(session, task["id"])
        assert row is not None
        assert row.deleted_at == at(9)


# ---- Assignees ---------------------------------------------------------------------


def test_assign_and_unassign_are_idempotent(testapp) -> None:
    task = create_task(testapp)
    users = sorted(create_user(testapp) for _ in range(3))
    url = f"/v1/tasks/{task['id']}"
    for user in reversed(users):
        testapp.put(f"{url}/assignees/{user}", status=204)
        testapp.put(f"{url}/assignees/{user}", status=204)
    assert testapp.get(url).json["assignee_ids"] == users  # sorted, each once
    testapp.delete(f"{url}/assignees/{users[1]}", status=204)
    testapp.delete(f"{url}/assignees/{users[1]}", status=204)
    assert testapp.get(url).json["assignee_ids"] == [users[0], users[2]]
    # Assigning changes no editable field, so updated_at stays.
    assert testapp.get(url).json["updated_at"] == task["updated_at"]


def test_assignees_need_a_known_task_and_user(testapp) -> None:
    task, user = create_task(testapp), create_user(testapp)
    for method in ("put", "delete"):
        response = getattr(testapp, method)(f"/v1/tasks/{task['id']}/assignees/nobody", status=404)
        assert field_errors(response) == {"user_id"}
        response = getattr(testapp, method)(f"/v1/tasks/tsk_nope/assignees/{user}", status=404)
        assert field_errors(response) == {"task_id"}
        getattr(testapp, method)(f"/v1/tasks/{task['id']}/assignees/-x", status=422)
    assert testapp.get(f"/v1/tasks/{task['id']}").json["assignee_ids"] == []


# ---- Listing: orders, ties, filters, pagination ----------------------------------


@pytest.fixture
def timeline(testapp) -> dict[str, str]:
    """Tasks with created_at ties and expiry ties, some without an expiry."""
    plan = [
        # name, created (minutes after T0), expires (minutes after T0) or None
        ("a", 0, 30),
        ("b", 1, None),
        ("c", 1, 10),
        ("d", 1, 30),
        ("e", 2, None),
        ("f", 3, 10),
        ("g", 3, None),
        ("h", 4, 20),
    ]
    made = {}
    for name, created, expires in plan:
        fields = {} if expires is None else {"expires_at": iso(at(expires))}
        with clock.frozen(at(created)):
            made[name] = create_task(testapp, name, **fields)["id"]
    return made


@pytest.mark.parametrize(
    ("order", "names"),
    [
        ("-created_at", "hgfedcba"),
        ("created_at", "abcdefgh"),
        # Expiry ties go by creation; tasks without expiry last.
        ("expires_at", "cfhadbeg"),
        # The exact reverse, except tasks without expiry stay last.
        ("-expires_at", "dahfcgeb"),
    ],
)
def test_each_order_with_ties_and_tasks_without_expiry_last(
    testapp, timeline: dict[str, str], order: str, names: str
) -> None:
    expected = [timeline[name] for name in names]
    assert ids(testapp.get("/v1/tasks", params={"order": order}).json) == expected
    for limit in (1, 2, 3):
        assert walk(testapp, "/v1/tasks", limit, order=order) == expected


def test_default_order_is_newest_first(testapp, timeline: dict[str, str]) -> None:
    assert ids(testapp.get("/v1/tasks").json) == [timeline[n] for n in "hgfedcba"]


def test_walk_without_skips_or_repeats_while_tasks_are_created(testapp) -> None:
    with clock.frozen(at(0)):
        before = [create_task(testapp, str(i))["id"] for i in range(7)]
    for order, expected_new in (("-created_at", False), ("created_at", True)):
        seen: list[str] = []
        made_since: list[str] = []
        cursor: str | None = None
        while True:
            params = {"order": order, "limit": "3", **({"cursor": cursor} if cursor else {})}
            page = testapp.get("/v1/tasks", params=params).json
            seen.extend(ids(page))
            cursor = page["next_cursor"]
            if cursor is None:
                break
            with clock.frozen(at(1 + len(made_since))):
                made_since.append(create_task(testapp, "new")["id"])
        assert len(seen) == len(set(seen))
        assert set(before) <= set(seen)
        # New tasks land ahead of a newest-first walk and behind an oldest-first one.
        assert set(made_since) <= set(seen) if expected_new else not set(made_since) & set(seen)


def test_filters(testapp, context) -> None:
    u1, u2 = create_user(testapp), create_user(testapp)
    p1 = create_task(testapp, "p1")["id"]
    c1 = create_task(testapp, "c1", status="COMPLETED")["id"]
    i1 = create_task(testapp, "i1", status="IN_PROGRESS")["id"]
    with unit_of_work(context.db, write=True) as session:
        owned = add_task(session, {"name": "owned"}, external_id="ext-1", owner_id=u1).id
        owned_done = add_task(
            session, {"name": "owned2", "status": "COMPLETED"}, external_id="ext-2", owner_id=u2
        ).id
    for task, user in ((p1, u1), (c1, u1), (c1, u2), (owned, u2)):
        testapp.put(f"/v1/tasks/{task}/assignees/{user}", status=204)

    def listed(**params: str) -> list[str]:
        return ids(testapp.get("/v1/tasks", params={"order": "created_at", **params}).json)

    assert listed(status="PENDING") == [p1, owned]
    assert listed(status="COMPLETED") == [c1, owned_done]
    assert listed(status="IN_PROGRESS") == [i1]
    assert listed(assignee_id=u1) == [p1, c1]
    assert listed(assignee_id=u2) == [c1, owned]
    assert listed(assignee_id="nobody") == []
    assert listed(owner_id=u1) == [owned]
    assert listed(owner_id=u2, status="COMPLETED") == [owned_done]
    assert listed(assignee_id=u2, status="COMPLETED") == [c1]
    assert listed(assignee_id=u2, owner_id=u1) == [owned]
    assert listed(assignee_id=u2, owner_id=u2) == []
    assert walk(testapp, "/v1/tasks", 1, assignee_id=u1, order="created_at") == [p1, c1]
    owned_record = testapp.get(f"/v1/tasks/{owned}").json
    assert (owned_record["external_id"], owned_record["owner_id"]) == ("ext-1", u1)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"order": "name"}, "order"),
        ({"order": "-created"}, "order"),
        ({"status": "DONE"}, "status"),
        ({"status": ""}, "status"),
        ({"assignee_id": "not valid"}, "assignee_id"),
        ({"owner_id": "-x"}, "owner_id"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
    ],
)
def test_bad_list_queries_are_422(testapp, params: dict, field: str) -> None:
    response = testapp.get("/v1/tasks", params=params, status=422)
    assert field_errors(response) == {field}


def test_repeated_query_parameters_are_422(testapp) -> None:
    testapp.get("/v1/tasks?status=PENDING&status=COMPLETED", status=422)


def test_a_cursor_only_works_with_its_own_query(testapp, timeline: dict[str, str]) -> None:
    cursor = testapp.get("/v1/tasks", params={"limit": "2"}).json["next_cursor"]
    assert cursor is not None
    for params in ({"order": "created_at"}, {"status": "PENDING"}, {"order": "expires_at"}):
        response = testapp.get("/v1/tasks", params={**params, "cursor": cursor}, status=422)
        assert field_errors(response) == {"cursor"}
    # The same query with another limit may go on with it.
    assert len(ids(testapp.get("/v1/tasks", params={"limit": "3", "cursor": cursor}).json)) == 3


def test_limit_defaults_to_50(testapp) -> None:
    with clock.frozen(T0):
        for i in range(51):
            create_task(testapp, str(i))
    page = testapp.get("/v1/tasks").json
    assert len(page["items"]) == 50
    assert len(testapp.get("/v1/tasks", params={"cursor": page["next_cursor"]}).json["items"]) == 1


# ---- Queries per page -------------------------------------------------------------


def test_listing_reads_a_page_and_its_assignees_in_one_query(testapp) -> None:
    users = [create_user(testapp) for _ in range(3)]

    def statements_for_listing() -> int:
        with statements_run() as statements:
            page = testapp.get("/v1/tasks", params={"limit": "100"}).json
        assert all(task["assignee_ids"] == sorted(users) for task in page["items"])
        return len([s for s, _ in statements if s.lstrip().upper().startswith("SELECT")])

    def add_tasks(count: int) -> None:
        for _ in range(count):
            task = create_task(testapp)["id"]
            for user in users:
                testapp.put(f"/v1/tasks/{task}/assignees/{user}", status=204)

    add_tasks(2)
    few = statements_for_listing()
    add_tasks(20)
    assert statements_for_listing() == few == 1
