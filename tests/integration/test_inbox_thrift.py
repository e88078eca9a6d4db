"""The inbox over Thrift: the same service, structs instead of JSON, codes as HTTP statuses."""

from __future__ import annotations

from typing import Any

import pytest
from baseplate.thrift.ttypes import Error

from galaxy_express.thrift.gen import ttypes
from tests.support import THRIFT_EPOCH_MS, new_id, send_over_thrift

A = ttypes.InboxAction


def listing(client: Any, recipient_id: str, **fields: Any) -> list[str]:
    page = client.list_inbox(ttypes.ListInboxRequest(recipient_id=recipient_id, **fields))
    return [item.package_id for item in page.items]


def update(client: Any, recipient_id: str, action: int, ids: list[str]) -> Any:
    return client.update_inbox(
        ttypes.UpdateInboxRequest(recipient_id=recipient_id, action=action, package_ids=ids)
    )


def test_list_inbox_items_and_filters(thrift_client) -> None:
    recipient = new_id("r")
    a = send_over_thrift(thrift_client, recipient, offset_ms=1, sender_id="alice")
    b = send_over_thrift(
        thrift_client, recipient, offset_ms=2, sender_id="bob", package_type="marketing"
    )
    c = send_over_thrift(thrift_client, recipient, offset_ms=3, sender_id="alice")
    d = send_over_thrift(thrift_client, recipient, offset_ms=4)
    update(thrift_client, recipient, A.READ, [a])
    update(thrift_client, recipient, A.TRASH, [d])

    page = thrift_client.list_inbox(ttypes.ListInboxRequest(recipient_id=recipient))
    assert [i.package_id for i in page.items] == [c, b, a]
    assert page.next_cursor is None
    read = page.items[2]
    assert (read.folder, read.is_read, read.timestamp) == ("inbox", True, THRIFT_EPOCH_MS + 1)
    assert read.read_at is not None
    assert (page.items[0].is_read, page.items[0].read_at) == (False, None)
    assert page.items[0].status == "delivered"

    assert listing(thrift_client, recipient, order="oldest") == [a, b, c]
    assert listing(thrift_client, recipient, folder="trash") == [d]
    assert listing(thrift_client, recipient, unread=True) == [c, b]
    assert listing(thrift_client, recipient, unread=False) == [a]
    assert listing(thrift_client, recipient, package_type="marketing") == [b]
    assert listing(thrift_client, recipient, sender_id="alice") == [c, a]


def test_list_inbox_pages(thrift_client) -> None:
    recipient = new_id("r")
    sent = [send_over_thrift(thrift_client, recipient, offset_ms=i) for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = thrift_client.list_inbox(
            ttypes.ListInboxRequest(recipient_id=recipient, limit=2, order="oldest", cursor=cursor)
        )
        seen += [item.package_id for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sent


def test_summary_actions_and_spam_counts(thrift_client) -> None:
    recipient, spammer = new_id("r"), new_id("s")
    packages = [
        send_over_thrift(thrift_client, recipient, offset_ms=i, sender_id=spammer) for i in range(6)
    ]

    assert update(thrift_client, recipient, A.READ, packages[:2]).updated == 2
    assert update(thrift_client, recipient, A.UNREAD, packages[1:2]).updated == 1
    assert update(thrift_client, recipient, A.TRASH, packages[2:4]).updated == 2
    assert update(thrift_client, recipient, A.RESTORE, packages[3:4]).updated == 1
    spam = update(thrift_client, recipient, A.SPAM, [packages[4], packages[4], "nope"])
    assert (spam.updated, spam.not_found) == (1, ["nope"])
    assert update(thrift_client, recipient, A.DELETE, packages[5:]).updated == 1

    summary = thrift_client.get_inbox_summary(recipient)
    assert (summary.inbox, summary.unread, summary.trash, summary.spam) == (3, 2, 1, 1)
    count = thrift_client.get_spam_report_count(spammer)
    assert (count.sender_id, count.reporter_count) == (spammer, 1)
    update(thrift_client, recipient, A.SPAM, packages[:2])
    assert thrift_client.get_spam_report_count(spammer).reporter_count == 1


def test_one_recipient_cannot_touch_anothers_packages(thrift_client) -> None:
    owner, intruder = new_id("r"), new_id("r")
    theirs = [send_over_thrift(thrift_client, owner, offset_ms=i) for i in range(2)]
    for action in (A.READ, A.TRASH, A.SPAM, A.DELETE):
        outcome = update(thrift_client, intruder, action, theirs)
        assert (outcome.updated, outcome.not_found) == (0, theirs)
    summary = thrift_client.get_inbox_summary(owner)
    assert (summary.inbox, summary.unread, summary.trash, summary.spam) == (2, 2, 0, 0)


def call_error(call: Any) -> Error:
    with pytest.raises(Error) as raised:
        call()
    return raised.value


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"recipient_id": "-bad"}, "recipient_id"),
        ({"recipient_id": "r", "folder": "archive"}, "folder"),
        ({"recipient_id": "r", "order": "random"}, "order"),
        ({"recipient_id": "r", "limit": 0}, "limit"),
        ({"recipient_id": "r", "limit": 101}, "limit"),
        ({"recipient_id": "r", "cursor": "garbage"}, "cursor"),
        ({"recipient_id": "r", "package_type": "letter"}, "package_type"),
        ({"recipient_id": "r", "sender_id": "bad id"}, "sender_id"),
    ],
)
def test_bad_list_requests_are_422(thrift_client, fields, field) -> None:
    error = call_error(lambda: thrift_client.list_inbox(ttypes.ListInboxRequest(**fields)))
    assert error.code == 422
    assert field in error.details


