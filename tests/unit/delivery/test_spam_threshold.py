"""delivery.spam_drop_threshold: drop packages of senders reported by N recipients."""

from __future__ import annotations

from typing import Any

from galaxy_express.core.validation import validate
from galaxy_express.delivery import service as delivery
from galaxy_express.delivery.commands import SendPackage
from galaxy_express.inbox import service as inbox
from galaxy_express.inbox.records import InboxAction
from tests.conftest import free_port, new_id
from tests.inbox_support import at, entries_of, send, service_context


def report(context: Any, sender_id: str, recipients: int) -> None:
    for _ in range(recipients):
        recipient = new_id("r")
        package = send(context, recipient, sender_id=sender_id)
        inbox.update_inbox(context, recipient, InboxAction.SPAM, [package])


def test_packages_of_a_sender_reported_by_n_recipients_are_dropped(
    app_config, database_url
) -> None:
    spammer, recipient = new_id("s"), new_id("r")
    with service_context({**app_config, "delivery.spam_drop_threshold": "2"}) as context:
        report(context, spammer, 1)
        below = send(context, recipient, sender_id=spammer, timestamp=at(1))
        report(context, spammer, 1)
        dropped = send(context, recipient, sender_id=spammer, timestamp=at(2))
        other = send(context, recipient, sender_id="someone-else", timestamp=at(3))

        assert delivery.get_package(context, below).status == "delivered"
        record = delivery.get_package(context, dropped)
        assert (record.status, record.reason) == ("dropped", "sender_reported")
        assert delivery.get_package(context, other).status == "delivered"
        assert set(entries_of(database_url, recipient)) == {below, other}
        statistics = delivery.get_statistics(context)
        assert statistics.dropped_by_reason["sender_reported"] == 1
        assert statistics.packages_dropped == 1
        # Packages of the reporting (2 + below + other) were delivered.
        assert statistics.packages_delivered == 4

        # A retry of a package delivered before the reports replays its first answer.
        retry = validate(
            SendPackage,
            {
                "timestamp": at(1).isoformat(),
                "sender_id": spammer,
                "recipient_id": recipient,
                "package_id": below,
                "package_type": "personal",
            },
        )
        outcome = delivery.send_package(context, retry)
        assert (outcome.replayed, outcome.package.status) == (True, "delivered")
        assert delivery.get_statistics(context).dropped_by_reason["sender_reported"] == 1


def test_off_by_default(context) -> None:
    spammer = new_id("s")
    report(context, spammer, 3)
    package = send(context, new_id("r"), sender_id=spammer)
    assert delivery.get_package(context, package).status == "delivered"
    assert delivery.get_statistics(context).dropped_by_reason["sender_reported"] == 0


def test_the_reports_in_the_database_decide_while_redis_is_down(app_config) -> None:
    spammer = new_id("s")
    with service_context(app_config) as context:
        report(context, spammer, 1)
    down = {
        **app_config,
        "redis.url": f"redis://127.0.0.1:{free_port()}/0",
        "delivery.spam_drop_threshold": "1",
    }
    with service_context(down) as without_redis:
        package = send(without_redis, new_id("r"), sender_id=spammer)
        assert delivery.get_package(without_redis, package).reason == "sender_reported"
