"""Idempotency-Key on every mutating HTTP operation, on both databases.

Driven by the declared operations: a new POST, PUT, PATCH or DELETE under /v1/
fails ``test_every_keyed_operation_has_an_example`` until it gets an example here,
and then runs every check below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import webtest

from galaxy_express.http.views import domain_apis
from galaxy_express.http.web import Operation, takes_idempotency_key
from tests.conftest import new_id
from tests.support import delivered_webhook, snapshot, stored_keys

REUSED = "idempotency-key-reused"


def keyed_operations() -> list[Operation]:
    return [op for api in domain_apis() for op in api.operations if takes_idempotency_key(op)]


@dataclass(frozen=True)
class Example:
    """One operation's requests: the one under test, another body, an invalid one."""

    path: str
    body: Any
    other_body: Any
    invalid_path: str | None = None  # when the invalid request is in the path
    invalid_body: Any = None


def _send(app: webtest.TestApp, package_id: str, recipient: str = "mars-1") -> None:
    app.post_json("/v1/packages", _package(package_id, recipient), status=201)


def _package(package_id: str, recipient: str = "mars-1", subject: str = "hi") -> dict[str, Any]:
    return {
        "timestamp": "2142-01-01T12:00:00Z",
        "sender_id": "earth-7",
        "recipient_id": recipient,
        "package_id": package_id,
        "package_type": "personal",
        "content": {"subject": subject, "body": "b"},
    }


def _user(app: webtest.TestApp) -> str:
    return str(app.post_json("/v1/users", {"username": new_id("u")}, status=201).json["id"])


def _task(app: webtest.TestApp) -> str:
    return str(app.post_json("/v1/tasks", {"name": "t"}, status=201).json["id"])


def _inbox_action(action: str) -> Callable[[webtest.TestApp], Example]:
    def example(app: webtest.TestApp) -> Example:
        recipient = new_id("r")
        _send(app, "p-a", recipient)
        _send(app, "p-b", recipient)
        return Example(
            f"/v1/inbox/{recipient}/{action}",
            {"package_ids": ["p-a"]},
            {"package_ids": ["p-b"]},
            invalid_body={"package_ids": []},
        )

    return example


def _bulk_update_inbox(app: webtest.TestApp) -> Example:
    recipient = new_id("r")
    _send(app, "p-a", recipient)
    _send(app, "p-b", recipient)
    return Example(
        f"/v1/inbox/{recipient}/bulk",
        {"action": "trash", "filter": {}, "up_to_seq": 1},
        {"action": "trash", "filter": {}, "up_to_seq": 2},
        invalid_body={"action": "trash", "filter": {}, "up_to_seq": -1},
    )


def _delete_inbox_package(app: webtest.TestApp) -> Example:
    _send(app, "p-x", "r-x")
    return Example("/v1/inbox/r-x/p-x", None, {"extra": 1}, invalid_path="/v1/inbox/r-x/-bad")


def _event(minute: int, content: str = "Fix the airlock") -> dict[str, Any]:
    return {
        "event": "created",
        "timestamp": f"2142-05-01T11:{minute:02d}:00Z",
        "metadata": {"userId": "crew-1", "id": "todo-1", "content": content, "isCompleted": False},
    }


def _lookup(app: webtest.TestApp) -> Example:
    _send(app, "p-1")
    return Example(
        "/v1/packages/lookup",
        {"package_ids": ["p-1"]},
        {"package_ids": ["p-1", "p-2"]},
        invalid_body={"package_ids": []},
    )


