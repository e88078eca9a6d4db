"""A group commit's sends run together on PostgreSQL: one statement per table.

However they are batched, each send must get the answer it gets alone: the
first send of an id stores it, every other (a repeat in the same batch, an id
stored before, another process's batch racing on the same ids) replays the
stored package; a write that fails fails alone.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import gevent
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from galaxy_express.core.validation import validate
from galaxy_express.db import driver_transaction
from galaxy_express.db.group_commit import group_commit
from galaxy_express.delivery import service
from galaxy_express.delivery.commands import ContentIn, SendPackage, UpdatePreferences
from galaxy_express.delivery.models import Package, PackageCounter
from galaxy_express.inbox.models import InboxChange, InboxEntry
from tests.support import new_id
from tests.support import sqlite_engine as _engine

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

T0 = datetime(2142, 1, 1, 12, 0, tzinfo=UTC)


def package(package_id: str, recipient_id: str = "mars-1", **fields: Any) -> SendPackage:
    data = {
        "timestamp": T0.isoformat(),
        "sender_id": "earth-1",
        "recipient_id": recipient_id,
        "package_id": package_id,
        "package_type": "personal",
    } | fields
    return validate(SendPackage, data)


def send(context: Any, command: SendPackage) -> Any:
    return service._Send(context, command, sender_reported=False)


def run_together(context: Any, session: Session, commands: list[SendPackage]) -> list[Any]:
    """The sends as one group commit's batch runs them on PostgreSQL."""
    writes = [send(context, command) for command in commands]
    with driver_transaction(session) as transaction:
        return service._Send.run_all(transaction, writes)


def count(engine: Any, model: Any, *where: Any) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(model).where(*where)).scalar()
        )


def delivered(engine: Any) -> int:
    with engine.connect() as connection:
        total = connection.execute(
            select(func.coalesce(func.sum(PackageCounter.value), 0)).where(
                PackageCounter.name == "delivered:personal"
            )
        ).scalar()
    return int(total)


def seqs_of(engine: Any, recipient_id: str) -> list[int]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(InboxChange.seq)
            .where(InboxChange.recipient_id == recipient_id)
            .order_by(InboxChange.seq)
        )
        return [int(seq) for (seq,) in rows]


def test_repeats_inside_a_batch_replay_the_first_as_sends_one_by_one_do(
    context: Any, database_url: str
) -> None:
    engine = _engine(database_url)
    first, other = new_id("a"), new_id("b")
    commands = [
        package(first),
        package(other, recipient_id="mars-2"),
        package(first, sender_id="earth-2"),  # the same id with another field: a conflict
        package(first),  # an identical retry
    ]
    with Session(engine) as session:
        outcomes = run_together(context, session, commands)

    assert [outcome.replayed for outcome in outcomes] == [False, False, True, True]
    assert outcomes[2].package == outcomes[3].package == outcomes[0].package
    assert service._conflict_of(outcomes[2], commands[2]) is not None
    assert service._conflict_of(outcomes[3], commands[3]) is None
    assert count(engine, Package) == 2
    assert count(engine, InboxEntry) == 2
    assert delivered(engine) == 2
    assert seqs_of(engine, "mars-1") == seqs_of(engine, "mars-2") == [1]


def test_an_id_stored_before_replays_the_stored_package(context: Any, database_url: str) -> None:
    engine = _engine(database_url)
    stored_id, new = new_id("a"), new_id("b")
    stored = service.send_package(context, package(stored_id))
    with Session(engine) as session:
        outcomes = run_together(context, session, [package(new), package(stored_id)])

    assert [outcome.replayed for outcome in outcomes] == [False, True]
    assert outcomes[1].package == stored.package
    assert count(engine, Package) == 2
    assert delivered(engine) == 2
    assert seqs_of(engine, "mars-1") == [1, 2]


