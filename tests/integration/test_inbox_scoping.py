"""No way around inbox scoping: others' ids, path tricks, encodings, case, padding."""

from __future__ import annotations

from typing import Any

import pytest
import webtest

from tests.support import send_over_http


def bobs_mailbox(testapp: webtest.TestApp) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for folder in ("inbox", "trash", "spam"):
        items += testapp.get(f"/v1/inbox/bob?folder={folder}").json["items"]
    return items


@pytest.fixture
def mailboxes(testapp: webtest.TestApp) -> dict[str, str]:
    return {
        "alice": send_over_http(testapp, "alice", sender_id="mallory-corp"),
        "bob": send_over_http(testapp, "bob", sender_id="mallory-corp"),
    }


ATTEMPTS = [
    ("POST", "/v1/inbox/alice/{action}", "ids"),
    ("DELETE", "/v1/inbox/alice/{bob}", None),
    ("DELETE", "/v1/inbox/alice/..%2Fbob%2F{bob}", None),
    ("DELETE", "/v1/inbox/alice%2F..%2Fbob/{bob}", None),
    ("DELETE", "/v1/inbox/alice/../bob/{bob}", None),
    ("DELETE", "/v1/inbox/BOB/{bob}", None),
    ("DELETE", "/v1/inbox/bob%00/{bob}", None),
    ("DELETE", "/v1/inbox/%62ob%20/{bob}", None),
]


@pytest.mark.parametrize("action", ["read", "unread", "trash", "restore", "spam", "delete"])
@pytest.mark.parametrize(
    "ids",
    [
        ["{bob}"],
        [" {bob}"],
        ["{bob} "],
        ["{bob}\u0000"],
        ["{BOB}"],
        ["{alice}", "{bob}"],
        ["../bob/{bob}"],
    ],
)
def test_bulk_actions_never_touch_another_mailbox(
    testapp: webtest.TestApp, mailboxes: dict[str, str], action: str, ids: list[str]
) -> None:
    before = bobs_mailbox(testapp)
    package_ids = [
        i.format(bob=mailboxes["bob"], BOB=mailboxes["bob"].upper(), alice=mailboxes["alice"])
        for i in ids
    ]

    answer = testapp.post_json(
        f"/v1/inbox/alice/{action}", {"package_ids": package_ids}, expect_errors=True
    )

    assert answer.status_int in (200, 422)
    if answer.status_int == 200 and mailboxes["bob"] in package_ids:
        assert mailboxes["bob"] in answer.json["not_found"]
    assert bobs_mailbox(testapp) == before
    reports = testapp.get("/v1/senders/mallory-corp/spam-reports").json["reporter_count"]
    alice_reported_own = action == "spam" and mailboxes["alice"] in package_ids
    assert reports == (1 if alice_reported_own and answer.status_int == 200 else 0)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/inbox/alice/{bob}",
        "/v1/inbox/alice/..%2Fbob%2F{bob}",
        "/v1/inbox/alice%2F..%2Fbob/{bob}",
        "/v1/inbox/BOB/{bob}",
        "/v1/inbox/bob%00/{bob}",
        "/v1/inbox/%62ob%20/{bob}",
        "/v1/inbox/alice/{bob}%00",
        "/v1/inbox/alice/{bob}%2F..%2F..%2Fbob",
    ],
)
def test_single_delete_tricks_never_reach_bob(
    testapp: webtest.TestApp, mailboxes: dict[str, str], path: str
) -> None:
    before = bobs_mailbox(testapp)

    answer = testapp.delete(path.format(bob=mailboxes["bob"]), expect_errors=True)

    assert answer.status_int in (400, 404, 422)
    assert answer.content_type == "application/problem+json"
    assert bobs_mailbox(testapp) == before
    assert len(before) == 1


def test_listing_is_scoped_exactly_by_recipient(
    testapp: webtest.TestApp, mailboxes: dict[str, str]
) -> None:
    assert [i["package_id"] for i in testapp.get("/v1/inbox/bob").json["items"]] == [
        mailboxes["bob"]
    ]
    assert testapp.get("/v1/inbox/BOB").json["items"] == []
    assert testapp.get("/v1/inbox/bo").json["items"] == []
    assert testapp.get("/v1/inbox/bob%2A", expect_errors=True).status_int == 422
    assert testapp.get("/v1/inbox/b%25", expect_errors=True).status_int == 422