EXAMPLES: dict[str, Callable[[webtest.TestApp], Example]] = {
    "send_package": lambda app: Example(
        "/v1/packages",
        _package("p-1"),
        _package("p-2"),
        invalid_body={**_package("p-1"), "package_type": "nope"},
    ),
    "update_preferences": lambda app: Example(
        "/v1/preferences",
        {
            "timestamp": "2142-01-01T00:00:00Z",
            "recipient_id": "m",
            "personal_preference": True,
            "marketing_preference": False,
        },
        {
            "timestamp": "2142-01-02T00:00:00Z",
            "recipient_id": "m",
            "personal_preference": True,
            "marketing_preference": False,
        },
        invalid_body={"timestamp": "yesterday", "recipient_id": "m"},
    ),
    **{
        f"{action}_inbox_packages": _inbox_action(action)
        for action in ("read", "unread", "trash", "restore", "spam", "delete")
    },
    "delete_inbox_package": lambda app: _delete_inbox_package(app),
    "bulk_update_inbox": lambda app: _bulk_update_inbox(app),
    "create_user": lambda app: Example(
        "/v1/users", {"username": "zap"}, {"username": "zip"}, invalid_body={"username": ""}
    ),
    "delete_user": lambda app: Example(
        f"/v1/users/{_user(app)}", None, {"extra": 1}, invalid_path="/v1/users/-bad"
    ),
    "create_task": lambda app: Example(
        "/v1/tasks", {"name": "a"}, {"name": "b"}, invalid_body={"name": ""}
    ),
    "replace_task": lambda app: Example(
        f"/v1/tasks/{_task(app)}", {"name": "a"}, {"name": "b"}, invalid_body={"status": "x"}
    ),
    "patch_task": lambda app: Example(
        f"/v1/tasks/{_task(app)}",
        {"description": "d"},
        {"description": None},
        invalid_body={"status": "x"},
    ),
    "delete_task": lambda app: Example(
        f"/v1/tasks/{_task(app)}", None, {"extra": 1}, invalid_path="/v1/tasks/-bad"
    ),
    "assign_task": lambda app: Example(
        f"/v1/tasks/{_task(app)}/assignees/{_user(app)}",
        None,
        {"extra": 1},
        invalid_path="/v1/tasks/-bad/assignees/u",
    ),
    "unassign_task": lambda app: (
        lambda task, user: (
            app.put(f"/v1/tasks/{task}/assignees/{user}", status=204),
            Example(
                f"/v1/tasks/{task}/assignees/{user}",
                None,
                {"extra": 1},
                invalid_path="/v1/tasks/-bad/assignees/u",
            ),
        )[1]
    )(_task(app), _user(app)),
    "lookup_packages": lambda app: _lookup(app),
    "send_packages": lambda app: Example(
        "/v1/packages/batch",
        {"packages": [_package("p-1")]},
        {"packages": [_package("p-2")]},
        invalid_body={"packages": []},
    ),
    "replay_webhook_delivery": lambda app: Example(
        f"/v1/webhooks/deliveries/{delivered_webhook(app, new_id('todo'))}/replay",
        None,
        {"extra": 1},
        invalid_path="/v1/webhooks/deliveries/-1/replay",
    ),
    "receive_task_event": lambda app: Example(
        "/v1/webhooks/tasks",
        _event(0),
        _event(0, "Fix the hatch"),
        invalid_body={"event": "exploded"},
    ),
}


def call(
    app: webtest.TestApp, op: Operation, path: str, body: Any, key: str | None
) -> webtest.TestResponse:
    headers = {} if key is None else {"Idempotency-Key": key}
    method = getattr(app, f"{op.method.lower()}_json")
    if body is None:
        method = getattr(app, op.method.lower())
        return method(path, headers=headers, expect_errors=True)
    return method(path, body, headers=headers, expect_errors=True)


def test_every_keyed_operation_has_an_example() -> None:
    names = {op.name for op in keyed_operations()}
    assert names == set(EXAMPLES), "give each new mutating operation an example here"