def test_a_batch_judges_each_send_by_the_preferences_in_force_at_its_timestamp(
    context: Any, database_url: str
) -> None:
    engine = _engine(database_url)
    opted_out_at = T0 + timedelta(minutes=5)
    service.update_preferences(
        context,
        validate(
            UpdatePreferences,
            {
                "timestamp": opted_out_at.isoformat(),
                "recipient_id": "mars-1",
                "personal_preference": False,
                "marketing_preference": True,
            },
        ),
    )
    before, after = new_id("before"), new_id("after")
    later = (opted_out_at + timedelta(minutes=1)).isoformat()
    commands = [
        package(before),
        package(after, timestamp=later),
        package(new_id("other"), recipient_id="mars-2", timestamp=later),
    ]
    with Session(engine) as session:
        outcomes = run_together(context, session, commands)

    assert [(o.package.status, o.package.reason) for o in outcomes] == [
        ("delivered", None),
        ("dropped", "opted_out"),
        ("delivered", None),
    ]
    assert count(engine, InboxEntry) == 2


def test_a_failing_send_fails_alone_and_the_batch_commits_the_others(
    context: Any, database_url: str
) -> None:
    engine = _engine(database_url)
    commands = [package(new_id(f"p{number}")) for number in range(12)]
    # Too long for its column: PostgreSQL refuses the row, and with it the batch's statement.
    too_long = ContentIn.model_construct(subject="x" * 300, body="")
    commands[5] = commands[5].model_copy(update={"content": too_long})

    def one(command: SendPackage) -> Any:
        with Session(engine) as session:
            return group_commit(session, send(context, command))

    writers = [gevent.spawn(one, command) for command in commands]
    gevent.joinall(writers, timeout=30)

    assert writers[5].exception is not None
    assert all(w.successful() and not w.value.replayed for n, w in enumerate(writers) if n != 5)
    assert count(engine, Package) == 11
    assert count(engine, Package, Package.package_id == commands[5].package_id) == 0
    assert delivered(engine) == 11
    assert seqs_of(engine, "mars-1") == list(range(1, 12))


def test_concurrent_sends_share_a_batch_and_keep_at_most_once(
    context: Any, database_url: str
) -> None:
    engine = _engine(database_url)
    checkouts = [0]

    @event.listens_for(engine, "checkout")
    def _counted(*_args: Any) -> None:
        checkouts[0] += 1  # a group commit's transaction takes one connection

    ids = [new_id(f"p{number}") for number in range(20)]
    commands = [package(package_id) for package_id in ids + ids[::2]]

    def one(command: SendPackage) -> Any:
        with Session(engine) as session:
            return group_commit(session, send(context, command))

    writers = [gevent.spawn(one, command) for command in commands]
    gevent.joinall(writers, timeout=30, raise_error=True)

    new = Counter(w.value.package.package_id for w in writers if not w.value.replayed)
    assert new == Counter(ids)
    assert checkouts[0] < len(commands) / 4
    assert count(engine, Package) == 20
    assert delivered(engine) == 20
    assert seqs_of(engine, "mars-1") == list(range(1, 21))


def test_two_processes_batches_on_overlapping_ids_neither_deadlock_nor_repeat(
    context: Any, database_url: str
) -> None:
    """Two engines (as two processes) run batches sharing ids, in opposite orders,
    both holding their rows a while: each id is stored once, and both commit."""
    engines = [_engine(database_url), _engine(database_url)]
    ids = [new_id(f"p{number:02}") for number in range(30)]
    recipients = [f"mars-{number % 4}" for number in range(30)]
    batches = [
        [package(i, r) for i, r in zip(ids[:20], recipients[:20], strict=True)],
        [package(i, r) for i, r in zip(ids[10:], recipients[10:], strict=True)][::-1],
    ]

    def batch(engine: Any, commands: list[SendPackage]) -> list[Any]:
        writes = [send(context, command) for command in commands]
        with Session(engine) as session, driver_transaction(session) as transaction:
            outcomes = service._Send.run_all(transaction, writes)
            gevent.sleep(0.1)  # hold the rows while the other batch asks for them
            return outcomes

    writers = [gevent.spawn(batch, e, c) for e, c in zip(engines, batches, strict=True)]
    gevent.joinall(writers, timeout=30, raise_error=True)

    outcomes = [outcome for writer in writers for outcome in writer.value]
    new = Counter(o.package.package_id for o in outcomes if not o.replayed)
    assert new == Counter(ids)
    assert sum(o.replayed for o in outcomes) == 10  # the ids both batches hold
    assert count(engine := engines[0], Package) == 30
    assert delivered(engine) == 30
    for recipient in sorted(set(recipients)):
        assert seqs_of(engine, recipient) == list(range(1, recipients.count(recipient) + 1))
