"""The change feed's service side: wake-ups after the commit only, Redis failures that
never fail a write, retention, and replaying the feed rebuilds the mailbox."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galaxy_express.core import clock
from galaxy_express.core.errors import ResyncRequired
from galaxy_express.core.validation import validate
from galaxy_express.inbox import changes, service, wakeups
from galaxy_express.inbox.commands import BulkByFilter, InboxQuery
from galaxy_express.inbox.records import ChangeKind, InboxAction
from galaxy_express.runtime.reporter import housekeeping_round
from tests.conftest import load_app_config
from tests.support import new_id, send, service_context, wait_until


def test_wakeup_messages_round_trip() -> None:
    assert wakeups.channel_name("ge:") == "ge:inbox-changes"
    assert wakeups.decode(wakeups.encode("mars-1", 7)) == ("mars-1", 7)
    assert wakeups.decode(wakeups.encode("mars-1", 7).encode()) == ("mars-1", 7)
    assert json.loads(wakeups.encode("r", 1)) == {"recipient_id": "r", "seq": 1}


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"{",
        b"[]",
        b'{"recipient_id": "r"}',
        b'{"recipient_id": 1, "seq": 2}',
        b'{"recipient_id": "r", "seq": "2"}',
        b'{"recipient_id": "r", "seq": true}',
        b"\xff",
    ],
)
def test_a_message_that_is_not_a_wakeup_is_a_value_error(message: bytes) -> None:
    with pytest.raises(ValueError, match="not an inbox wake-up"):
        wakeups.decode(message)


def _subscribed(redis_client: Any, context: Any) -> Any:
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(wakeups.channel_name(context.settings.redis_key_prefix))
    # The subscription is confirmed before anything is published.
    wait_until(lambda: pubsub.get_message(timeout=0.1) is None and pubsub.subscribed)
    return pubsub


def _messages_until(pubsub: Any, recipient_id: str, seq: int) -> list[int]:
    """The seqs of ``recipient_id``'s wake-ups, until one says ``seq``."""
    found: list[int] = []

    def reached() -> bool:
        message = pubsub.get_message(timeout=0.1)
        if message is not None:
            recipient, last = wakeups.decode(message["data"])
            if recipient == recipient_id:
                found.append(last)
        return bool(found) and found[-1] >= seq

    wait_until(reached)
    return found


def test_sends_and_actions_publish_their_last_seq_after_the_commit(
    context: Any, redis_client: Any
) -> None:
    pubsub = _subscribed(redis_client, context)
    recipient = new_id("r")
    first = send(context, recipient)
    assert _messages_until(pubsub, recipient, 1) == [1]
    # When a wake-up arrives, its changes are readable (it was sent after the commit).
    assert [c.seq for c in service.read_changes(context, recipient, 0, 10).changes] == [1]
    second = send(context, recipient)
    service.update_inbox(context, recipient, InboxAction.READ, [first, second])
    service.update_inbox(context, recipient, InboxAction.READ, [first])  # nothing changes
    service.update_inbox_by_filter(
        context, recipient, validate(BulkByFilter, {"action": "trash", "up_to_seq": 10})
    )
    # Wake-ups queued close together are coalesced: the mailbox's highest seq, in order.
    seqs = _messages_until(pubsub, recipient, 6)
    assert seqs == sorted(set(seqs))
    assert seqs[-1] == 6
    assert set(seqs) <= {2, 4, 6}
    assert pubsub.get_message(timeout=0.2) is None
    pubsub.close()


def test_a_redis_outage_never_fails_or_undoes_a_change(database_url: str, tmp_path: Any) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    config = load_app_config(
        **{
            "db.url": database_url,
            "redis.url": f"redis://127.0.0.1:{port}/0",
            "reports.dir": str(tmp_path),
        }
    )
    recipient = new_id("r")
    with service_context(config) as context:
        package_id = send(context, recipient)
        service.update_inbox(context, recipient, InboxAction.TRASH, [package_id])
        page = service.read_changes(context, recipient, 0, 10)
    assert [(c.kind.value, c.package_id) for c in page.changes] == [
        ("delivered", package_id),
        ("moved", package_id),
    ]


