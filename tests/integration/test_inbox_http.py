"""The inbox over HTTP: every operation, filter and action, and every kind of bad input."""

from __future__ import annotations

from typing import Any

import pytest
import webtest

from galaxy_express.http.app import make_wsgi_app
from tests.support import assert_problem, new_id
from tests.support import send_over_http as send

PROBLEM = "application/problem+json"
ACTIONS = ("read", "unread", "trash", "restore", "spam", "delete")


def listing(testapp: Any, recipient_id: str, **query: Any) -> list[str]:
    items = testapp.get(f"/v1/inbox/{recipient_id}", params=query).json["items"]
    return [item["package_id"] for item in items]


def act(testapp: Any, recipient_id: str, action: str, ids: list[Any], **kw: Any) -> Any:
    return testapp.post_json(f"/v1/inbox/{recipient_id}/{action}", {"package_ids": ids}, **kw)


def test_list_renders_package_records_with_their_mailbox_state(testapp) -> None:
    recipient = new_id("r")
    package = send(testapp, recipient, second=3)
    act(testapp, recipient, "read", [package])

    page = testapp.get(f"/v1/inbox/{recipient}").json

    assert page["next_cursor"] is None
    (item,) = page["items"]
    record = testapp.get(f"/v1/packages/{package}").json
    assert item == {**record, "folder": "inbox", "read": True, "read_at": item["read_at"]}
    assert item["read_at"].endswith("Z")
    assert item["content"] == {"subject": "hi", "body": "from Mars"}


def test_list_filters_orders_and_pages(testapp) -> None:
    recipient = new_id("r")
    a = send(testapp, recipient, second=1, sender_id="alice")
    b = send(testapp, recipient, second=2, sender_id="bob", package_type="marketing")
    c = send(testapp, recipient, second=3, sender_id="alice", package_type="marketing")
    d = send(testapp, recipient, second=4, sender_id="bob")
    act(testapp, recipient, "read", [b])
    act(testapp, recipient, "trash", [d])

    assert listing(testapp, recipient) == [c, b, a]
    assert listing(testapp, recipient, order="oldest") == [a, b, c]
    assert listing(testapp, recipient, folder="trash") == [d]
    assert listing(testapp, recipient, folder="spam") == []
    assert listing(testapp, recipient, unread="true") == [c, a]
    assert listing(testapp, recipient, unread="false") == [b]
    assert listing(testapp, recipient, package_type="marketing") == [c, b]
    assert listing(testapp, recipient, sender_id="alice", order="oldest") == [a, c]
    assert listing(testapp, recipient, sender_id="bob", unread="true") == []

    first = testapp.get(f"/v1/inbox/{recipient}", params={"limit": 2, "order": "oldest"}).json
    assert [i["package_id"] for i in first["items"]] == [a, b]
    rest = testapp.get(
        f"/v1/inbox/{recipient}",
        params={"limit": 2, "order": "oldest", "cursor": first["next_cursor"]},
    ).json
    assert ([i["package_id"] for i in rest["items"]], rest["next_cursor"]) == ([c], None)


def test_summary(testapp) -> None:
    recipient = new_id("r")
    assert testapp.get(f"/v1/inbox/{recipient}/summary").json == {
        "inbox": 0,
        "unread": 0,
        "trash": 0,
        "spam": 0,
    }
    packages = [send(testapp, recipient, second=i) for i in range(5)]
    act(testapp, recipient, "read", packages[:1])
    act(testapp, recipient, "trash", packages[1:2])
    act(testapp, recipient, "spam", packages[2:3])
    assert testapp.get(f"/v1/inbox/{recipient}/summary").json == {
        "inbox": 3,
        "unread": 2,
        "trash": 1,
        "spam": 1,
    }


@pytest.mark.parametrize(
    ("action", "folder", "read"),
    [
        ("read", "trash", True),
        ("unread", "trash", False),
        ("trash", "trash", False),
        ("restore", "inbox", False),
        ("spam", "spam", False),
        ("delete", None, None),
    ],
)
def test_each_bulk_action(testapp, action, folder, read) -> None:
    recipient = new_id("r")
    target, untouched = send(testapp, recipient, second=1), send(testapp, recipient, second=2)
    act(testapp, recipient, "trash", [target])  # so that restore has work to do

    answer = act(testapp, recipient, action, [target, target, "nope"])

    assert answer.content_type == "application/json"
    assert answer.json == {"updated": 1, "not_found": ["nope"]}
    where = {
        f: {
            i["package_id"]: i
            for i in testapp.get(f"/v1/inbox/{recipient}?folder={f}").json["items"]
        }
        for f in ("inbox", "trash", "spam")
    }
    assert untouched in where["inbox"]
    holding = [f for f, items in where.items() if target in items]
    if folder is None:
        assert holding == []
        testapp.get(f"/v1/packages/{target}", status=200)
    else:
        assert holding == [folder]
        assert where[folder][target]["read"] is read