@pytest.mark.parametrize(
    ("recipient_id", "action", "ids", "field"),
    [
        ("r", A.READ, [], "package_ids"),
        ("r", A.READ, [f"p{i}" for i in range(501)], "package_ids"),
        ("r", A.READ, ["bad id"], "package_ids.0"),
        ("r", 99, ["p1"], "action"),
        ("r", None, ["p1"], "action"),
        ("-bad", A.READ, ["p1"], "recipient_id"),
    ],
)
def test_bad_updates_are_422(thrift_client, recipient_id, action, ids, field) -> None:
    error = call_error(lambda: update(thrift_client, recipient_id, action, ids))
    assert error.code == 422
    assert field in error.details


def test_bad_ids_in_the_other_methods_are_422(thrift_client) -> None:
    assert call_error(lambda: thrift_client.get_inbox_summary("-bad")).code == 422
    assert call_error(lambda: thrift_client.get_spam_report_count("bad id")).code == 422


def test_changes_and_bulk_by_filter_round_trip(thrift_client) -> None:
    recipient = new_id("r")
    sent = [send_over_thrift(thrift_client, recipient, offset_ms=i) for i in range(3)]
    page = thrift_client.list_inbox(ttypes.ListInboxRequest(recipient_id=recipient))
    assert page.inbox_seq == 3
    summary = thrift_client.get_inbox_summary(recipient)
    assert (summary.inbox, summary.inbox_seq) == (3, 3)
    late = send_over_thrift(thrift_client, recipient, offset_ms=9)

    outcome = thrift_client.update_inbox_by_filter(
        ttypes.UpdateInboxByFilterRequest(
            recipient_id=recipient,
            action=A.TRASH,
            filter=ttypes.InboxFilter(folder="inbox", unread=True),
            up_to_seq=page.inbox_seq,
        )
    )
    assert outcome.updated == 3
    assert listing(thrift_client, recipient) == [late]

    changes = thrift_client.get_inbox_changes(
        ttypes.GetInboxChangesRequest(recipient_id=recipient, since=3)
    )
    assert changes.has_more is False
    assert changes.next_since == 7
    assert [c.kind for c in changes.changes] == ["delivered", "moved", "moved", "moved"]
    delivered, *moves = changes.changes
    assert delivered.package_id == late
    assert delivered.item.folder == "inbox"
    assert delivered.from_folder is None
    assert sorted(m.package_id for m in moves) == sorted(sent)
    assert {(m.from_folder, m.to_folder, m.item.folder) for m in moves} == {
        ("inbox", "trash", "trash")
    }
    first = thrift_client.get_inbox_changes(
        ttypes.GetInboxChangesRequest(recipient_id=recipient, limit=1)
    )
    assert [c.seq for c in first.changes] == [1]
    assert first.has_more is True


def test_bulk_by_filter_over_thrift_takes_an_idempotency_key(thrift_client) -> None:
    recipient = new_id("r")
    send_over_thrift(thrift_client, recipient)
    request = ttypes.UpdateInboxByFilterRequest(
        recipient_id=recipient, action=A.READ, up_to_seq=1, idempotency_key=new_id("k")
    )
    first = thrift_client.update_inbox_by_filter(request)
    again = thrift_client.update_inbox_by_filter(request)
    assert (first.updated, first.replayed) == (1, None)
    assert (again.updated, again.replayed) == (1, True)


@pytest.mark.parametrize(
    "request_",
    [
        ttypes.GetInboxChangesRequest(recipient_id="r", since=-1),
        ttypes.GetInboxChangesRequest(recipient_id="r", limit=501),
        ttypes.GetInboxChangesRequest(recipient_id=""),
    ],
)
def test_bad_change_requests_are_422(thrift_client, request_: Any) -> None:
    with pytest.raises(Error) as raised:
        thrift_client.get_inbox_changes(request_)
    assert raised.value.code == 422


@pytest.mark.parametrize(
    "request_",
    [
        ttypes.UpdateInboxByFilterRequest(recipient_id="r", action=A.READ),
        ttypes.UpdateInboxByFilterRequest(recipient_id="r", action=99, up_to_seq=1),
        ttypes.UpdateInboxByFilterRequest(
            recipient_id="r", action=A.READ, up_to_seq=1, filter=ttypes.InboxFilter(folder="x")
        ),
    ],
)
def test_bad_bulk_requests_are_422(thrift_client, request_: Any) -> None:
    with pytest.raises(Error) as raised:
        thrift_client.update_inbox_by_filter(request_)
    assert raised.value.code == 422