def test_old_changes_are_pruned_and_an_old_since_is_410(context: Any, tmp_path: Any) -> None:
    recipient, other = new_id("r"), new_id("r")
    with clock.frozen(clock.now() - timedelta(days=40)):
        old = [send(context, recipient) for _ in range(3)]
        send(context, other)
    kept = send(context, recipient)

    pruned = housekeeping_round(context, tmp_path)["inbox changes"]

    assert pruned == 4
    for since in (0, 2):
        with pytest.raises(ResyncRequired):
            service.read_changes(context, recipient, since, 10)
    page = service.read_changes(context, recipient, 3, 10)
    assert [c.package_id for c in page.changes] == [kept]
    assert service.read_changes(context, other, 1, 10).changes == []
    # The mailbox itself is untouched: pruning drops history, never packages.
    listed = service.list_inbox(context, recipient, InboxQuery())
    assert {item.package.package_id for item in listed.items} == {*old, kept}


def test_pruning_goes_in_bounded_batches(context: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(changes, "PRUNE_BATCH", 2)
    recipient = new_id("r")
    with clock.frozen(clock.now() - timedelta(days=40)):
        for _ in range(5):
            send(context, recipient)
    assert changes.prune_changes(context, 30, batches=2) == 4
    assert changes.prune_changes(context, 30, batches=2) == 1
    assert changes.prune_changes(context, 0) == 0  # 0 keeps them forever


# ---- Replaying the feed rebuilds the mailbox (a property) ---------------------

ACTIONS = [action.value for action in InboxAction]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(0, 5)),
        st.tuples(st.sampled_from(ACTIONS), st.lists(st.integers(0, 5), min_size=1, max_size=3)),
        st.tuples(st.just("bulk"), st.sampled_from(ACTIONS)),
    ),
    max_size=12,
)


@pytest.fixture
def sqlite_config(sqlite_url: str, redis_url: str, tmp_path: Any) -> dict[str, str]:
    return load_app_config(
        **{"db.url": sqlite_url, "redis.url": redis_url, "reports.dir": str(tmp_path)}
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=steps)
def test_replaying_the_changes_onto_an_empty_mailbox_reproduces_it(
    sqlite_config: dict[str, str], steps: list[Any]
) -> None:
    recipient = new_id("r")
    with service_context(sqlite_config) as context:
        ids = [f"{recipient}-{n}" for n in range(6)]
        for step, argument in steps:
            if step == "send":
                send(context, recipient, package_id=ids[argument], sender_id=f"s{argument % 2}")
            elif step == "bulk":
                seq = service.list_inbox_seen(context, recipient, InboxQuery()).seq
                command = {"action": argument, "filter": {"sender_id": "s0"}, "up_to_seq": seq}
                service.update_inbox_by_filter(context, recipient, validate(BulkByFilter, command))
            else:
                service.update_inbox(
                    context, recipient, InboxAction(step), [ids[n] for n in argument]
                )

        # Replayed by kind alone (not by the items): the events say what happened.
        replayed: dict[str, tuple[str, bool]] = {}
        for event in service.read_changes(context, recipient, 0, 500).changes:
            kind, package_id = event.kind.value, event.package_id
            if kind == "delivered":
                assert package_id not in replayed
                replayed[package_id] = ("inbox", False)
            elif kind == "deleted":
                del replayed[package_id]
            else:
                folder, read = replayed[package_id]
                if kind == "moved":
                    assert (event.from_folder, event.to_folder) != (folder, folder)
                    assert event.from_folder == folder
                    assert event.to_folder is not None
                    replayed[package_id] = (event.to_folder, read)
                else:
                    assert read is (kind == "unread"), "an event changes something"
                    replayed[package_id] = (folder, kind == "read")
        listed: dict[str, tuple[str, bool]] = {}
        for folder in ("inbox", "trash", "spam"):
            page = service.list_inbox(context, recipient, InboxQuery(folder=folder, limit=100))
            listed |= {item.package.package_id: (item.folder, item.read) for item in page.items}
    assert replayed == listed