def test_numeric_ids_are_accepted_as_their_decimal_strings(testapp) -> None:
    recipient = new_id("r")
    send(testapp, recipient, package_id="4217")
    assert act(testapp, recipient, "read", [4217, "4217"]).json == {"updated": 1, "not_found": []}


def test_delete_one_package(testapp) -> None:
    recipient = new_id("r")
    package = send(testapp, recipient, second=5)

    assert testapp.delete(f"/v1/inbox/{recipient}/{package}", status=204).body == b""

    assert listing(testapp, recipient) == []
    problem = testapp.delete(f"/v1/inbox/{recipient}/{package}", status=404)
    assert problem.content_type == PROBLEM
    # The id stays taken: a retry replays the first record and delivers nothing.
    retry = send(testapp, recipient, second=5, package_id=package, status=200)
    assert retry == package
    assert listing(testapp, recipient) == []


def test_spam_reports_count_distinct_reporters(testapp) -> None:
    spammer, recipient, other = new_id("s"), new_id("r"), new_id("r")
    assert testapp.get(f"/v1/senders/{spammer}/spam-reports").json == {
        "sender_id": spammer,
        "reporter_count": 0,
    }
    three = [send(testapp, recipient, second=i, sender_id=spammer) for i in range(3)]
    act(testapp, recipient, "spam", three)
    act(testapp, recipient, "spam", three[:1])
    assert testapp.get(f"/v1/senders/{spammer}/spam-reports").json["reporter_count"] == 1
    act(testapp, other, "spam", [send(testapp, other, sender_id=spammer)])
    assert testapp.get(f"/v1/senders/{spammer}/spam-reports").json["reporter_count"] == 2


@pytest.mark.parametrize("action", ACTIONS)
def test_a_recipient_cannot_act_on_another_recipients_packages(testapp, action) -> None:
    owner, intruder = new_id("r"), new_id("r")
    theirs = [send(testapp, owner, second=i, sender_id="victim-sender") for i in range(2)]
    act(testapp, owner, "read", theirs[:1])
    before = {
        f: testapp.get(f"/v1/inbox/{owner}?folder={f}").json for f in ("inbox", "trash", "spam")
    }

    answer = act(testapp, intruder, action, theirs)
    testapp.delete(f"/v1/inbox/{intruder}/{theirs[0]}", status=404)

    assert answer.json == {"updated": 0, "not_found": theirs}
    after = {
        f: testapp.get(f"/v1/inbox/{owner}?folder={f}").json for f in ("inbox", "trash", "spam")
    }
    assert after == before
    assert testapp.get("/v1/senders/victim-sender/spam-reports").json["reporter_count"] == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("folder=archive", "folder"),
        ("order=random", "order"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("unread=maybe", "unread"),
        ("package_type=letter", "package_type"),
        ("sender_id=-bad", "sender_id"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=", "cursor"),
        ("folder=inbox&folder=trash", "folder"),
    ],
)
def test_bad_listing_queries_are_422(testapp, query, field) -> None:
    assert_problem(testapp.get(f"/v1/inbox/r1?{query}", expect_errors=True), 422, field)


def test_a_cursor_of_another_query_is_422(testapp) -> None:
    recipient = new_id("r")
    for i in range(2):
        send(testapp, recipient, second=i)
    cursor = testapp.get(f"/v1/inbox/{recipient}?limit=1").json["next_cursor"]
    for query in (f"order=oldest&cursor={cursor}", f"folder=spam&cursor={cursor}"):
        answer = testapp.get(f"/v1/inbox/{recipient}?limit=1&{query}", expect_errors=True)
        assert_problem(answer, 422, "cursor")
    answer = testapp.get(f"/v1/inbox/someone-else?cursor={cursor}", expect_errors=True)
    assert_problem(answer, 422, "cursor")


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", "/v1/inbox/-bad", "recipient_id"),
        ("GET", "/v1/inbox/bad%20id/summary", "recipient_id"),
        ("DELETE", "/v1/inbox/-bad/p1", "recipient_id"),
        ("DELETE", "/v1/inbox/r1/bad%20id", "package_id"),
        ("GET", "/v1/senders/-bad/spam-reports", "sender_id"),
    ],
)
def test_bad_ids_in_paths_are_422(testapp, method, path, field) -> None:
    answer = testapp.request(path, method=method, expect_errors=True)
    assert_problem(answer, 422, field)


