"""The inbox's change feed: every change of a mailbox as an event with its own seq.

Each change is written in the transaction that makes it: the delivery (the
send's group commit), read, unread, moved, deleted (the actions). Its seq comes
from the recipient's counter row (``inbox_sequences``) by one increment-and-return
(INSERT ... ON CONFLICT DO UPDATE ... RETURNING, on SQLite as on PostgreSQL),
which locks that row until the transaction ends. So a mailbox's seqs are given
and committed in one order: a transaction asking for seqs while another holds
the row waits for its commit (PostgreSQL) or for the write lock (SQLite), and
then counts on from the committed value. A reader that has seen seq n never
later sees a new event below n, and the seqs of one mailbox have no gaps (a
rolled-back transaction gave its seqs back with its increment).

Lock order, on PostgreSQL: a transaction takes the mailbox's entries it changes
(in package id order) before the counter row, and sends take the counter rows
as their transaction ends, in recipient order, before the delivery counters
(``DriverTransaction.at_end``). Every transaction takes them in that one order,
so none waits for another in a cycle.

A change that changes nothing (read on a read package, trash on a trashed one)
writes no event. After the commit, a Redis message wakes the live streams up
(``wakeups``); the events are read from the database, the truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import BigInteger, and_, bindparam, delete, insert, select, text, update
from sqlalchemy.orm import Session

from galaxy_express.core import access, clock
from galaxy_express.core.context import ServiceContext
from galaxy_express.core.errors import ResyncRequired
from galaxy_express.db import DriverTransaction, unit_of_work
from galaxy_express.db.driver import read_rows
from galaxy_express.db.unit_of_work import after_commit
from galaxy_express.inbox import wakeups
from galaxy_express.inbox.models import InboxChange, InboxEntry, InboxSequence
from galaxy_express.inbox.records import ChangeEvent, ChangeKind, ChangesPage, InboxItem
from galaxy_express.packages.models import Package
from galaxy_express.packages.records import PackageRecord

# Events deleted per transaction when pruning, and transactions per round.
PRUNE_BATCH = 500
PRUNE_BATCHES_PER_ROUND = 20


@dataclass(frozen=True)
class Change:
    """A change about to be written: its kind, the package, and for moves the folders."""

    kind: ChangeKind
    package_id: str
    from_folder: str | None = None
    to_folder: str | None = None


# ---- Writing ------------------------------------------------------------------


def take_seqs(writer: DriverTransaction | Session, recipient_id: str, count: int) -> int:
    """Take ``count`` seqs of the mailbox; the last one (the first is ``last - count + 1``).

    Locks the recipient's counter row until the transaction ends (see the module).
    """
    values = {"recipient_id": recipient_id, "count": count}
    if isinstance(writer, Session):
        return int(writer.execute(_TAKE_SEQS, values).scalar_one())
    return int(writer.first(_TAKE_SEQS, values).last_seq)


def write_changes(
    session: Session, recipient_id: str, changes: Sequence[Change], at: datetime
) -> int | None:
    """Write these changes of one mailbox, in order, in the session's transaction; the
    last seq given (None when there were none). The wake-up is the caller's, once its
    unit of work has ended (``publish_after_commit``)."""
    if not changes:
        return None
    last = take_seqs(session, recipient_id, len(changes))
    first = last - len(changes) + 1
    rows = [
        _change_values(recipient_id, first + offset, change, at)
        for offset, change in enumerate(changes)
    ]
    session.execute(_INSERT_CHANGE, rows)
    return last


def publish_after_commit(
    context: ServiceContext, session: Session, last_seqs: dict[str, int]
) -> None:
    """Wake the streams of these mailboxes (recipient -> last seq) once the caller's
    writes have committed: call it after the unit of work that wrote them ended (inside
    a request transaction it waits for the request's commit)."""
    if last_seqs:
        after_commit(session, partial(_publish, context, dict(last_seqs)))


def place_in_inbox(
    context: ServiceContext, transaction: DriverTransaction, package: PackageRecord
) -> None:
    """Deliver a package to its recipient's inbox, with its ``delivered`` event.

    Both are written as the transaction ends, with every other delivery of it
    (a group commit's batch): one counter statement per recipient, then per
    package its entry and its event, then a wake-up after the commit.
    """
    transaction.at_end("inbox.deliveries", partial(_Deliveries, context)).add(package)


@dataclass
class _Deliveries:
    """A transaction's deliveries, grouped by recipient, written as it ends."""

    context: ServiceContext
    by_recipient: dict[str, list[PackageRecord]] = field(default_factory=dict)

    def add(self, package: PackageRecord) -> None:
        self.by_recipient.setdefault(package.recipient_id, []).append(package)

    def flush(self, transaction: DriverTransaction) -> None:
        if transaction.dialect.name == "postgresql":
            self._flush_together(transaction)
            return
        now = clock.now()
        last_seqs: dict[str, int] = {}
        # In recipient order: two batches delivering to the same mailboxes take
        # their counter rows in the same order (see the module).
        for recipient_id in sorted(self.by_recipient):
            packages = self.by_recipient[recipient_id]
            last = take_seqs(transaction, recipient_id, len(packages))
            for seq, package in enumerate(packages, start=last - len(packages) + 1):
                transaction.execute(_PLACE_IN_INBOX, _entry_values(package, seq))
                transaction.execute(
                    _INSERT_CHANGE,
                    _change_values(
                        package.recipient_id,
                        seq,
                        Change(ChangeKind.DELIVERED, package.package_id),
                        now,
                    ),
                )
            last_seqs[recipient_id] = last
        transaction.after_commit(partial(_publish, self.context, last_seqs))

    def _flush_together(self, transaction: DriverTransaction) -> None:
        """PostgreSQL: the same rows as ``flush``, a statement a table for them all.

        Each statement is a round trip to the server: a batch of 60 deliveries cost
        a seq upsert per recipient and two inserts per package, one after another.
        The counter rows are taken in recipient order, as ``flush`` takes them.
        """
        now = clock.now()
        recipients = sorted(self.by_recipient)
        wanted = [
            {"recipient_id": r, "last_seq": len(self.by_recipient[r]), "pruned_through": 0}
            for r in recipients
        ]
        taken = transaction.insert_rows(
            InboxSequence.__table__,
            wanted,
            on_conflict="add",
            key=("recipient_id",),
            add_column="last_seq",
            returning=("recipient_id", "last_seq"),
        )
        last_seqs = {recipient_id: int(last) for recipient_id, last in taken}
        entries: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for recipient_id in recipients:
            packages = self.by_recipient[recipient_id]
            last = last_seqs[recipient_id]
            for seq, package in enumerate(packages, start=last - len(packages) + 1):
                entries.append(_entry_values(package, seq))
                delivered = Change(ChangeKind.DELIVERED, package.package_id)
                changes.append(_change_values(recipient_id, seq, delivered, now))
        transaction.insert_rows(InboxEntry.__table__, entries)
        transaction.insert_rows(InboxChange.__table__, changes)
        transaction.after_commit(partial(_publish, self.context, last_seqs))


def _publish(context: ServiceContext, last_seqs: dict[str, int]) -> None:
    wakeups.publish(context.redis, context.settings.redis_key_prefix, last_seqs)


def _entry_values(package: PackageRecord, seq: int) -> dict[str, Any]:
    return {
        "package_id": package.package_id,
        "recipient_id": package.recipient_id,
        "sender_id": package.sender_id,
        "package_type": package.package_type,
        "timestamp": package.timestamp,
        "folder": "inbox",
        "read_at": None,
        "delivered_seq": seq,
    }


def _change_values(recipient_id: str, seq: int, change: Change, at: datetime) -> dict[str, Any]:
    return {
        "recipient_id": recipient_id,
        "seq": seq,
        "kind": change.kind.value,
        "package_id": change.package_id,
        "at": at,
        "from_folder": change.from_folder,
        "to_folder": change.to_folder,
    }


# ---- Reading ------------------------------------------------------------------


def read_changes(context: ServiceContext, recipient_id: str, since: int, limit: int) -> ChangesPage:
    """The mailbox's changes after ``since``, oldest first, at most ``limit``.

    Keyset by (recipient, seq): a page costs the same at any depth. Each event's
    ``item`` is the entry as it is now (null once deleted). Raises
    ``ResyncRequired`` (410) when changes after ``since`` may have been pruned.
    """
    access.require_recipient(context, recipient_id)
    with unit_of_work(context.db) as session:
        rows = session.execute(
            _CHANGES_AFTER, {"recipient_id": recipient_id, "since": since, "limit": limit + 1}
        ).all()
        # Read after the events: on PostgreSQL (a snapshot per statement) a prune
        # committed in between is seen here, so a page it cut into is refused too.
        pruned_through = session.execute(
            _PRUNED_THROUGH, {"recipient_id": recipient_id}
        ).scalar_one_or_none()
    if pruned_through is not None and since < pruned_through:
        raise ResyncRequired(
            f"changes of {recipient_id!r} up to seq {pruned_through} were pruned "
            f"(inbox.changes_retention_days); list the mailbox again and follow its "
            "Inbox-Seq"
        )
    events = [_event_of(row) for row in rows[:limit]]
    return ChangesPage(
        changes=events,
        next_since=events[-1].seq if events else since,
        has_more=len(rows) > limit,
    )


def current_seq(session: Session, recipient_id: str) -> int:
    """The mailbox's last seq given (0 before its first change), in the caller's unit."""
    # Read as the page is (``read_rows``): an empty page reads it in the page's unit.
    rows = read_rows(session, _LAST_SEQ, {"recipient_id": recipient_id})
    return int(rows[0][0] or 0) if rows else 0


def _event_of(row: Any) -> ChangeEvent:
    item = None
    if row.folder is not None and row.kind != ChangeKind.DELETED.value:
        item = InboxItem.from_row(row)
    return ChangeEvent(
        seq=int(row.seq),
        kind=ChangeKind(row.kind),
        package_id=row.change_package_id,
        at=row.at,
        item=item,
        from_folder=row.from_folder,
        to_folder=row.to_folder,
    )


# ---- Retention ----------------------------------------------------------------


def prune_changes(
    context: ServiceContext, retention_days: int, batches: int = PRUNE_BATCHES_PER_ROUND
) -> int:
    """Delete events older than ``retention_days`` (0 keeps them forever), oldest first,
    a bounded batch per transaction; how many went.

    Each batch raises the mailboxes' ``pruned_through`` to the highest seq it
    deleted, in the same transaction: a reader's ``since`` below it is then 410,
    never a page with a hole.
    """
    if not retention_days:
        return 0
    older_than = clock.now() - timedelta(days=retention_days)
    pruned = 0
    for _ in range(batches):
        with unit_of_work(context.db, write=True) as session:
            count = _prune_batch(session, older_than, PRUNE_BATCH)
        pruned += count
        if count < PRUNE_BATCH:
            break
    return pruned


def _prune_batch(session: Session, older_than: datetime, limit: int) -> int:
    doomed = session.execute(_OLDEST_CHANGES, {"before": older_than, "limit": limit}).all()
    if not doomed:
        return 0
    seqs_of: dict[str, list[int]] = {}
    for recipient_id, seq in doomed:
        seqs_of.setdefault(recipient_id, []).append(int(seq))
    # Counter rows in recipient order, as every writer takes them.
    for recipient_id in sorted(seqs_of):
        seqs = seqs_of[recipient_id]
        session.execute(_RAISE_PRUNED_THROUGH, {"recipient": recipient_id, "through": max(seqs)})
        session.execute(_DELETE_CHANGES, {"recipient_id": recipient_id, "seqs": seqs})
    return len(doomed)


# Statements built once (see delivery.service).
_TAKE_SEQS = text(
    "INSERT INTO inbox_sequences (recipient_id, last_seq, pruned_through) "
    "VALUES (:recipient_id, :count, 0) "
    "ON CONFLICT (recipient_id) DO UPDATE "
    "SET last_seq = inbox_sequences.last_seq + excluded.last_seq "
    "RETURNING last_seq"
).columns(last_seq=BigInteger)
_PLACE_IN_INBOX = insert(InboxEntry.__table__)
_INSERT_CHANGE = insert(InboxChange.__table__)
_LAST_SEQ = select(InboxSequence.last_seq).where(
    InboxSequence.recipient_id == bindparam("recipient_id")
)
_PRUNED_THROUGH = select(InboxSequence.pruned_through).where(
    InboxSequence.recipient_id == bindparam("recipient_id")
)
_CHANGES_AFTER = (
    select(
        InboxChange.seq,
        InboxChange.kind,
        InboxChange.package_id.label("change_package_id"),
        InboxChange.at,
        InboxChange.from_folder,
        InboxChange.to_folder,
        InboxEntry.folder,
        InboxEntry.read_at,
        *Package.__table__.columns,
    )
    .outerjoin(
        InboxEntry,
        and_(
            InboxEntry.package_id == InboxChange.package_id,
            InboxEntry.recipient_id == InboxChange.recipient_id,
        ),
    )
    .outerjoin(Package, Package.package_id == InboxEntry.package_id)
    .where(
        InboxChange.recipient_id == bindparam("recipient_id"),
        InboxChange.seq > bindparam("since"),
    )
    .order_by(InboxChange.seq)
    .limit(bindparam("limit"))
)
_OLDEST_CHANGES = (
    select(InboxChange.recipient_id, InboxChange.seq)
    .where(InboxChange.at < bindparam("before"))
    .order_by(InboxChange.at)
    .limit(bindparam("limit"))
)
_DELETE_CHANGES = (
    delete(InboxChange)
    .where(
        InboxChange.recipient_id == bindparam("recipient_id"),
        InboxChange.seq.in_(bindparam("seqs", expanding=True)),
    )
    .execution_options(synchronize_session=False)
)
_RAISE_PRUNED_THROUGH = (
    update(InboxSequence)
    .where(
        InboxSequence.recipient_id == bindparam("recipient"),
        InboxSequence.pruned_through < bindparam("through"),
    )
    .values(pruned_through=bindparam("through"))
)