@pytest.mark.parametrize("op", keyed_operations(), ids=lambda op: op.name)
def test_a_key_answers_once(testapp: webtest.TestApp, database_url: str, op: Operation) -> None:
    example = EXAMPLES[op.name](testapp)
    key = new_id("key")

    first = call(testapp, op, example.path, example.body, key)
    assert first.status_int < 300, first.text
    assert "Idempotent-Replayed" not in first.headers
    before = snapshot(database_url)

    again = call(testapp, op, example.path, example.body, key)
    assert (again.status_int, again.body) == (first.status_int, first.body)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers.get("Location") == first.headers.get("Location")
    assert again.headers.get("Content-Type") == first.headers.get("Content-Type")

    reused = call(testapp, op, example.path, example.other_body, key)
    assert reused.status_int == 422
    assert reused.content_type == "application/problem+json"
    assert reused.json["type"].endswith(REUSED)
    assert snapshot(database_url) == before


@pytest.mark.parametrize("op", keyed_operations(), ids=lambda op: op.name)
def test_a_refused_request_leaves_its_key_free(
    testapp: webtest.TestApp, database_url: str, op: Operation
) -> None:
    example = EXAMPLES[op.name](testapp)
    key = new_id("key")

    refused = call(testapp, op, example.invalid_path or example.path, example.invalid_body, key)
    assert refused.status_int in (400, 422), refused.text
    assert not refused.json["type"].endswith(REUSED)
    assert stored_keys(database_url, key) == 0

    fixed = call(testapp, op, example.path, example.body, key)
    assert fixed.status_int < 300, fixed.text
    assert "Idempotent-Replayed" not in fixed.headers
    assert stored_keys(database_url, key) == 1


@pytest.mark.parametrize(
    "key",
    ["", " ", "a b", "é", "x" * 256, "tab\there"],
    ids=["empty", "space", "inner", "latin", "long", "tab"],
)
def test_a_key_that_is_not_visible_ascii_is_400(testapp: webtest.TestApp, key: str) -> None:
    answer = testapp.post_json(
        "/v1/tasks", {"name": "a"}, headers={"Idempotency-Key": key}, expect_errors=True
    )
    assert answer.status_int == 400
    assert answer.json["errors"][0]["field"] == "Idempotency-Key"
    assert testapp.get("/v1/tasks").json["items"] == []


def test_the_longest_key_is_taken(testapp: webtest.TestApp) -> None:
    key = "~" * 255
    first = testapp.post_json("/v1/tasks", {"name": "a"}, headers={"Idempotency-Key": key})
    again = testapp.post_json("/v1/tasks", {"name": "a"}, headers={"Idempotency-Key": key})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json


