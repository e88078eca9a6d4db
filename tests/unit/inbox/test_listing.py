"""Listing a mailbox: folders, filters, order, keyset pages (service layer, both databases)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from galaxy_express.core.errors import InvalidInput
from galaxy_express.inbox import service
from galaxy_express.inbox.commands import InboxQuery
from galaxy_express.inbox.records import InboxAction
from tests.support import at, fill_mailbox, new_id, send
from tests.support.statements import statements_run


def ids(context: Any, recipient_id: str, **query: Any) -> list[str]:
    """Every package id of a listing, following the cursors to the end."""
    page = service.list_inbox(context, recipient_id, InboxQuery(**query))
    found = [item.package.package_id for item in page.items]
    while page.next_cursor is not None:
        page = service.list_inbox(
            context, recipient_id, InboxQuery(**query, cursor=page.next_cursor)
        )
        found += [item.package.package_id for item in page.items]
    return found


def test_lists_the_recipients_inbox_newest_first(context) -> None:
    recipient, other = new_id("r"), new_id("r")
    first = send(context, recipient, timestamp=at(1))
    second = send(context, recipient, timestamp=at(2))
    send(context, other, timestamp=at(3))

    page = service.list_inbox(context, recipient, InboxQuery())

    assert [item.package.package_id for item in page.items] == [second, first]
    assert page.next_cursor is None
    item = page.items[0]
    assert (item.folder, item.read, item.read_at) == ("inbox", False, None)
    assert (item.package.recipient_id, item.package.status) == (recipient, "delivered")


def test_a_recipient_never_seen_has_an_empty_mailbox(context) -> None:
    page = service.list_inbox(context, new_id("r"), InboxQuery())
    assert (page.items, page.next_cursor) == ([], None)


def test_order_by_timestamp_with_ties_broken_by_package_id(context) -> None:
    recipient = new_id("r")
    # Sent out of order; four share one timestamp.
    send(context, recipient, package_id=f"{recipient}-tie-c", timestamp=at(5))
    send(context, recipient, package_id=f"{recipient}-late", timestamp=at(9))
    send(context, recipient, package_id=f"{recipient}-tie-a", timestamp=at(5))
    send(context, recipient, package_id=f"{recipient}-early", timestamp=at(1))
    send(context, recipient, package_id=f"{recipient}-tie-d", timestamp=at(5))
    send(context, recipient, package_id=f"{recipient}-tie-b", timestamp=at(5))
    oldest = [
        f"{recipient}-{suffix}" for suffix in ("early", "tie-a", "tie-b", "tie-c", "tie-d", "late")
    ]

    for limit in (100, 1, 2, 3):
        assert ids(context, recipient, order="oldest", limit=limit) == oldest
        assert ids(context, recipient, order="newest", limit=limit) == oldest[::-1]
    assert ids(context, recipient) == oldest[::-1]


def test_folders_hold_what_was_moved_there(context) -> None:
    recipient = new_id("r")
    kept, trashed, spammed = (send(context, recipient, timestamp=at(i)) for i in range(3))
    service.update_inbox(context, recipient, InboxAction.TRASH, [trashed])
    service.update_inbox(context, recipient, InboxAction.SPAM, [spammed])

    assert ids(context, recipient) == [kept]
    assert ids(context, recipient, folder="inbox") == [kept]
    assert ids(context, recipient, folder="trash") == [trashed]
    assert ids(context, recipient, folder="spam") == [spammed]
    trash = service.list_inbox(context, recipient, InboxQuery(folder="trash"))
    assert trash.items[0].folder == "trash"


def test_filters_by_read_state_type_and_sender(context) -> None:
    recipient = new_id("r")
    alice_personal = send(context, recipient, sender_id="alice", timestamp=at(1))
    alice_marketing = send(
        context, recipient, sender_id="alice", package_type="marketing", timestamp=at(2)
    )
    bob_personal = send(context, recipient, sender_id="bob", timestamp=at(3))
    bob_marketing = send(
        context, recipient, sender_id="bob", package_type="marketing", timestamp=at(4)
    )
    service.update_inbox(context, recipient, InboxAction.READ, [alice_marketing, bob_personal])

    assert ids(context, recipient, unread=True) == [bob_marketing, alice_personal]
    assert ids(context, recipient, unread=False) == [bob_personal, alice_marketing]
    assert ids(context, recipient, package_type="marketing") == [bob_marketing, alice_marketing]
    assert ids(context, recipient, sender_id="alice") == [alice_marketing, alice_personal]
    assert ids(context, recipient, sender_id="bob", unread=True, order="oldest") == [bob_marketing]
    assert ids(context, recipient, sender_id="carol") == []
    read = service.list_inbox(context, recipient, InboxQuery(unread=False)).items
    assert all(item.read and item.read_at is not None for item in read)


def test_walk_a_large_inbox_while_packages_arrive(context) -> None:
    """Nothing skipped or repeated: every package present at the start is listed
    once, and one arriving between pages is listed (once) exactly when it sorts
    after the page already served."""
    rng = random.Random(3)
    recipient = new_id("r")
    # Distinct microsecond timestamps, so "sorts after" needs no id comparison.
    instants = rng.sample(range(10_000_000), 700)
    initial = {
        send(context, recipient, timestamp=at(instants.pop() / 1e3)): None for _ in range(500)
    }
    for order, limit in (("newest", 37), ("oldest", 37)):
        seen: list[str] = []
        timestamps: dict[str, Any] = {}
        must_appear: set[str] = set()
        must_not_appear: set[str] = set()
        page = service.list_inbox(context, recipient, InboxQuery(order=order, limit=limit))
        while True:
            seen += [item.package.package_id for item in page.items]
            timestamps.update({i.package.package_id: i.package.timestamp for i in page.items})
            if page.next_cursor is None:
                break
            last = page.items[-1].package.timestamp
            for _ in range(3):
                instant = at(instants.pop() / 1e3)
                arrived = send(context, recipient, timestamp=instant)
                later = instant < last if order == "newest" else instant > last
                (must_appear if later else must_not_appear).add(arrived)
            page = service.list_inbox(
                context, recipient, InboxQuery(order=order, limit=limit, cursor=page.next_cursor)
            )
            assert len(page.items) <= limit

        assert len(seen) == len(set(seen)), "a package was listed twice"
        assert set(initial) <= set(seen), "a package present from the start was skipped"
        assert must_appear <= set(seen), "a package sorting after the cursor was skipped"
        assert not must_not_appear & set(seen)
        listed = [timestamps[package_id] for package_id in seen]
        assert listed == sorted(listed, reverse=order == "newest")
        initial.update(dict.fromkeys(must_appear | must_not_appear))


@pytest.mark.slow  # a few seconds: some hundred sends on each database
def test_walk_equal_timestamps_while_packages_arrive_mid_page(context) -> None:
    """Ties everywhere: most packages share one timestamp, and those arriving between
    pages share it too, so the cursor must order by the package id: nothing skipped
    or repeated, and an arrival is listed (once) exactly when its (timestamp, id) sorts
    after the last one served."""
    rng = random.Random(5)
    recipient = new_id("r")
    tie = at(100)
    moments = [tie] * 8 + [at(99), at(101)]  # mostly the tie, a few around it

    def arrive() -> tuple[str, Any]:
        instant = rng.choice(moments)
        return send(context, recipient, timestamp=instant), instant

    initial = dict(arrive() for _ in range(90))
    for order in ("newest", "oldest"):
        seen: list[str] = []
        keys: dict[str, tuple[Any, str]] = {}
        must_appear: set[str] = set()
        must_not_appear: set[str] = set()
        page = service.list_inbox(context, recipient, InboxQuery(order=order, limit=19))
        while True:
            seen += [item.package.package_id for item in page.items]
            keys.update(
                {
                    i.package.package_id: (i.package.timestamp, i.package.package_id)
                    for i in page.items
                }
            )
            if page.next_cursor is None:
                break
            last = keys[seen[-1]]
            for _ in range(4):
                arrived, instant = arrive()
                later = (
                    (instant, arrived) < last if order == "newest" else (instant, arrived) > last
                )
                (must_appear if later else must_not_appear).add(arrived)
            page = service.list_inbox(
                context, recipient, InboxQuery(order=order, limit=19, cursor=page.next_cursor)
            )

        assert len(seen) == len(set(seen)), "a package was listed twice"
        assert set(initial) <= set(seen), "a package present from the start was skipped"
        assert must_appear <= set(seen), "an arrival sorting after the cursor was skipped"
        assert not must_not_appear & set(seen), "an arrival sorting before it was listed"
        assert must_appear, "arrivals landed after the cursor"
        assert must_not_appear, "and before it"
        listed = [keys[package_id] for package_id in seen]
        assert listed == sorted(listed, reverse=order == "newest")
        initial.update(dict.fromkeys(must_appear | must_not_appear, tie))


def test_a_cursor_works_only_with_the_query_it_came_from(context) -> None:
    recipient, other = new_id("r"), new_id("r")
    for i in range(3):
        send(context, recipient, timestamp=at(i))
    cursor = service.list_inbox(context, recipient, InboxQuery(limit=1)).next_cursor
    assert cursor is not None

    for query, owner in (
        (InboxQuery(limit=1, cursor=cursor, order="oldest"), recipient),
        (InboxQuery(limit=1, cursor=cursor, unread=True), recipient),
        (InboxQuery(limit=1, cursor=cursor, folder="trash"), recipient),
        (InboxQuery(limit=1, cursor=cursor), other),
        (InboxQuery(limit=1, cursor="not-a-cursor"), recipient),
        (InboxQuery(limit=1, cursor=cursor[:-4]), recipient),
    ):
        with pytest.raises(InvalidInput) as refused:
            service.list_inbox(context, owner, query)
        assert [e.field for e in refused.value.errors] == ["cursor"]
    # Another limit is the same query.
    assert service.list_inbox(context, recipient, InboxQuery(limit=2, cursor=cursor)).items


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"order": "oldest"},
        {"unread": True},
        {"unread": False, "order": "oldest"},
        {"sender_id": "s1"},
        {"package_type": "marketing", "order": "oldest"},
        {"folder": "trash"},
    ],
)
def test_a_deep_page_is_an_index_seek(context, query) -> None:
    """The page query starts reading at the cursor in an index that serves its
    filters and order, so its cost does not grow with depth."""
    recipient = new_id("r")
    session = context.db
    fill_mailbox(session, recipient, 3000)
    page = service.list_inbox(context, recipient, InboxQuery(limit=37, **query))
    for _ in range(5):
        page = service.list_inbox(
            context, recipient, InboxQuery(limit=37, cursor=page.next_cursor, **query)
        )
    assert page.next_cursor is not None

    statement, parameters = _last_statement(
        lambda: service.list_inbox(
            context, recipient, InboxQuery(limit=37, cursor=page.next_cursor, **query)
        )
    )
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        plan = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
        ).scalar()
        scan = _node_on(plan[0]["Plan"], "inbox_entries")
        assert scan["Node Type"] == "Index Scan", scan
        assert '"timestamp" <' in scan["Index Cond"] or '"timestamp" >' in scan["Index Cond"]
        # A page of 37 and one to know there is more; only the (two) rows
        # sharing the cursor's timestamp are read and discarded.
        assert scan["Actual Rows"] <= 38
        assert scan.get("Rows Removed by Filter", 0) <= 2
    else:
        plan = " ".join(
            row[-1]
            for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        )
        assert "SEARCH inbox_entries USING INDEX" in plan
        assert "timestamp<" in plan or "timestamp>" in plan
        assert "TEMP B-TREE" not in plan
    session.rollback()


def _last_statement(call: Any) -> tuple[str, Any]:
    with statements_run() as seen:
        call()
    return [run for run in seen if "FROM inbox_entries" in run[0]][-1]


def _node_on(node: dict[str, Any], table: str) -> dict[str, Any]:
    if node.get("Relation Name") == table:
        return node
    for child in node.get("Plans", []):
        found = _node_on(child, table)
        if found:
            return found
    return {}
