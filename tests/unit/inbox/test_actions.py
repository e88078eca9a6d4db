"""Bulk and single actions on a mailbox (service layer, both databases)."""

from __future__ import annotations

import pytest

from galaxy_express.core import clock
from galaxy_express.core.errors import NotFound
from galaxy_express.core.validation import validate
from galaxy_express.delivery import service as delivery
from galaxy_express.delivery.commands import SendPackage
from galaxy_express.inbox import service
from galaxy_express.inbox.records import InboxAction, InboxSummary
from tests.conftest import new_id
from tests.inbox_support import at, entries_of, send, spam_report_rows


def test_read_and_unread(context, database_url) -> None:
    recipient = new_id("r")
    first, second = send(context, recipient), send(context, recipient)

    with clock.frozen(at(100)):
        outcome = service.update_inbox(context, recipient, InboxAction.READ, [first])
    assert (outcome.updated, outcome.not_found) == (1, [])
    assert entries_of(database_url, recipient) == {
        first: ("inbox", at(100)),
        second: ("inbox", None),
    }

    # Reading again keeps the first read time, and still counts the package.
    with clock.frozen(at(200)):
        again = service.update_inbox(context, recipient, InboxAction.READ, [first, second])
    assert again.updated == 2
    assert entries_of(database_url, recipient) == {
        first: ("inbox", at(100)),
        second: ("inbox", at(200)),
    }

    service.update_inbox(context, recipient, InboxAction.UNREAD, [first])
    assert entries_of(database_url, recipient)[first] == ("inbox", None)


def test_trash_restore_and_spam_move_between_folders(context, database_url) -> None:
    recipient = new_id("r")
    a, b, c = (send(context, recipient) for _ in range(3))

    service.update_inbox(context, recipient, InboxAction.TRASH, [a, b])
    assert {k: v[0] for k, v in entries_of(database_url, recipient).items()} == {
        a: "trash",
        b: "trash",
        c: "inbox",
    }
    service.update_inbox(context, recipient, InboxAction.SPAM, [b, c])
    service.update_inbox(context, recipient, InboxAction.RESTORE, [a])
    assert {k: v[0] for k, v in entries_of(database_url, recipient).items()} == {
        a: "inbox",
        b: "spam",
        c: "spam",
    }
    # Restore brings spam back too; the report stands.
    service.update_inbox(context, recipient, InboxAction.RESTORE, [b])
    assert entries_of(database_url, recipient)[b][0] == "inbox"
    assert service.get_spam_report_count(context, "sender").reporter_count == 1


def test_delete_removes_the_entry_but_the_package_id_stays_taken(context, database_url) -> None:
    recipient = new_id("r")
    kept = send(context, recipient)
    deleted = send(context, recipient, timestamp=at(7))
    service.update_inbox(context, recipient, InboxAction.TRASH, [deleted])

    outcome = service.update_inbox(context, recipient, InboxAction.DELETE, [deleted])

    assert (outcome.updated, outcome.not_found) == (1, [])
    assert set(entries_of(database_url, recipient)) == {kept}
    assert delivery.get_package(context, deleted).status == "delivered"
    retry = validate(
        SendPackage,
        {
            "timestamp": at(7).isoformat(),
            "sender_id": "sender",
            "recipient_id": recipient,
            "package_id": deleted,
            "package_type": "personal",
        },
    )
    assert delivery.send_package(context, retry).replayed is True
    assert set(entries_of(database_url, recipient)) == {kept}
    assert delivery.get_statistics(context).delivered_by_type["personal"] == 2
    # Deleted is gone from every folder: acting on it again finds nothing.
    again = service.update_inbox(context, recipient, InboxAction.RESTORE, [deleted])
    assert (again.updated, again.not_found) == (0, [deleted])


def test_delete_one_package(context, database_url) -> None:
    recipient = new_id("r")
    package = send(context, recipient)

    service.delete_from_inbox(context, recipient, package)

    assert entries_of(database_url, recipient) == {}
    with pytest.raises(NotFound):
        service.delete_from_inbox(context, recipient, package)
    with pytest.raises(NotFound):
        service.delete_from_inbox(context, recipient, "never-sent")


def test_unknown_and_duplicated_ids(context) -> None:
    recipient = new_id("r")
    a, b = send(context, recipient), send(context, recipient)

    outcome = service.update_inbox(
        context, recipient, InboxAction.TRASH, ["zz-unknown", a, a, "aa-unknown", b, "zz-unknown"]
    )

    # Each id counts once; not_found keeps the order in which ids were first given.
    assert (outcome.updated, outcome.not_found) == (2, ["zz-unknown", "aa-unknown"])


def test_dropped_packages_are_not_in_the_mailbox(context) -> None:
    from galaxy_express.delivery.commands import UpdatePreferences

    recipient = new_id("r")
    delivery.update_preferences(
        context,
        validate(
            UpdatePreferences,
            {
                "timestamp": at(0).isoformat(),
                "recipient_id": recipient,
                "personal_preference": True,
                "marketing_preference": False,
            },
        ),
    )
    dropped = send(context, recipient, package_type="marketing", timestamp=at(5))
    assert delivery.get_package(context, dropped).reason == "opted_out"

    outcome = service.update_inbox(context, recipient, InboxAction.READ, [dropped])
    assert (outcome.updated, outcome.not_found) == (0, [dropped])


@pytest.mark.parametrize("action", list(InboxAction))
def test_a_recipient_cannot_touch_another_recipients_packages(
    context, database_url, action
) -> None:
    owner, intruder = new_id("r"), new_id("r")
    theirs = [send(context, owner, sender_id=f"s{i}") for i in range(3)]
    service.update_inbox(context, owner, InboxAction.READ, theirs[:1])
    service.update_inbox(context, owner, InboxAction.TRASH, theirs[1:2])
    mine = send(context, intruder)
    before = entries_of(database_url, owner)

    outcome = service.update_inbox(context, intruder, action, [*theirs, mine])

    assert (outcome.updated, outcome.not_found) == (1, theirs)
    assert entries_of(database_url, owner) == before
    assert set(entries_of(database_url, intruder)) == (
        set() if action is InboxAction.DELETE else {mine}
    )
    if action is InboxAction.SPAM:
        # Only the sender of the intruder's own package is reported.
        assert {(s, r) for s, r, _ in spam_report_rows(database_url)} == {("sender", intruder)}
        assert service.get_spam_report_count(context, "s0").reporter_count == 0
    with pytest.raises(NotFound):
        service.delete_from_inbox(context, intruder, theirs[0])
    assert entries_of(database_url, owner) == before


def test_summary_counts_each_folder_and_unread_in_the_inbox(context) -> None:
    recipient = new_id("r")
    assert service.get_inbox_summary(context, recipient) == InboxSummary(0, 0, 0, 0)
    packages = [send(context, recipient) for _ in range(7)]
    send(context, new_id("r"))
    service.update_inbox(context, recipient, InboxAction.READ, packages[:2])
    service.update_inbox(context, recipient, InboxAction.TRASH, packages[2:4])
    service.update_inbox(context, recipient, InboxAction.SPAM, packages[4:5])

    # Unread in trash (packages[2:4]) and spam do not count as unread.
    assert service.get_inbox_summary(context, recipient) == InboxSummary(
        inbox=4, unread=2, trash=2, spam=1
    )
    service.update_inbox(context, recipient, InboxAction.DELETE, packages[:1])
    assert service.get_inbox_summary(context, recipient) == InboxSummary(
        inbox=3, unread=2, trash=2, spam=1
    )