def test_repeats_compare_the_normalised_body(testapp: webtest.TestApp) -> None:
    key = {"Idempotency-Key": "norm-1"}
    first = testapp.post_json("/v1/packages", _package(7), headers=key, status=201)  # type: ignore[arg-type]
    spelled = {**_package("7"), "timestamp": "2142-01-01T12:00:00+00:00"}
    again = testapp.post_json("/v1/packages", spelled, headers=key, status=201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json


def test_a_key_is_scoped_to_method_and_path(testapp: webtest.TestApp) -> None:
    key = {"Idempotency-Key": "shared"}
    task = testapp.post_json("/v1/tasks", {"name": "a"}, headers=key, status=201).json
    user = testapp.post_json("/v1/users", {"username": "abc"}, headers=key, status=201)
    assert "Idempotent-Replayed" not in user.headers
    patched = testapp.patch_json(f"/v1/tasks/{task['id']}", {"name": "b"}, headers=key)
    assert patched.json["name"] == "b"
    assert "Idempotent-Replayed" not in patched.headers


def test_a_repeated_delete_replays_its_204(testapp: webtest.TestApp) -> None:
    user = _user(testapp)
    key = {"Idempotency-Key": "del-1"}
    testapp.delete(f"/v1/users/{user}", headers=key, status=204)
    again = testapp.delete(f"/v1/users/{user}", headers=key, status=204)
    assert again.headers["Idempotent-Replayed"] == "true"
    testapp.delete(f"/v1/users/{user}", status=404)


def test_a_send_without_a_key_keeps_its_package_id_idempotency(testapp: webtest.TestApp) -> None:
    testapp.post_json("/v1/packages", _package("p-9"), status=201)
    keyed = testapp.post_json(
        "/v1/packages", _package("p-9"), headers={"Idempotency-Key": "k-9"}, status=200
    )
    assert keyed.headers["Idempotent-Replayed"] == "true"
    conflict = testapp.post_json(
        "/v1/packages",
        _package("p-9", subject="other"),
        headers={"Idempotency-Key": "k-10"},
        status=409,
    )
    again = testapp.post_json(
        "/v1/packages",
        _package("p-9", subject="other"),
        headers={"Idempotency-Key": "k-10"},
        status=409,
    )
    assert again.body == conflict.body
    assert again.headers["Idempotent-Replayed"] == "true"


def test_a_bad_key_counts_as_an_invalid_send_and_a_reused_one_changes_nothing(
    testapp: webtest.TestApp,
) -> None:
    testapp.post_json("/v1/packages", _package("p-1"), headers={"Idempotency-Key": "k"})
    testapp.post_json("/v1/packages", _package("p-2"), headers={"Idempotency-Key": "k"}, status=422)
    testapp.post_json("/v1/packages", _package("p-3"), headers={"Idempotency-Key": " "}, status=400)
    assert testapp.get("/v1/stats").json["dropped_by_reason"]["invalid"] == 1
    testapp.get("/v1/packages/p-2", status=404)
    testapp.get("/v1/packages/p-3", status=404)


def test_keys_are_scoped_to_the_api_key(app_config: dict[str, str]) -> None:
    from galaxy_express.http.app import make_wsgi_app

    app = webtest.TestApp(make_wsgi_app(app_config | {"auth.api_keys": "alpha,beta"}))
    key = "same-key"
    alpha = app.post_json(
        "/v1/tasks", {"name": "a"}, headers={"Idempotency-Key": key, "X-API-Key": "alpha"}
    )
    beta = app.post_json(
        "/v1/tasks", {"name": "a"}, headers={"Idempotency-Key": key, "Authorization": "Bearer beta"}
    )
    assert "Idempotent-Replayed" not in beta.headers
    assert beta.json["id"] != alpha.json["id"]
    again = app.post_json(
        "/v1/tasks",
        {"name": "a"},
        headers={"Idempotency-Key": key, "Authorization": "Bearer alpha"},
    )
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == alpha.json


def test_the_document_describes_the_header_on_every_keyed_operation(
    testapp: webtest.TestApp,
) -> None:
    document = testapp.get("/openapi.json").json
    for op in keyed_operations():
        spec = document["paths"][op.path][op.method.lower()]
        names = [p["name"] for p in spec["parameters"] if p["in"] == "header"]
        assert names == ["Idempotency-Key"], op.name
        assert "idempotency-key-reused" in spec["responses"]["422"]["description"]
        success = next(r for s, r in spec["responses"].items() if s.startswith("2"))
        assert "Idempotent-Replayed" in success["headers"]
    reads = document["paths"]["/v1/tasks"]["get"]
    assert all(p["name"] != "Idempotency-Key" for p in reads["parameters"])


def test_a_keyed_batch_over_a_single_sends_size_still_answers_once(
    testapp: webtest.TestApp,
) -> None:
    # 100 items of 1 KiB bodies: over the 64 KiB of a single send, within a batch's 1 MiB.
    items = [_package(f"big-{index}") for index in range(100)]
    for item in items:
        item["content"]["body"] = "x" * 1024
    key = {"Idempotency-Key": "big-batch"}
    first = testapp.post_json("/v1/packages/batch", {"packages": items}, headers=key, status=200)
    again = testapp.post_json("/v1/packages/batch", {"packages": items}, headers=key, status=200)
    assert len(first.request.body) > 64 * 1024
    assert [r["status"] for r in first.json["results"]] == [201] * 100
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.body == first.body
