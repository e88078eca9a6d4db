"""The webhook delivery log and replay, through the HTTP app and a real Thrift server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import webtest
from baseplate.thrift.ttypes import Error as ThriftError

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.core import clock
from galaxy_express.http.app import make_wsgi_app
from galaxy_express.thrift.gen import ttypes
from galaxy_express.webhooks.service import prune_deliveries
from tests.conftest import TEST_CONFIG, connect_thrift, load_app_config, serving_thrift
from tests.support import assert_problem
from tests.support.processes import run
from tests.support.webhooks import NOW, SECRET, deliver, event, post_signed, signed

LOG = "/v1/webhooks/deliveries"


def deliveries(app: webtest.TestApp, **params: Any) -> list[dict[str, Any]]:
    return list(app.get(LOG, params=params).json["items"])


def replay(app: webtest.TestApp, delivery_id: int, **kwargs: Any) -> webtest.TestResponse:
    return app.post(f"{LOG}/{delivery_id}/replay", expect_errors=True, **kwargs)


def newest_id(app: webtest.TestApp) -> int:
    return int(deliveries(app, limit=1)[0]["id"])


def test_the_log_lists_newest_first_with_filters_and_keyset_pages(
    testapp: webtest.TestApp,
) -> None:
    deliver(testapp, event("created", 0, external_id="a"))
    deliver(testapp, event("created", 0, external_id="b"))
    deliver(testapp, event("updated", 5, external_id="a", content="Fixed"))
    deliver(testapp, event("updated", 6, external_id="nope"))
    deliver(testapp, {"event": "archived"})

    items = deliveries(testapp)
    assert [(i["event"], i["external_id"], i["status"], i["outcome"]) for i in items] == [
        (None, None, 422, "invalid-input"),
        ("updated", "nope", 404, "not-found"),
        ("updated", "a", 200, "updated"),
        ("created", "b", 201, "created"),
        ("created", "a", 201, "created"),
    ]
    assert set(items[0]) == {
        "id", "received_at", "webhook_id", "event", "external_id",
        "status", "outcome", "detail", "replay_of",
    }  # fmt: skip
    assert items[1]["detail"] == "no task with external id 'nope'"
    assert [i["id"] for i in deliveries(testapp, external_id="a")] == [
        items[2]["id"],
        items[4]["id"],
    ]
    assert [i["id"] for i in deliveries(testapp, event="created")] == [
        items[3]["id"],
        items[4]["id"],
    ]
    assert [i["id"] for i in deliveries(testapp, outcome="not-found")] == [items[1]["id"]]

    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = testapp.get(LOG, params=params).json
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [item["id"] for item in items]
    # A cursor belongs to its filters; bad filters are 422.
    first = testapp.get(LOG, params={"limit": 1}).json["next_cursor"]
    other = testapp.get(LOG, params={"cursor": first, "event": "created"}, expect_errors=True)
    assert_problem(other, 422)
    for bad in ({"event": "archived"}, {"external_id": "bad id"}, {"limit": 0}, {"nope": 1}):
        assert_problem(testapp.get(LOG, params=bad, expect_errors=True), 422)


@pytest.fixture
def signed_app(app_config: dict[str, str]) -> webtest.TestApp:
    return webtest.TestApp(make_wsgi_app(app_config | {"webhooks.secret": SECRET}))


def test_one_delivery_shows_its_raw_body_and_redacted_headers(signed_app: webtest.TestApp) -> None:
    raw, headers = signed(event("created", 0), "msg_1")
    with clock.frozen(NOW):
        assert post_signed(signed_app, raw, headers).status_int == 201
    delivery_id = newest_id(signed_app)

    delivery = signed_app.get(f"{LOG}/{delivery_id}").json

    assert delivery["body"] == raw.decode()
    assert delivery["headers"] == {
        "webhook-id": "msg_1",
        "webhook-timestamp": headers["webhook-timestamp"],
        "webhook-signature": "redacted",
    }
    assert headers["webhook-signature"] not in json.dumps(delivery)
    assert (delivery["webhook_id"], delivery["status"], delivery["replay_of"]) == (
        "msg_1",
        201,
        None,
    )
    assert delivery["body_size"] == len(raw)
    assert_problem(signed_app.get(f"{LOG}/999999", expect_errors=True), 404)
    for bad in ("0", "-1", "x", "1e3", "9" * 40):
        assert_problem(signed_app.get(f"{LOG}/{bad}", expect_errors=True), 422)


def test_an_early_update_refused_404_applies_when_replayed_after_its_created(
    signed_app: webtest.TestApp,
) -> None:
    with clock.frozen(NOW):
        early = post_signed(
            signed_app, *signed(event("updated", 10, content="Done", isCompleted=True), "msg_u")
        )
        assert early.status_int == 404
        early_id = newest_id(signed_app)
        created = post_signed(signed_app, *signed(event("created", 0), "msg_c"))
        assert created.status_int == 201
    task_id = created.json["task"]["id"]
    assert signed_app.get(f"/v1/tasks/{task_id}").json["status"] == "PENDING"

    # An hour later: past the freshness window, and msg_u was seen; the replay applies anyway.
    with clock.frozen(NOW + timedelta(hours=1)):
        answer = replay(signed_app, early_id)

    assert answer.status_int == 200
    assert answer.json["replay_of"] == early_id
    assert answer.json["id"] != early_id
    assert (answer.json["status"], answer.json["outcome"]) == (200, "updated")
    assert answer.json["applied"] is True
    assert answer.json["webhook_id"] == "msg_u"
    assert answer.json["headers"]["webhook-signature"] == "redacted"
    task = signed_app.get(f"/v1/tasks/{task_id}").json
    assert (task["name"], task["status"], task["completed_at"]) == (
        "Done",
        "COMPLETED",
        "2142-05-01T11:10:00Z",
    )
    assert answer.json["task"] == task
    # The replay is in the log like any delivery, pointing at what it replayed.
    newest = deliveries(signed_app)[0]
    assert (newest["id"], newest["replay_of"], newest["outcome"]) == (
        answer.json["id"],
        early_id,
        "updated",
    )
    assert (
        signed_app.get(f"{LOG}/{newest['id']}").json["body"]
        == signed_app.get(f"{LOG}/{early_id}").json["body"]
    )


@pytest.mark.parametrize("kind", ["created", "updated", "deleted"])
def test_replaying_an_applied_event_changes_nothing(testapp: webtest.TestApp, kind: str) -> None:
    deliver(testapp, event("created", 0))
    if kind != "created":
        deliver(testapp, event(kind, 20, content="Renamed"))
    applied_id = newest_id(testapp)
    task_id = deliveries(testapp)[0]["external_id"]
    before = testapp.get("/v1/tasks", params={"limit": 1}).json["items"]

    for _ in range(2):  # a replay of a replay too
        answer = replay(testapp, applied_id)
        assert answer.status_int == 200
        assert answer.json["applied"] is False
        assert answer.json["outcome"] == "already_applied"
        assert answer.json["status"] == 200
        applied_id = answer.json["id"]

    assert testapp.get("/v1/tasks", params={"limit": 1}).json["items"] == before
    assert task_id == "todo-1"


def test_a_stale_event_replayed_stays_stale(testapp: webtest.TestApp) -> None:
    deliver(testapp, event("created", 0))
    deliver(testapp, event("updated", 30, content="New"))
    deliver(testapp, event("updated", 10, content="Old"))
    answer = replay(testapp, newest_id(testapp))
    assert (answer.json["outcome"], answer.json["applied"]) == ("stale", False)
    assert answer.json["task"]["name"] == "New"


def test_a_404_replayed_before_its_created_is_logged_404_again(testapp: webtest.TestApp) -> None:
    deliver(testapp, event("updated", 1, external_id="later"))
    answer = replay(testapp, newest_id(testapp))
    assert answer.status_int == 200
    assert (answer.json["status"], answer.json["outcome"], answer.json["applied"]) == (
        404,
        "not-found",
        False,
    )
    assert answer.json["task"] is None


def test_never_verified_or_unread_deliveries_can_not_be_replayed(
    signed_app: webtest.TestApp, app_config: dict[str, str]
) -> None:
    raw, headers = signed(event("created", 0), "msg_1")
    with clock.frozen(NOW):
        forged = post_signed(signed_app, raw, headers | {"webhook-signature": "v1," + "A" * 44})
    assert forged.status_int == 401
    assert_problem(replay(signed_app, newest_id(signed_app)), 409)

    huge = b'{"event": "created", "pad": "' + b"x" * 70_000 + b'"}'
    with clock.frozen(NOW + timedelta(seconds=1)):
        post_signed(signed_app, huge, headers)
    assert deliveries(signed_app)[0]["status"] == 413
    assert_problem(replay(signed_app, newest_id(signed_app)), 409)

    # Only the two refusals are logged; neither replay wrote a delivery.
    assert [d["status"] for d in deliveries(signed_app)] == [413, 401]
    assert signed_app.get("/v1/tasks").json["items"] == []
    assert_problem(replay(signed_app, 424242), 404)


def test_a_body_pruned_after_retention_can_not_be_replayed(
    testapp: webtest.TestApp, app_config: dict[str, str]
) -> None:
    deliver(testapp, event("updated", 1))
    delivery_id = newest_id(testapp)
    baseplate, _ = make_baseplate(app_config | {"webhooks.retention_days": "1"})
    with baseplate.server_context("test") as context, clock.frozen(clock.now() + timedelta(days=2)):
        assert prune_deliveries(context).bodies == 1
    assert testapp.get(f"{LOG}/{delivery_id}").json["body"] is None
    answer = replay(testapp, delivery_id)
    assert_problem(answer, 409)
    assert "retention_days" in answer.json["detail"]


# ---- API keys ----------------------------------------------------------------

OPS, ALICE, OLD = "key-ops-admin", "key-alice-mailbox", "key-unscoped"


@pytest.fixture
def keyed_app(app_config: dict[str, str]) -> webtest.TestApp:
    config = app_config | {
        "auth.keys": f"{OPS} admin\n{ALICE} recipients:alice",
        "auth.api_keys": OLD,
    }
    return webtest.TestApp(make_wsgi_app(config))


def test_the_log_and_replay_need_an_admin_key(keyed_app: webtest.TestApp) -> None:
    ops = {"Authorization": f"Bearer {OPS}"}
    keyed_app.post_json("/v1/webhooks/tasks", event("updated", 1), headers=ops, status=404)
    delivery_id = newest_id_with(keyed_app, ops)
    routes = [
        ("GET", LOG),
        ("GET", f"{LOG}/{delivery_id}"),
        ("POST", f"{LOG}/{delivery_id}/replay"),
    ]
    for method, path in routes:
        assert_problem(keyed_app.request(path, method=method, expect_errors=True), 401)
        wrong = {"X-API-Key": "not-a-key"}
        assert_problem(
            keyed_app.request(path, method=method, headers=wrong, expect_errors=True), 401
        )
        alice = {"X-API-Key": ALICE}
        assert_problem(
            keyed_app.request(path, method=method, headers=alice, expect_errors=True), 403
        )
        for key in (OPS, OLD):
            answer = keyed_app.request(path, method=method, headers={"X-API-Key": key})
            assert answer.status_int == 200


def newest_id_with(app: webtest.TestApp, headers: dict[str, str]) -> int:
    return int(app.get(LOG, params={"limit": 1}, headers=headers).json["items"][0]["id"])


# ---- Thrift ------------------------------------------------------------------


@pytest.fixture
def thrift_and_http(app_config: dict[str, str]) -> Iterator[tuple[Any, webtest.TestApp]]:
    with serving_thrift(app_config) as (host, port):
        client, transport = connect_thrift(host, port)
        try:
            yield client, webtest.TestApp(make_wsgi_app(app_config))
        finally:
            transport.close()


def test_the_thrift_methods_list_get_and_replay(
    thrift_and_http: tuple[Any, webtest.TestApp],
) -> None:
    client, app = thrift_and_http
    deliver(app, event("updated", 10, content="Done"))
    deliver(app, event("created", 0))

    page = client.list_webhook_deliveries(ttypes.ListWebhookDeliveriesRequest(limit=1))
    assert [d.outcome for d in page.items] == ["created"]
    rest = client.list_webhook_deliveries(
        ttypes.ListWebhookDeliveriesRequest(limit=1, cursor=page.next_cursor)
    )
    [early] = rest.items
    assert (early.event, early.status, early.outcome, early.body) == (
        "updated",
        404,
        "not-found",
        None,
    )
    only = client.list_webhook_deliveries(ttypes.ListWebhookDeliveriesRequest(outcome="not-found"))
    assert [d.id for d in only.items] == [early.id]

    one = client.get_webhook_delivery(early.id)
    assert json.loads(one.body)["metadata"]["content"] == "Done"
    assert one.headers == {}

    replayed = client.replay_webhook_delivery(early.id, None)
    assert (replayed.replay_of, replayed.outcome, replayed.applied) == (early.id, "updated", True)
    assert replayed.task.name == "Done"
    assert app.get(LOG).json["items"][0]["id"] == replayed.id

    for call, argument, code in [
        (client.get_webhook_delivery, 999_999, 404),
        (client.get_webhook_delivery, 0, 422),
        (client.replay_webhook_delivery, -5, 422),
    ]:
        with pytest.raises(ThriftError) as caught:
            # The generated client takes every argument, the optional key included.
            call(argument, *([None] if call == client.replay_webhook_delivery else []))
        assert caught.value.code == code
    with pytest.raises(ThriftError) as caught:
        client.list_webhook_deliveries(ttypes.ListWebhookDeliveriesRequest(event="archived"))
    assert caught.value.code == 422


# ---- make shell ----------------------------------------------------------------


def test_the_shell_lists_and_replays_deliveries(
    sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    config = load_app_config(
        **{"db.url": sqlite_url, "redis.url": redis_url, "reports.dir": str(tmp_path / "r")}
    )
    app = webtest.TestApp(make_wsgi_app(config))
    deliver(app, event("updated", 10, content="Done"))
    deliver(app, event("created", 0))
    script = (
        "[early] = ops.deliveries(outcome='not-found')\n"
        "print('early', early.status, ops.delivery(early.id).body is not None)\n"
        "done = ops.replay(early.id)\n"
        "print('replayed', done.delivery.replay_of == early.id, done.applied, done.task.name)\n"
    )
    env = {"DATABASE_URL": sqlite_url, "REDIS_URL": redis_url}

    result = run(["-m", "galaxy_express.runtime.shell", str(TEST_CONFIG)], env, stdin=script)

    assert "early 404 True" in result.stdout, result.stderr[-2000:]
    assert "replayed True True Done" in result.stdout, result.stderr[-2000:]
    assert app.get("/v1/tasks").json["items"][0]["name"] == "Done"
