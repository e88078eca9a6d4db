"""Users over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import gevent.pool
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from galaxy_express.core import clock
from tests.support import new_id

PROBLEM = "application/problem+json"


def create_user(testapp, username: str | None = None, **fields) -> dict:
    body = {"username": username or new_id("u"), **fields}
    return testapp.post_json("/v1/users", body, status=201).json


def field_errors(response) -> set[str]:
    assert response.content_type == PROBLEM
    return {error["field"] for error in response.json["errors"]}


def test_create_makes_an_id_when_none_is_given(testapp) -> None:
    with clock.frozen(datetime(2142, 1, 2, 3, 4, 5, tzinfo=UTC)):
        response = testapp.post_json("/v1/users", {"username": "Zap.Brannigan-1_"}, status=201)
    user = response.json
    assert re.fullmatch(r"usr_[0-9a-f]{24}", user["id"])
    assert user == {
        "id": user["id"],
        "username": "Zap.Brannigan-1_",
        "created_at": "2142-01-02T03:04:05Z",
    }
    assert response.headers["Location"].endswith(f"/v1/users/{user['id']}")
    assert testapp.get(f"/v1/users/{user['id']}").json == user


def test_create_with_a_given_id_string_or_integer(testapp) -> None:
    assert create_user(testapp, "leela", id="crew:leela@ship")["id"] == "crew:leela@ship"
    assert create_user(testapp, "fry", id=3000)["id"] == "3000"
    assert testapp.get("/v1/users/3000").json["username"] == "fry"


def test_username_is_taken_regardless_of_case(testapp) -> None:
    first = create_user(testapp, "Zapp")
    response = testapp.post_json("/v1/users", {"username": "zAPP"}, status=409)
    assert response.content_type == PROBLEM
    assert response.json["status"] == 409
    assert field_errors(response) == {"username"}
    # Nothing changed: still the one user.
    assert [u["id"] for u in testapp.get("/v1/users").json["items"]] == [first["id"]]


def test_taken_id_is_a_conflict(testapp) -> None:
    create_user(testapp, "kif", id="k1")
    response = testapp.post_json("/v1/users", {"username": "amy", "id": "k1"}, status=409)
    assert field_errors(response) == {"id"}
    assert testapp.get("/v1/users/k1").json["username"] == "kif"
    assert testapp.get("/v1/users").json["items"][0]["username"] == "kif"
    assert len(testapp.get("/v1/users").json["items"]) == 1


@pytest.mark.parametrize("username", ["abc", "a" * 64, "0-9", "A_b.c-D"])
def test_usernames_at_the_bounds_are_accepted(testapp, username: str) -> None:
    assert create_user(testapp, username)["username"] == username


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "ab"}, "username"),
        ({"username": "a" * 65}, "username"),
        ({"username": "zap brannigan"}, "username"),
        ({"username": "zap!"}, "username"),
        ({"username": "ünïcode"}, "username"),
        ({"username": "ab\x00c"}, "username"),
        ({"username": "ab\ud800c"}, "username"),
        ({"username": "-zap"}, "username"),
        ({"username": 12345}, "username"),
        ({"username": None}, "username"),
        ({}, "username"),
        ({"username": "zapp", "id": ""}, "id"),
        ({"username": "zapp", "id": "has space"}, "id"),
        ({"username": "zapp", "id": "x" * 129}, "id"),
        ({"username": "zapp", "id": -1}, "id"),
        ({"username": "zapp", "nickname": "z"}, "nickname"),
    ],
)
def test_invalid_user_bodies_are_422(testapp, body: dict, field: str) -> None:
    response = testapp.post_json("/v1/users", body, status=422)
    assert field in field_errors(response)
    assert testapp.get("/v1/users").json["items"] == []


def test_unparseable_body_is_400(testapp) -> None:
    testapp.post("/v1/users", "{not json", content_type="application/json", status=400)
    testapp.post("/v1/users", "username=zapp", status=400)


def test_unknown_user_is_404_and_a_bad_id_422(testapp) -> None:
    response = testapp.get("/v1/users/nobody", status=404)
    assert response.content_type == PROBLEM
    testapp.delete("/v1/users/nobody", status=404)
    testapp.get("/v1/users/-bad", status=422)
    testapp.delete("/v1/users/-bad", status=422)


def test_list_walks_in_creation_order_without_skips_or_repeats(testapp) -> None:
    start = datetime(2142, 1, 1, tzinfo=UTC)
    made = []
    for minute in (0, 1, 1, 1, 2, 3, 3):
        with clock.frozen(start.replace(minute=minute)):
            made.append(create_user(testapp))
    expected = [u["id"] for u in sorted(made, key=lambda u: (u["created_at"], u["id"]))]

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = testapp.get("/v1/users", params=params).json
        assert len(page["items"]) <= 2
        seen.extend(u["id"] for u in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert testapp.get("/v1/users").json == {
        "items": sorted(made, key=lambda u: (u["created_at"], u["id"])),
        "next_cursor": None,
    }


def test_users_created_between_pages_are_neither_skipped_nor_repeated(testapp) -> None:
    first = [create_user(testapp)["id"] for _ in range(3)]
    page = testapp.get("/v1/users", params={"limit": "2"}).json
    later = create_user(testapp)["id"]
    rest = testapp.get("/v1/users", params={"limit": "10", "cursor": page["next_cursor"]}).json
    assert [u["id"] for u in page["items"]] + [u["id"] for u in rest["items"]] == [*first, later]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "x" * 2000}, "cursor"),
    ],
)
def test_bad_list_queries_are_422(testapp, params: dict, field: str) -> None:
    response = testapp.get("/v1/users", params=params, status=422)
    assert field_errors(response) == {field}


def test_a_task_list_cursor_is_refused_by_the_user_list(testapp) -> None:
    for _ in range(2):
        testapp.post_json("/v1/tasks", {"name": "t"}, status=201)
    cursor = testapp.get("/v1/tasks", params={"limit": "1"}).json["next_cursor"]
    response = testapp.get("/v1/users", params={"cursor": cursor}, status=422)
    assert field_errors(response) == {"cursor"}


def test_delete_user_frees_the_username_and_removes_assignments(testapp) -> None:
    user = create_user(testapp, "Bender")
    other = create_user(testapp, "hermes")
    task = testapp.post_json("/v1/tasks", {"name": "bend girders"}, status=201).json
    for assignee in (user, other):
        testapp.put(f"/v1/tasks/{task['id']}/assignees/{assignee['id']}", status=204)

    testapp.delete(f"/v1/users/{user['id']}", status=204)

    testapp.get(f"/v1/users/{user['id']}", status=404)
    testapp.delete(f"/v1/users/{user['id']}", status=404)
    testapp.get(f"/v1/users/{user['id']}/tasks", status=404)
    assert testapp.get(f"/v1/tasks/{task['id']}").json["assignee_ids"] == [other["id"]]
    assert testapp.get("/v1/tasks", params={"assignee_id": user["id"]}).json["items"] == []
    # The username and the id are free again.
    again = create_user(testapp, "BENDER", id=user["id"])
    assert testapp.get(f"/v1/tasks/{task['id']}").json["assignee_ids"] == [other["id"]]
    assert again["id"] == user["id"]


def test_concurrent_creation_of_one_username_gives_one_201(testapp) -> None:
    names = ["Nibbler", "nibbler", "NIBBLER", "nIbBlEr"] * 4
    pool = gevent.pool.Pool(len(names))
    responses = pool.map(
        lambda name: testapp.post_json("/v1/users", {"username": name}, expect_errors=True), names
    )
    statuses = sorted(response.status_int for response in responses)
    assert statuses == [201] + [409] * (len(names) - 1)
    assert len(testapp.get("/v1/users").json["items"]) == 1


def test_the_database_refuses_a_username_differing_only_in_case(testapp, database_url) -> None:
    create_user(testapp, "Scruffy", id="s1")
    engine = create_engine(database_url, future=True)
    try:
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(
                text("INSERT INTO users (id, username, created_at) VALUES ('s2', 'sCRUFFY', :at)"),
                {"at": datetime(2142, 1, 1)},
            )
    finally:
        engine.dispose()


def test_user_tasks_lists_only_live_tasks_assigned_to_the_user(testapp) -> None:
    user, other = create_user(testapp), create_user(testapp)
    ids = []
    for name, status in (("a", "PENDING"), ("b", "COMPLETED"), ("c", "PENDING"), ("d", "PENDING")):
        task = testapp.post_json("/v1/tasks", {"name": name, "status": status}, status=201).json
        ids.append(task["id"])
    a, b, c, d = ids
    for task_id in (a, b, c):
        testapp.put(f"/v1/tasks/{task_id}/assignees/{user['id']}", status=204)
    testapp.put(f"/v1/tasks/{d}/assignees/{other['id']}", status=204)
    testapp.delete(f"/v1/tasks/{c}", status=204)

    url = f"/v1/users/{user['id']}/tasks"
    assert [t["id"] for t in testapp.get(url).json["items"]] == [b, a]
    assert [t["id"] for t in testapp.get(url, params={"order": "created_at"}).json["items"]] == [
        a,
        b,
    ]
    assert [t["id"] for t in testapp.get(url, params={"status": "COMPLETED"}).json["items"]] == [b]
    first = testapp.get(url, params={"limit": "1"}).json
    rest = testapp.get(url, params={"limit": "1", "cursor": first["next_cursor"]}).json
    assert [t["id"] for t in first["items"] + rest["items"]] == [b, a]
    assert rest["next_cursor"] is None
    testapp.get(url, params={"order": "name"}, status=422)
    testapp.get("/v1/users/nobody/tasks", status=404)
