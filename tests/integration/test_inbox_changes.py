"""The inbox change feed over HTTP (issue 14): events of every kind, once, in order, for
the right recipient only; Inbox-Seq; the bulk action by filter; retention and 410."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import pytest
import webtest
from sqlalchemy import create_engine, text

from galaxy_express.core import clock
from galaxy_express.http.app import make_wsgi_app
from galaxy_express.inbox import changes as changes_module
from galaxy_express.inbox import service as inbox_service
from tests.support import assert_problem, new_id, service_context, wait_until
from tests.support import send as send_with_service
from tests.support import send_over_http as send
from tests.support.processes import start_together

ROOT = Path(__file__).resolve().parents[2]


def changes_of(testapp: Any, recipient_id: str, since: int = 0, **query: Any) -> list[Any]:
    """Every change after ``since``, following next_since over pages."""
    found: list[Any] = []
    while True:
        page = testapp.get(
            f"/v1/inbox/{recipient_id}/changes", params={"since": since, **query}
        ).json
        found += page["changes"]
        if not page["has_more"]:
            assert page["next_since"] == (found[-1]["seq"] if found else since)
            return found
        since = page["next_since"]


def summary(change: dict[str, Any]) -> tuple[Any, ...]:
    return (change["kind"], change["package_id"], change["from"], change["to"])


def act(testapp: Any, recipient_id: str, action: str, ids: list[str], **kw: Any) -> Any:
    return testapp.post_json(f"/v1/inbox/{recipient_id}/{action}", {"package_ids": ids}, **kw)


def bulk(testapp: Any, recipient_id: str, action: str, up_to_seq: int, **kw: Any) -> Any:
    body = {"action": action, "filter": kw.pop("filter", {}), "up_to_seq": up_to_seq}
    return testapp.post_json(f"/v1/inbox/{recipient_id}/bulk", body, **kw)


def seq_of(testapp: Any, recipient_id: str) -> int:
    return int(testapp.get(f"/v1/inbox/{recipient_id}").headers["Inbox-Seq"])


def test_every_kind_of_change_appears_once_in_order_for_its_recipient_only(testapp) -> None:
    recipient, other = new_id("r"), new_id("r")
    a = send(testapp, recipient, second=1)
    b = send(testapp, recipient, second=2)
    elsewhere = send(testapp, other, second=3)
    batch = testapp.post_json(
        "/v1/packages/batch",
        {
            "packages": [
                {
                    "timestamp": "2142-01-01T12:00:05Z",
                    "sender_id": "earth-1",
                    "recipient_id": recipient,
                    "package_id": package_id,
                    "package_type": "personal",
                }
                for package_id in ("zz-" + new_id(), "zy-" + new_id())
            ]
        },
    ).json["results"]
    c, d = (result["package_id"] for result in batch)
    act(testapp, recipient, "read", [a, b])
    act(testapp, recipient, "read", [a])  # changes nothing: no event
    act(testapp, recipient, "unread", [b])
    act(testapp, recipient, "trash", [a])
    act(testapp, recipient, "trash", [a])  # already there
    act(testapp, recipient, "restore", [a])
    act(testapp, recipient, "spam", [c])
    testapp.delete(f"/v1/inbox/{recipient}/{d}")

    found = changes_of(testapp, recipient)

    assert [change["seq"] for change in found] == list(range(1, len(found) + 1))
    # The batch's two deliveries are in the batch's own (package id) order.
    delivered_batch = sorted([c, d])
    assert [summary(change) for change in found] == [
        ("delivered", a, None, None),
        ("delivered", b, None, None),
        ("delivered", delivered_batch[0], None, None),
        ("delivered", delivered_batch[1], None, None),
        # One action's events are in package id order.
        *[("read", package_id, None, None) for package_id in sorted([a, b])],
        ("unread", b, None, None),
        ("moved", a, "inbox", "trash"),
        ("moved", a, "trash", "inbox"),
        ("moved", c, "inbox", "spam"),
        ("deleted", d, None, None),
    ]
    assert [summary(change) for change in changes_of(testapp, other)] == [
        ("delivered", elsewhere, None, None)
    ]
    # Items are the entries as they are now; null once deleted.
    items = {change["package_id"]: change["item"] for change in found}
    assert items[d] is None
    assert items[c]["folder"] == "spam"
    assert items[a] == testapp.get(f"/v1/inbox/{recipient}", params={"order": "oldest"}).json[
        "items"
    ][0] | {"package_id": a}
    assert found[0]["at"].endswith("Z")


def test_pages_follow_next_since(testapp) -> None:
    recipient = new_id("r")
    sent = [send(testapp, recipient, second=i) for i in range(5)]
    first = testapp.get(f"/v1/inbox/{recipient}/changes", params={"limit": 2}).json
    assert [c["package_id"] for c in first["changes"]] == sent[:2]
    assert first["has_more"] is True
    assert first["next_since"] == 2
    rest = testapp.get(f"/v1/inbox/{recipient}/changes", params={"since": 2, "limit": 3}).json
    assert [c["package_id"] for c in rest["changes"]] == sent[2:]
    assert rest["has_more"] is False
    assert rest["next_since"] == 5
    empty = testapp.get(f"/v1/inbox/{recipient}/changes", params={"since": 5}).json
    assert empty == {"changes": [], "next_since": 5, "has_more": False}
    never = testapp.get(f"/v1/inbox/{new_id('r')}/changes").json
    assert never == {"changes": [], "next_since": 0, "has_more": False}


@pytest.mark.parametrize(
    "query", [{"since": "-1"}, {"since": "x"}, {"limit": "0"}, {"limit": "501"}, {"x": "1"}]
)
def test_bad_changes_queries_are_422(testapp, query: dict[str, str]) -> None:
    response = testapp.get(f"/v1/inbox/{new_id('r')}/changes", params=query, status=422)
    assert_problem(response, 422)


def test_inbox_seq_header_on_listing_and_summary(testapp) -> None:
    recipient = new_id("r")
    assert testapp.get(f"/v1/inbox/{recipient}").headers["Inbox-Seq"] == "0"
    a = send(testapp, recipient, second=1)
    send(testapp, recipient, second=2)
    act(testapp, recipient, "read", [a])
    assert testapp.get(f"/v1/inbox/{recipient}").headers["Inbox-Seq"] == "3"
    assert testapp.get(f"/v1/inbox/{recipient}/summary").headers["Inbox-Seq"] == "3"
    c = send(testapp, recipient, second=3)
    assert [x["package_id"] for x in changes_of(testapp, recipient, since=3)] == [c]


def test_bulk_by_filter_acts_up_to_the_seq_only(testapp) -> None:
    recipient = new_id("r")
    old = [send(testapp, recipient, second=i) for i in range(3)]
    other_sender = send(testapp, recipient, second=4, sender_id="bob")
    seen = seq_of(testapp, recipient)
    later = send(testapp, recipient, second=5)

    answer = bulk(testapp, recipient, "read", seen, filter={"sender_id": "sender"}).json

    assert answer == {"updated": 3}
    unread = testapp.get(f"/v1/inbox/{recipient}", params={"unread": "true"}).json["items"]
    assert {item["package_id"] for item in unread} == {other_sender, later}
    assert [summary(c) for c in changes_of(testapp, recipient, since=seen + 1)] == [
        ("read", package_id, None, None) for package_id in sorted(old)
    ]
    # Again: they match, but nothing changes, so no event.
    assert bulk(testapp, recipient, "read", seen, filter={"sender_id": "sender"}).json == {
        "updated": 3
    }
    assert len(changes_of(testapp, recipient, since=seen + 1)) == 3


def test_bulk_by_filter_works_across_batches(testapp, monkeypatch) -> None:
    monkeypatch.setattr(inbox_service, "BULK_BATCH", 2)
    recipient = new_id("r")
    sent = [send(testapp, recipient, second=i) for i in range(5)]
    seen = seq_of(testapp, recipient)
    later = send(testapp, recipient, second=2)  # sorts among them: still untouched

    # ``read`` leaves them in the filter (folder inbox): each is taken once anyway.
    assert bulk(testapp, recipient, "read", seen, filter={"folder": "inbox"}).json == {"updated": 5}
    assert bulk(testapp, recipient, "trash", seen, filter={"unread": False}).json == {"updated": 5}
    listing = testapp.get(f"/v1/inbox/{recipient}").json["items"]
    assert [item["package_id"] for item in listing] == [later]
    kinds = [summary(c)[0] for c in changes_of(testapp, recipient, since=seen + 1)]
    assert kinds == ["read"] * 5 + ["moved"] * 5
    assert bulk(testapp, recipient, "delete", seen + 1, filter={"folder": "trash"}).json == {
        "updated": 5
    }
    assert testapp.get(f"/v1/inbox/{recipient}/summary").json["trash"] == 0
    assert {c["package_id"] for c in changes_of(testapp, recipient, since=seen + 11)} == set(sent)


def test_bulk_spam_reports_senders_as_the_id_list_action_does(testapp) -> None:
    recipient = new_id("r")
    spammer = new_id("s")
    for second in range(3):
        send(testapp, recipient, second=second, sender_id=spammer)
    seen = seq_of(testapp, recipient)
    assert bulk(testapp, recipient, "spam", seen, filter={"sender_id": spammer}).json == {
        "updated": 3
    }
    count = testapp.get(f"/v1/senders/{spammer}/spam-reports").json["reporter_count"]
    assert count == 1
    assert testapp.get(f"/v1/inbox/{recipient}/summary").json["spam"] == 3


@pytest.mark.parametrize(
    "body",
    [
        {"action": "read", "filter": {}},
        {"action": "burn", "filter": {}, "up_to_seq": 1},
        {"action": "read", "filter": {"folder": "attic"}, "up_to_seq": 1},
        {"action": "read", "filter": {"colour": "red"}, "up_to_seq": 1},
        {"action": "read", "up_to_seq": -1},
        {"action": "read", "up_to_seq": "3"},
    ],
)
def test_bad_bulk_bodies_are_422(testapp, body: dict[str, Any]) -> None:
    response = testapp.post_json(f"/v1/inbox/{new_id('r')}/bulk", body, status=422)
    assert_problem(response, 422)


def test_bulk_under_an_idempotency_key_replays_its_answer(testapp) -> None:
    recipient = new_id("r")
    for second in range(3):
        send(testapp, recipient, second=second)
    seen = seq_of(testapp, recipient)
    headers = {"Idempotency-Key": new_id("k")}
    first = bulk(testapp, recipient, "trash", seen, headers=headers)
    send(testapp, recipient, second=9)
    again = bulk(testapp, recipient, "trash", seen + 1, headers=headers, status=422)
    assert_problem(again, 422)
    replay = bulk(testapp, recipient, "trash", seen, headers=headers)
    assert replay.json == first.json == {"updated": 3}
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(changes_of(testapp, recipient, since=seen)) == 4  # 3 moves, 1 delivery


def test_pruned_changes_make_an_old_since_410(app_config, monkeypatch) -> None:
    testapp = webtest.TestApp(make_wsgi_app(app_config))
    recipient = new_id("r")
    for second in range(3):
        send(testapp, recipient, second=second)
    # Age the first two events past the retention.
    engine = create_engine(app_config["db.url"], future=True)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE inbox_changes SET at = :old WHERE recipient_id = :r AND seq <= 2"),
            {"old": clock.now() - timedelta(days=31), "r": recipient},
        )
    engine.dispose()
    from galaxy_express.bootstrap import make_baseplate

    baseplate, _ = make_baseplate(app_config)
    with baseplate.server_context("test") as context:
        assert changes_module.prune_changes(context, 30) == 2

    for since in (0, 1):
        response = testapp.get(f"/v1/inbox/{recipient}/changes?since={since}", status=410)
        problem = assert_problem(response, 410)
        assert problem["type"].endswith("resync-required")
    kept = testapp.get(f"/v1/inbox/{recipient}/changes?since=2").json["changes"]
    assert [change["seq"] for change in kept] == [3]


# ---- Concurrency: real processes, and a listing while packages arrive --------

WORKERS = 4
ROUNDS = 25


def _start_workers(database_url: str, redis_url: str, recipient: str) -> list[Any]:
    argv = [sys.executable, "-m", "tests.integration.inbox_changes_worker", database_url]
    # All are set up before any of them writes.
    return start_together(
        [*argv, redis_url, recipient, f"w{index}", str(ROUNDS)] for index in range(WORKERS)
    )


@pytest.mark.slow
def test_processes_changing_one_mailbox_get_gapless_increasing_seqs(
    database_url: str, redis_url: str, context: Any
) -> None:
    recipient = new_id("r")
    workers = _start_workers(database_url, redis_url, recipient)
    seen: list[int] = []
    done = gevent.event.Event()

    def poll() -> None:
        # A reader following the feed while the writers run: every page starts right
        # after what it had, so it never sees a smaller seq after a larger one, nor a gap.
        since = 0
        while True:
            finished = done.is_set()
            page = inbox_service.read_changes(context, recipient, since, 500)
            for change in page.changes:
                assert change.seq == since + 1, (since, change.seq)
                since = change.seq
                seen.append(change.seq)
            if finished and not page.has_more:
                return
            gevent.sleep(0.005)

    reader = gevent.spawn(poll)
    expected: dict[str, list[Any]] = {}
    for index, worker in enumerate(workers):
        out, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0
        expected[f"w{index}"] = json.loads(out)
    done.set()
    reader.get(timeout=60)

    found = []
    since = 0
    while True:
        page = inbox_service.read_changes(context, recipient, since, 500)
        found += page.changes
        if not page.has_more:
            break
        since = page.next_since
    assert [change.seq for change in found] == list(range(1, len(found) + 1))
    assert seen == [change.seq for change in found]
    assert seen, "the reader read while they wrote"
    # Each worker's events appear once each, in its own order.
    for name, events in expected.items():
        mine = [
            [c.kind.value, c.package_id, c.from_folder, c.to_folder]
            for c in found
            if c.package_id.startswith(f"{name}-")
        ]
        assert mine == events, name
    assert len(found) == sum(len(events) for events in expected.values())


def test_list_then_follow_misses_nothing_while_packages_arrive(app_config: Any) -> None:
    testapp = webtest.TestApp(make_wsgi_app(app_config))
    recipient = new_id("r")
    sent: list[str] = []
    stop = gevent.event.Event()

    def keep_sending() -> None:
        with service_context(app_config) as context:
            while not stop.is_set():
                sent.append(send_with_service(context, recipient))
                gevent.sleep(0)

    sender = gevent.spawn(keep_sending)
    wait_until(lambda: len(sent) >= 5)
    # List every page (newest first), the first page's Inbox-Seq the place to follow.
    first = testapp.get(f"/v1/inbox/{recipient}", params={"limit": 2})
    seq = int(first.headers["Inbox-Seq"])
    listed = {item["package_id"] for item in first.json["items"]}
    cursor = first.json["next_cursor"]
    while cursor is not None:
        page = testapp.get(f"/v1/inbox/{recipient}", params={"limit": 2, "cursor": cursor}).json
        listed |= {item["package_id"] for item in page["items"]}
        cursor = page["next_cursor"]
    wait_until(lambda: len(sent) >= len(listed) + 5)
    stop.set()
    sender.get(timeout=30)

    followed = {c["package_id"] for c in changes_of(testapp, recipient, since=seq)}
    assert listed | followed == set(sent)
    assert followed, "packages arrived after the listing"