@pytest.mark.parametrize("action", ACTIONS)
def test_bad_recipient_in_a_bulk_path_is_422(testapp, action) -> None:
    assert_problem(act(testapp, "-bad", action, ["p1"], expect_errors=True), 422, "recipient_id")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "package_ids"),
        ({"package_ids": []}, "package_ids"),
        ({"package_ids": [f"p{i}" for i in range(501)]}, "package_ids"),
        ({"package_ids": "p1"}, "package_ids"),
        ({"package_ids": None}, "package_ids"),
        ({"package_ids": [""]}, "package_ids.0"),
        ({"package_ids": ["ok", "not ok"]}, "package_ids.1"),
        ({"package_ids": ["x" * 129]}, "package_ids.0"),
        ({"package_ids": [-1]}, "package_ids.0"),
        ({"package_ids": [True]}, "package_ids.0"),
        ({"package_ids": ["p1"], "extra": 1}, "extra"),
        (["p1"], None),
    ],
)
def test_bad_bulk_bodies_are_422(testapp, body, field) -> None:
    answer = testapp.post_json("/v1/inbox/r1/read", body, expect_errors=True)
    assert_problem(answer, 422, field)


def test_five_hundred_ids_are_accepted(testapp) -> None:
    ids = [f"p{i}" for i in range(500)]
    assert act(testapp, "r1", "trash", ids).json == {"updated": 0, "not_found": ids}


def test_unreadable_bulk_bodies_are_400_or_413(testapp) -> None:
    for body, content_type in ((b"{not json", "application/json"), (b"{}", "text/plain")):
        answer = testapp.post(
            "/v1/inbox/r1/spam", body, content_type=content_type, expect_errors=True
        )
        assert_problem(answer, 400)
    huge = b'{"package_ids": ["' + b"x" * 70_000 + b'"]}'
    answer = testapp.post(
        "/v1/inbox/r1/spam", huge, content_type="application/json", expect_errors=True
    )
    assert_problem(answer, 413)


def test_wrong_methods_are_405(testapp) -> None:
    answer = testapp.get("/v1/inbox/r1/read", expect_errors=True)
    assert_problem(answer, 405)
    assert answer.headers["Allow"] == "POST"
    answer = testapp.post_json("/v1/senders/s1/spam-reports", {}, expect_errors=True)
    assert_problem(answer, 405)


def test_the_openapi_document_declares_every_inbox_operation(testapp) -> None:
    paths = testapp.get("/openapi.json").json["paths"]

    listing_op = paths["/v1/inbox/{recipient_id}"]["get"]
    assert {p["name"] for p in listing_op["parameters"]} == {
        "recipient_id",
        "folder",
        "unread",
        "package_type",
        "sender_id",
        "order",
        "limit",
        "cursor",
    }
    assert {"200", "422", "503"} <= set(listing_op["responses"])
    assert {"200", "422"} <= set(paths["/v1/inbox/{recipient_id}/summary"]["get"]["responses"])
    for action in ACTIONS:
        operation = paths[f"/v1/inbox/{{recipient_id}}/{action}"]["post"]
        assert operation["tags"] == ["inbox"]
        assert operation["requestBody"]["content"]["application/json"]
        assert {"200", "400", "413", "422", "503"} <= set(operation["responses"])
    assert {"204", "404", "422"} <= set(
        paths["/v1/inbox/{recipient_id}/{package_id}"]["delete"]["responses"]
    )
    assert {"200", "422"} <= set(paths["/v1/senders/{sender_id}/spam-reports"]["get"]["responses"])


def test_the_drop_threshold_over_http(app_config) -> None:
    testapp = webtest.TestApp(make_wsgi_app({**app_config, "delivery.spam_drop_threshold": "1"}))
    spammer, victim, next_victim = new_id("s"), new_id("r"), new_id("r")
    act(testapp, victim, "spam", [send(testapp, victim, sender_id=spammer)])

    record = testapp.post_json(
        "/v1/packages",
        {
            "timestamp": "2142-01-01T00:00:00Z",
            "sender_id": spammer,
            "recipient_id": next_victim,
            "package_id": new_id("p"),
            "package_type": "personal",
        },
        status=201,
    ).json

    assert (record["status"], record["reason"]) == ("dropped", "sender_reported")
    assert listing(testapp, next_victim) == []
    stats = testapp.get("/v1/stats").json
    assert stats["dropped_by_reason"]["sender_reported"] == 1
    assert stats["packages_dropped"] == sum(stats["dropped_by_reason"].values())
