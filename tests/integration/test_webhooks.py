"""Task webhooks from the external TODO service, through the HTTP app."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gevent
import pytest
import webtest
from sqlalchemy import create_engine, select, text

from galaxy_express.core import clock
from galaxy_express.core.config import parse_settings
from galaxy_express.db import unit_of_work
from galaxy_express.http.app import make_wsgi_app
from galaxy_express.runtime.reporter import housekeeping_round
from galaxy_express.webhooks.models import SeenWebhookId, WebhookDelivery
from galaxy_express.webhooks.service import prune_seen_ids
from tests.support import assert_problem, wait_until
from tests.support.webhooks import NOW, SECRET, deliver, event, post_signed, signed


def audit_outcomes(database_url: str) -> list[tuple[int, str]]:
    engine = create_engine(database_url, future=True)
    with engine.connect() as connection:
        rows = connection.execute(
            select(WebhookDelivery.status_code, WebhookDelivery.outcome).order_by(
                WebhookDelivery.id
            )
        ).all()
    engine.dispose()
    return [(int(status), str(outcome)) for status, outcome in rows]


def test_created_makes_a_task_from_the_event(testapp: webtest.TestApp) -> None:
    answer = deliver(testapp, event("created", 0, isCompleted=True))

    assert answer.status_int == 201
    task = answer.json["task"]
    assert answer.json["applied"] is True
    assert task["external_id"] == "todo-1"
    assert task["owner_id"] == "crew-1"
    assert task["name"] == "Fix the airlock"
    assert task["status"] == "COMPLETED"
    assert task["created_at"] == task["completed_at"] == "2142-05-01T11:00:00Z"
    assert testapp.get(f"/v1/tasks/{task['id']}").json == task


def test_redelivered_created_changes_nothing_and_a_different_one_conflicts(
    testapp: webtest.TestApp,
) -> None:
    first = deliver(testapp, event("created", 0))
    again = deliver(testapp, event("created", 0))
    different = deliver(testapp, event("created", 0, content="Something else"))
    other_time = deliver(testapp, event("created", 5))

    assert (first.status_int, again.status_int) == (201, 200)
    assert again.json["applied"] is False
    assert again.json["task"] == first.json["task"]
    assert different.status_int == 409
    assert other_time.status_int == 409
    assert different.content_type == "application/problem+json"
    assert len(testapp.get("/v1/tasks").json["items"]) == 1


def test_updates_apply_in_timestamp_order_per_task(testapp: webtest.TestApp) -> None:
    task_id = deliver(testapp, event("created", 0)).json["task"]["id"]

    completed = deliver(testapp, event("updated", 30, content="Airlock fixed", isCompleted=True))
    stale = deliver(testapp, event("updated", 10, content="Still broken"))
    reopened = deliver(testapp, event("updated", 40, content="Airlock fixed", isCompleted=False))

    assert completed.status_int == 200
    assert completed.json["task"]["completed_at"] == "2142-05-01T11:30:00Z"
    assert stale.status_int == 200
    assert stale.json["applied"] is False
    assert stale.json["task"]["name"] == "Airlock fixed"
    task = testapp.get(f"/v1/tasks/{task_id}").json
    assert reopened.json["applied"] is True
    assert (task["status"], task["completed_at"]) == ("PENDING", None)
    assert task["updated_at"] == "2142-05-01T11:40:00Z"


def test_deleted_sets_deleted_at_and_later_updates_do_not_revive(
    testapp: webtest.TestApp,
) -> None:
    task_id = deliver(testapp, event("created", 0)).json["task"]["id"]

    deleted = deliver(testapp, event("deleted", 20))
    again = deliver(testapp, event("deleted", 20))
    later_update = deliver(testapp, event("updated", 25, content="zombie"))

    assert deleted.status_int == again.status_int == 200
    assert deleted.json["task"]["deleted_at"] == "2142-05-01T11:20:00Z"
    assert later_update.json["applied"] is False
    assert testapp.get(f"/v1/tasks/{task_id}", expect_errors=True).status_int == 404


def test_unknown_tasks_are_404(testapp: webtest.TestApp) -> None:
    assert deliver(testapp, event("updated", 1, external_id="nope")).status_int == 404
    assert deliver(testapp, event("deleted", 1, external_id="nope")).status_int == 404


@pytest.mark.parametrize(
    "body",
    [
        {"event": "archived", "timestamp": "2142-05-01T11:00:00Z", "metadata": {}},
        event("created", 0) | {"metadata": None},
        event("created", 0, isCompleted="yes"),
        event("created", 0, content=""),
        event("created", 0, content="x" * 201),
        event("created", 0, id="bad id"),
        event("created", 0) | {"timestamp": "soon"},
        {"metadata": event("created", 0)["metadata"]},
    ],
)
def test_bad_events_are_422(testapp: webtest.TestApp, body: dict[str, Any]) -> None:
    answer = deliver(testapp, body)
    assert answer.status_int == 422
    assert answer.content_type == "application/problem+json"


def test_every_delivery_is_audited_with_its_outcome(
    testapp: webtest.TestApp, database_url: str
) -> None:
    deliver(testapp, event("created", 0))
    deliver(testapp, event("created", 0))
    deliver(testapp, event("updated", 5, external_id="unknown"))
    deliver(testapp, {"event": "archived"})
    testapp.post("/v1/webhooks/tasks", b"{oops", content_type="application/json", status=400)

    assert audit_outcomes(database_url) == [
        (201, "created"),
        (200, "redelivered"),
        (404, "not-found"),
        (422, "invalid-input"),
        (400, "malformed-request"),
    ]


# ---- Signed deliveries --------------------------------------------------------


@pytest.fixture
def signed_app(app_config: dict[str, str]) -> webtest.TestApp:
    return webtest.TestApp(make_wsgi_app(app_config | {"webhooks.secret": SECRET}))


def test_a_correctly_signed_delivery_is_processed(signed_app: webtest.TestApp) -> None:
    with clock.frozen(NOW):
        answer = post_signed(signed_app, *signed(event("created", 0), "msg_1"))
    assert answer.status_int == 201


@pytest.mark.parametrize(
    "case",
    ["forged", "one_byte_changed", "old_timestamp", "future_timestamp", "missing_headers"],
)
def test_bad_signatures_are_401_and_change_nothing(
    signed_app: webtest.TestApp, database_url: str, case: str
) -> None:
    body = event("created", 0)
    raw, headers = signed(body, "msg_1")
    if case == "forged":
        headers["webhook-signature"] = "v1," + "A" * 44
    elif case == "one_byte_changed":
        raw = raw.replace(b"airlock", b"airlocK")
    elif case == "old_timestamp":
        raw, headers = signed(body, "msg_1", sent_at=datetime(2142, 5, 1, 11, 54, 59, tzinfo=UTC))
    elif case == "future_timestamp":
        raw, headers = signed(body, "msg_1", sent_at=datetime(2142, 5, 1, 12, 5, 1, tzinfo=UTC))
    else:
        headers = {}

    with clock.frozen(NOW):
        answer = post_signed(signed_app, raw, headers)

    assert answer.status_int == 401
    assert answer.content_type == "application/problem+json"
    assert signed_app.get("/v1/tasks").json["items"] == []
    assert audit_outcomes(database_url) == [(401, "unauthorized")]


def test_a_seen_webhook_id_is_answered_without_reprocessing(signed_app: webtest.TestApp) -> None:
    with clock.frozen(NOW):
        first = post_signed(signed_app, *signed(event("created", 0), "msg_1"))
        # The same webhook-id, even with another (validly signed) body, is not processed again.
        repeat = post_signed(signed_app, *signed(event("updated", 9, content="changed"), "msg_1"))

    assert first.status_int == 201
    assert repeat.status_int == 200
    assert repeat.json["duplicate"] is True
    assert repeat.json["task"] == first.json["task"]
    task_id = first.json["task"]["id"]
    assert signed_app.get(f"/v1/tasks/{task_id}").json["name"] == "Fix the airlock"


def test_a_rotated_key_any_of_several_signatures_may_match(signed_app: webtest.TestApp) -> None:
    """Standard Webhooks: the header lists ``v1,<signature>`` entries separated by spaces,
    one per key while keys rotate; the delivery holds when any of them is ours."""
    forged = "v1," + "A" * 44
    deliveries = []
    with clock.frozen(NOW):
        for index, place in enumerate(["last", "first", "none"]):
            raw, headers = signed(event("created", index, external_id=f"todo-{index}"), f"m{index}")
            ours = headers["webhook-signature"]
            entries = {"last": [forged, "v1a,xyz", ours], "first": [ours, forged], "none": [forged]}
            headers["webhook-signature"] = " ".join(entries[place])
            deliveries.append(post_signed(signed_app, raw, headers))

    assert [answer.status_int for answer in deliveries] == [201, 201, 401]
    assert len(signed_app.get("/v1/tasks").json["items"]) == 2


def test_a_seen_webhook_id_with_a_bad_signature_is_401_and_marks_nothing(
    signed_app: webtest.TestApp, database_url: str
) -> None:
    with clock.frozen(NOW):
        first = post_signed(signed_app, *signed(event("created", 0), "msg_1"))
        raw, headers = signed(event("updated", 9, content="forged"), "msg_1")
        headers["webhook-signature"] = "v1," + "A" * 44
        seen_but_forged = post_signed(signed_app, raw, headers)
        # A new id under a bad signature is not marked seen: its real delivery is applied.
        raw, headers = signed(event("updated", 10, content="real"), "msg_2")
        forged_new = post_signed(signed_app, raw, {**headers, "webhook-signature": "v1,AAAA"})
        real_new = post_signed(signed_app, raw, headers)

    assert first.status_int == 201
    assert_problem(seen_but_forged, 401)
    assert "duplicate" not in seen_but_forged.text, "a forged repeat learns nothing of the first"
    assert_problem(forged_new, 401)
    assert (real_new.status_int, real_new.json["duplicate"]) == (200, False)
    assert real_new.json["task"]["name"] == "real"
    assert audit_outcomes(database_url) == [
        (201, "created"),
        (401, "unauthorized"),
        (401, "unauthorized"),
        (200, "updated"),
    ]


# ---- Concurrent deliveries (PostgreSQL: the losers' IntegrityError, then a retry) --------


def race_held_at_the_task_insert(
    database_url: str, racers: int, deliver_one: Callable[[int], webtest.TestResponse]
) -> list[webtest.TestResponse]:
    """Every racer reads "no such task" and then waits at its insert (the tasks table
    locked against writes) until all are waiting; released together, one insert wins
    and the others meet its row: the IntegrityError the service retries once."""
    engine = create_engine(database_url, future=True)
    try:
        watching = engine.execution_options(isolation_level="AUTOCOMMIT")  # a fresh view a read
        with engine.connect() as holder, watching.connect() as watcher:
            holder.execute(text("LOCK TABLE tasks IN EXCLUSIVE MODE"))
            greenlets = [gevent.spawn(deliver_one, index) for index in range(racers)]
            wait_until(
                lambda: watcher.execute(WAITING_ON_A_LOCK).scalar_one() >= racers,
                seconds=30,
                what=f"{racers} deliveries waiting at the same insert",
            )
            holder.commit()
            gevent.joinall(greenlets, timeout=30, raise_error=True)
    finally:
        engine.dispose()
    return [greenlet.value for greenlet in greenlets]


WAITING_ON_A_LOCK = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


@pytest.mark.postgresql
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_racing_deliveries_of_one_webhook_id_apply_it_once(
    signed_app: webtest.TestApp, database_url: str
) -> None:
    raw, headers = signed(event("created", 0), "msg_race")

    def deliver_one(_index: int) -> webtest.TestResponse:
        with clock.frozen(NOW):
            return post_signed(signed_app, raw, headers)

    answers = race_held_at_the_task_insert(database_url, 4, deliver_one)

    assert sorted(answer.status_int for answer in answers) == [200, 200, 200, 201]
    assert sum(bool(answer.json.get("duplicate")) for answer in answers) == 3
    assert len({answer.json["task"]["id"] for answer in answers}) == 1
    assert len(signed_app.get("/v1/tasks").json["items"]) == 1


@pytest.mark.postgresql
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_racing_created_events_of_one_task_make_one_task(
    testapp: webtest.TestApp, database_url: str
) -> None:
    def deliver_one(index: int) -> webtest.TestResponse:
        # The same event, under another webhook-id each (unsigned: no secret here).
        return deliver(testapp, event("created", 0), headers={"webhook-id": f"msg-{index}"})

    answers = race_held_at_the_task_insert(database_url, 4, deliver_one)

    assert sorted(answer.status_int for answer in answers) == [200, 200, 200, 201]
    assert len({answer.json["task"]["id"] for answer in answers}) == 1
    assert len(testapp.get("/v1/tasks").json["items"]) == 1
    assert sorted(outcome for _, outcome in audit_outcomes(database_url)) == [
        "created",
        "redelivered",
        "redelivered",
        "redelivered",
    ]


# ---- Seen webhook-ids: retention --------------------------------------------


def seen_ids(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return set(connection.execute(select(SeenWebhookId.webhook_id)).scalars())
    finally:
        engine.dispose()


def test_seen_ids_are_pruned_oldest_first_in_bounded_batches(
    context: Any, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("galaxy_express.webhooks.service.PRUNE_BATCH", 3)
    retention = timedelta(days=context.settings.webhook_seen_ids_retention_days)
    ages = {f"old_{n}": retention + timedelta(hours=n + 1) for n in range(5)}
    ages |= {"recent": retention - timedelta(hours=1), "new": timedelta(0)}
    with unit_of_work(context.db, write=True) as session:
        for webhook_id, age in ages.items():
            received = NOW - age
            session.add(
                SeenWebhookId(
                    webhook_id=webhook_id, received_at=received, status_code=201, response="{}"
                )
            )
    with clock.frozen(NOW):
        assert prune_seen_ids(context, max_batches=1) == 3  # one batch, the oldest
        assert seen_ids(database_url) == {"old_0", "old_1", "recent", "new"}
        # The reporter's housekeeping round (and `make prune`) does the rest.
        assert housekeeping_round(context, tmp_path)["webhook ids"] == 2
        assert prune_seen_ids(context) == 0
    assert seen_ids(database_url) == {"recent", "new"}


def test_a_repeat_of_a_pruned_id_is_still_refused_by_its_timestamp(
    signed_app: webtest.TestApp, context: Any, database_url: str
) -> None:
    """Forgetting an id does not weaken dedupe: its delivery is past the freshness window."""
    delivery = signed(event("created", 0), "msg_forgotten")
    with clock.frozen(NOW):
        assert post_signed(signed_app, *delivery).status_int == 201
        assert post_signed(signed_app, *delivery).json["duplicate"] is True
    later = NOW + timedelta(days=context.settings.webhook_seen_ids_retention_days, hours=1)
    with clock.frozen(later):
        assert prune_seen_ids(context) == 1
        assert "msg_forgotten" not in seen_ids(database_url)
        repeat = post_signed(signed_app, *delivery)
    assert repeat.status_int == 401
    assert "webhook-timestamp" in repeat.json["detail"]


def test_seen_ids_must_outlive_the_freshness_window(app_config: dict[str, str]) -> None:
    too_short = {
        "webhooks.tolerance_seconds": str(2 * 86400),
        "webhooks.seen_ids_retention_days": "1",
    }
    with pytest.raises(ValueError, match="seen_ids_retention_days"):
        parse_settings(app_config | too_short)
    assert parse_settings(app_config | too_short | {"webhooks.seen_ids_retention_days": "2"})
    assert parse_settings(app_config | too_short | {"webhooks.seen_ids_retention_days": "0"})