def test_the_shell_tails_a_mailbox(context: Any) -> None:
    from galaxy_express.runtime.shell import Helpers

    recipient = new_id("r")
    first, second = send(context, recipient), send(context, recipient)
    service.update_inbox(context, recipient, InboxAction.DELETE, [first])
    shown: list[str] = []

    last = Helpers(context).tail_changes(recipient, since=1, follow=False, show=shown.append)

    assert last == 3
    assert [(line["seq"], line["kind"], line["package_id"]) for line in map(json.loads, shown)] == [
        (2, "delivered", second),
        (3, "deleted", first),
    ]


def test_a_group_commit_batch_gives_each_mailbox_its_own_gapless_seqs(
    app_config: dict[str, str], database_url: str
) -> None:
    import gevent
    from sqlalchemy import create_engine, text

    recipients = [new_id("r") for _ in range(3)]

    def sender(number: int) -> str:
        with service_context(app_config) as context:
            return send(context, recipients[number % 3], package_id=f"p{number:03d}-{new_id()}")

    greenlets = [gevent.spawn(sender, number) for number in range(30)]
    gevent.joinall(greenlets, timeout=60, raise_error=True)

    engine = create_engine(database_url, future=True)
    with engine.connect() as connection:
        for recipient in recipients:
            events = connection.execute(
                text("SELECT seq, package_id FROM inbox_changes WHERE recipient_id = :r"),
                {"r": recipient},
            ).all()
            entries = connection.execute(
                text("SELECT delivered_seq, package_id FROM inbox_entries WHERE recipient_id = :r"),
                {"r": recipient},
            ).all()
            assert sorted(seq for seq, _ in events) == list(range(1, 11))
            # Each entry knows the seq of its own delivered event.
            assert sorted(map(tuple, entries)) == sorted(map(tuple, events))
    engine.dispose()


@pytest.mark.postgresql
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_keyed_bulk_action_locks_the_mailbox_seqs_only_after_its_last_batch(
    context: Any, database_url: str, monkeypatch: Any
) -> None:
    """Under an Idempotency-Key every batch joins one transaction: the seqs (and so the
    counter row's lock, which sends to the mailbox wait for) are taken after the last
    batch, never held across them; the events are those of separate batches."""
    import psycopg2

    from galaxy_express.db.unit_of_work import request_transaction

    recipient = new_id("pluto")
    for _ in range(5):
        send(context, recipient)
    monkeypatch.setattr(service, "BULK_BATCH", 2)
    other = psycopg2.connect(database_url)
    other.autocommit = True
    locked_during_batches: list[bool] = []
    matching_page = service._matching_page

    def observed(*args: Any, **kwargs: Any) -> Any:
        with other.cursor() as cursor:
            try:
                cursor.execute(
                    "SELECT 1 FROM inbox_sequences WHERE recipient_id = %s FOR UPDATE NOWAIT",
                    (recipient,),
                )
                locked_during_batches.append(False)
            except psycopg2.errors.LockNotAvailable:
                locked_during_batches.append(True)
        return matching_page(*args, **kwargs)

    monkeypatch.setattr(service, "_matching_page", observed)
    try:
        with request_transaction(context.db):
            outcome = service.update_inbox_by_filter(
                context, recipient, validate(BulkByFilter, {"action": "read", "up_to_seq": 10})
            )
    finally:
        other.close()

    assert outcome.updated == 5
    assert locked_during_batches == [False, False, False]
    page = service.read_changes(context, recipient, 5, 100)
    assert [(event.seq, event.kind) for event in page.changes] == [
        (seq, ChangeKind.READ) for seq in range(6, 11)
    ]
