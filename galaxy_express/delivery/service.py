"""Delivery: send packages at most once, judge them by preferences, count exactly.

At most once: the package row's primary key is the package id, inserted with
ON CONFLICT DO NOTHING inside the transaction that also writes the counters
and the inbox entry. Whoever inserts the row processed the package; every
other attempt, however it races, reads that row and replays it (or conflicts).

Sends are the hottest write: a worker's concurrent sends share one transaction
(``group_commit``) and run on the driver's cursor (``db.driver_transaction``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, String, Text, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from galaxy_express.core import access, clock, metrics
from galaxy_express.core.context import ServiceContext
from galaxy_express.core.errors import Conflict, FieldError, NotFound
from galaxy_express.db import (
    DriverTransaction,
    UTCDateTime,
    driver_transaction,
    increment_counters,
    insert_ignoring_conflicts,
    unit_of_work,
)
from galaxy_express.db.driver import read_rows, reading
from galaxy_express.db.group_commit import group_commit
from galaxy_express.delivery.commands import SendPackage, UpdatePreferences
from galaxy_express.delivery.models import PackageCounter, PreferenceUpdate
from galaxy_express.delivery.records import (
    BatchItemOutcome,
    InvalidPackage,
    PackageLookup,
    Preferences,
    SendOutcome,
    Statistics,
)
from galaxy_express.inbox.changes import place_in_inbox
from galaxy_express.inbox.service import is_sender_reported
from galaxy_express.packages.models import Package
from galaxy_express.packages.package_types import DROP_REASONS, PACKAGE_TYPES
from galaxy_express.packages.records import Content, PackageRecord

DELIVERED = "delivered"
DROPPED = "dropped"


def send_package(context: ServiceContext, command: SendPackage) -> SendOutcome:
    """Process a package once; a retry replays the first answer, a mismatch is 409."""
    access.require_sender(context, command.sender_id)
    # Asked before the transaction: it may read Redis, and no network I/O
    # belongs inside the write transaction.
    sender_reported = is_sender_reported(context, command.sender_id)
    outcome = group_commit(context.db, _Send(context, command, sender_reported))
    conflict = _conflict_of(outcome, command)
    if conflict is not None:
        raise conflict
    _count_new(outcome)
    return outcome


def send_packages(
    context: ServiceContext, items: Sequence[SendPackage | InvalidPackage]
) -> list[BatchItemOutcome]:
    """Send many packages in one transaction: per item, what its single send would do.

    ``items`` are the parsed sends, or the validation failures of those that are
    invalid (each counted under ``invalid`` in the same transaction). The whole
    batch is one write of the send path's group commit, so it costs one commit
    however many packages it holds. Items run in package id order (the first
    in the request first among repeats): two batches racing on the same ids
    then take their rows in the same order and can't deadlock on PostgreSQL.
    Every item is ``_process_once``, as a single send, so repeats inside the
    batch, other batches and single sends all meet at the primary key.
    """
    commands = [(i, item) for i, item in enumerate(items) if isinstance(item, SendPackage)]
    commands.sort(key=lambda pair: pair[1].package_id)
    senders = {command.sender_id for _, command in commands}
    reported = {sender: is_sender_reported(context, sender) for sender in senders}
    invalid = len(items) - len(commands)

    def write(transaction: DriverTransaction) -> list[SendOutcome]:
        if invalid:
            increment_counters(transaction, PackageCounter.__table__, {"dropped:invalid": invalid})
        return [
            _process_once(context, command, reported[command.sender_id], transaction)
            for _, command in commands
        ]

    outcomes = group_commit(context.db, write)
    results: list[BatchItemOutcome | None] = [None] * len(items)
    for (index, command), outcome in zip(commands, outcomes, strict=True):
        conflict = _conflict_of(outcome, command)
        _count_new(outcome)
        results[index] = BatchItemOutcome(
            index, command.package_id, None if conflict else outcome, conflict
        )
    for index, item in enumerate(items):
        if isinstance(item, InvalidPackage):
            metrics.count_package(DROPPED, "invalid", None)
            results[index] = BatchItemOutcome(index, item.package_id, None, item.error)
    return [result for result in results if result is not None]


def lookup_packages(context: ServiceContext, package_ids: Sequence[str]) -> PackageLookup:
    """Which of these packages were received, in the order asked; counts nothing."""
    wanted = list(dict.fromkeys(package_ids))
    with unit_of_work(context.db) as session:
        rows = session.execute(_STORED_PACKAGES, {"package_ids": wanted}).all()
    stored = {row.package_id: PackageRecord.from_row(row) for row in rows}
    return PackageLookup(
        found=[stored[i] for i in package_ids if i in stored],
        missing=[i for i in package_ids if i not in stored],
    )


def _conflict_of(outcome: SendOutcome, command: SendPackage) -> Conflict | None:
    """The 409 of a replay whose fields differ from the first send's, naming each field."""
    if not outcome.replayed:
        return None
    differences = _differences(outcome.package, command)
    if not differences:
        return None
    return Conflict(
        f"package {command.package_id!r} was already sent with different fields", differences
    )


def _count_new(outcome: SendOutcome) -> None:
    if not outcome.replayed:
        package = outcome.package
        metrics.count_package(package.status, package.reason, package.package_type)


def _process_once(
    context: ServiceContext,
    command: SendPackage,
    sender_reported: bool,
    transaction: DriverTransaction,
) -> SendOutcome:
    """Judge, store, count and deliver a new package; or the stored one, when its id is taken."""
    package = _judge(transaction, command, sender_reported)
    # Insert first: a new id (the common case) costs no read of the packages table.
    if not insert_ignoring_conflicts(transaction, Package.__table__, package.column_values()):
        # Sent before (or by another process since): the stored one is the first answer.
        stored = transaction.first(_STORED_PACKAGE, {"package_id": command.package_id})
        return SendOutcome(package=PackageRecord.from_row(stored), replayed=True)
    increment_counters(transaction, PackageCounter.__table__, {_counter_name(package): 1})
    if package.status == DELIVERED:
        place_in_inbox(context, transaction, package)
    return SendOutcome(package=package, replayed=False)


@dataclass(frozen=True)
class _Send:
    """One request's send: a write of the group commit that joins the batch's others
    (``group_commit.Joinable``), so that on PostgreSQL a batch's sends cost a few
    statements together instead of a few each."""

    context: ServiceContext
    command: SendPackage
    sender_reported: bool

    def __call__(self, transaction: DriverTransaction) -> SendOutcome:
        return _process_once(self.context, self.command, self.sender_reported, transaction)

    @classmethod
    def run_all(cls, transaction: DriverTransaction, writes: Sequence[_Send]) -> list[SendOutcome]:
        return _process_together(transaction, writes)


def _process_together(transaction: DriverTransaction, sends: Sequence[_Send]) -> list[SendOutcome]:
    """``_process_once`` for each send, in order, as one statement per table (PostgreSQL).

    The same answers as one after another: the first send of an id not yet
    stored inserts it; any other (a repeat within the batch, or an id stored
    before) replays the stored package.
    """
    commands = [send.command for send in sends]
    in_force = _preferences_in_force(transaction, commands)
    packages = [
        _judged(send.command, send.sender_reported, verdicts)
        for send, verdicts in zip(sends, in_force, strict=True)
    ]
    first_of: dict[str, int] = {}
    for index, package in enumerate(packages):
        first_of.setdefault(package.package_id, index)
    inserted = transaction.insert_new(
        Package.__table__,
        [packages[index].column_values() for index in first_of.values()],
        key="package_id",
    )
    new = {index for package_id, index in first_of.items() if package_id in inserted}
    replayed = sorted({p.package_id for i, p in enumerate(packages) if i not in new})
    stored: dict[str, PackageRecord] = {}
    if replayed:
        rows = transaction.all(_STORED_PACKAGES_ANY, {"package_ids": replayed})
        stored = {row.package_id: PackageRecord.from_row(row) for row in rows}
    outcomes: list[SendOutcome] = []
    for index, (send, package) in enumerate(zip(sends, packages, strict=True)):
        if index not in new:
            outcomes.append(SendOutcome(package=stored[package.package_id], replayed=True))
            continue
        increment_counters(transaction, PackageCounter.__table__, {_counter_name(package): 1})
        if package.status == DELIVERED:
            place_in_inbox(send.context, transaction, package)
        outcomes.append(SendOutcome(package=package, replayed=False))
    return outcomes


def _preferences_in_force(
    transaction: DriverTransaction, commands: Sequence[SendPackage]
) -> list[dict[str, bool]]:
    """Per send, the verdicts of its recipient's preferences in force at its timestamp:
    one query for the batch's distinct (recipient, timestamp) pairs (PostgreSQL)."""
    pairs = list(dict.fromkeys((c.recipient_id, c.timestamp) for c in commands))
    rows = transaction.all(
        _PREFERENCES_IN_FORCE_OF_PAIRS,
        {"recipient_ids": [r for r, _ in pairs], "ats": [at for _, at in pairs]},
    )
    rows_of: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        rows_of[int(row.pair) - 1].append(row)  # WITH ORDINALITY counts from 1
    verdicts = {pair: _merged(rows_of[i]).allowed for i, pair in enumerate(pairs)}
    return [verdicts[c.recipient_id, c.timestamp] for c in commands]


def record_invalid_package(context: ServiceContext) -> None:
    """Count a send request refused as malformed or invalid; nothing else of it is kept."""
    with driver_transaction(context.db) as transaction:
        increment_counters(transaction, PackageCounter.__table__, {"dropped:invalid": 1})
    metrics.count_package(DROPPED, "invalid", None)


def get_package(context: ServiceContext, package_id: str) -> PackageRecord:
    with unit_of_work(context.db) as session:
        row = session.get(Package, package_id)
        record = None if row is None else PackageRecord.from_row(row)
    # Another principal's package is "not found" too: its existence isn't told.
    if record is None or not access.may_read_package(
        context, record.sender_id, [record.recipient_id]
    ):
        raise NotFound(f"no package {package_id!r}")
    return record


def update_preferences(context: ServiceContext, command: UpdatePreferences) -> Preferences:
    """Record an update; the current preferences are those of the latest timestamp.

    Every distinct update is kept (the history), so packages can be judged by
    the preferences in force at their own timestamp, however late either
    arrives. What is in force is a function of the *set* of updates: an
    identical repeat adds no row (a unique index, also across processes), and
    the updates sharing the latest timestamp are merged, an opt-out winning
    per type (``_merged``). ``applied`` says whether this update's timestamp
    is the current one, i.e. whether it takes part in the current preferences.
    """
    access.require_recipient(context, command.recipient_id)
    with unit_of_work(context.db, write=True) as session:
        insert_ignoring_conflicts(
            session,
            PreferenceUpdate.__table__,
            {
                "recipient_id": command.recipient_id,
                "timestamp": command.timestamp,
                "preferences": preferences_text(command.allowed()),
                "received_at": clock.now(),
            },
        )
        current = _current_preferences(session, command.recipient_id)
        return _preferences_of(
            command.recipient_id, current, applied=current.updated_at == command.timestamp
        )


def get_preferences(context: ServiceContext, recipient_id: str) -> Preferences:
    access.require_recipient(context, recipient_id)
    with unit_of_work(context.db) as session:
        return _preferences_of(recipient_id, _current_preferences(session, recipient_id))


def get_statistics(context: ServiceContext) -> Statistics:
    """Sums of the sharded counters: a handful of rows, however many packages."""
    access.require_admin(context)
    with reading(context.db) as session:
        # On the driver's cursor (as the list pages): Session.execute's execution
        # context and result cost more than the statement, a third of the answer's CPU.
        rows = read_rows(session, _COUNTER_TOTALS, {})
    totals: dict[str, int] = defaultdict(int, {name: int(total) for name, total in rows})
    delivered = {t: totals[f"delivered:{t}"] for t in PACKAGE_TYPES}
    dropped = {r: totals[f"dropped:{r}"] for r in DROP_REASONS}
    # Types or reasons retired from the registries still count in the totals.
    for name, total in totals.items():
        kind, _, key = name.partition(":")
        (delivered if kind == "delivered" else dropped).setdefault(key, total)
    return Statistics(
        packages_delivered=sum(delivered.values()),
        packages_dropped=sum(dropped.values()),
        dropped_by_reason=dropped,
        delivered_by_type=delivered,
    )


def _judge(
    transaction: DriverTransaction, command: SendPackage, sender_reported: bool
) -> PackageRecord:
    """Drop packages of senders reported as spammers (when configured) and packages
    the recipient's preferences in force at the package's timestamp refuse."""
    rows = transaction.all(
        _PREFERENCES_IN_FORCE, {"recipient_id": command.recipient_id, "at": command.timestamp}
    )
    return _judged(command, sender_reported, _merged(rows).allowed)


def _judged(command: SendPackage, sender_reported: bool, allowed: dict[str, bool]) -> PackageRecord:
    """The package as processed, given the verdicts of the preferences in force."""
    allowed_here = allowed.get(command.package_type, True)
    reason = "sender_reported" if sender_reported else (None if allowed_here else "opted_out")
    content = command.content
    return PackageRecord(
        package_id=command.package_id,
        sender_id=command.sender_id,
        recipient_id=command.recipient_id,
        package_type=command.package_type,
        timestamp=command.timestamp,
        content=None if content is None else Content(content.subject, content.body),
        status=DELIVERED if reason is None else DROPPED,
        reason=reason,
        processed_at=clock.now(),
    )


def _differences(stored: PackageRecord, command: SendPackage) -> tuple[FieldError, ...]:
    """The fields of a repeated send that differ from the first send's (compared
    normalised: ids as strings, timestamps as instants)."""
    content = (
        None if command.content is None else Content(command.content.subject, command.content.body)
    )
    pairs = {
        "sender_id": (stored.sender_id, command.sender_id),
        "recipient_id": (stored.recipient_id, command.recipient_id),
        "package_type": (stored.package_type, command.package_type),
        "timestamp": (stored.timestamp, command.timestamp),
        "content": (stored.content, content),
    }
    return tuple(
        FieldError(name, "differs from the first send")
        for name, (first, again) in pairs.items()
        if first != again
    )


def _counter_name(package: PackageRecord) -> str:
    if package.status == DELIVERED:
        return f"delivered:{package.package_type}"
    return f"dropped:{package.reason}"


def _current_preferences(session: Session, recipient_id: str) -> InForce:
    """The merged preferences of the recipient's latest updates."""
    return _merged(session.execute(_CURRENT_PREFERENCES, {"recipient_id": recipient_id}).all())


# Statements built once: building and hashing them again on every call cost
# more than running them (SQLAlchemy caches the compiled form by that hash).
_COUNTER_TOTALS = select(
    PackageCounter.name, func.sum(PackageCounter.value).label("total")
).group_by(PackageCounter.name)
_STORED_PACKAGE = select(*Package.__table__.columns).where(
    Package.package_id == bindparam("package_id")
)
_STORED_PACKAGES = select(*Package.__table__.columns).where(
    Package.package_id.in_(bindparam("package_ids", expanding=True))
)


def _updates_at_latest_timestamp(*conditions: Any) -> Select:
    """The updates (timestamp, JSON text) sharing a recipient's latest timestamp (under
    ``conditions``): together they are the preferences in force."""
    recipient = PreferenceUpdate.recipient_id == bindparam("recipient_id")
    latest = (
        select(func.max(PreferenceUpdate.timestamp)).where(recipient, *conditions).scalar_subquery()
    )
    return select(PreferenceUpdate.timestamp, PreferenceUpdate.preferences).where(
        recipient, PreferenceUpdate.timestamp == latest
    )


_CURRENT_PREFERENCES = _updates_at_latest_timestamp()
# PostgreSQL: the stored packages of many ids, for a batch's replays.
_STORED_PACKAGES_ANY = select(*Package.__table__.columns).where(
    Package.package_id == func.any(bindparam("package_ids", type_=ARRAY(String)))
)
# PostgreSQL: _PREFERENCES_IN_FORCE for many (recipient, timestamp) pairs at once, each
# row numbered by its pair (1 for the first pair of the arrays).
_PREFERENCES_IN_FORCE_OF_PAIRS = (
    text(
        "SELECT asked.pair, updates.timestamp, updates.preferences "
        "FROM unnest(CAST(:recipient_ids AS VARCHAR[]), CAST(:ats AS TIMESTAMP[])) "
        "WITH ORDINALITY AS asked (recipient_id, at, pair) "
        "JOIN preference_updates AS updates ON updates.recipient_id = asked.recipient_id "
        "AND updates.timestamp = ("
        "SELECT max(latest.timestamp) FROM preference_updates AS latest "
        "WHERE latest.recipient_id = asked.recipient_id AND latest.timestamp <= asked.at)"
    )
    .bindparams(
        bindparam("recipient_ids", type_=ARRAY(String)),
        bindparam("ats", type_=ARRAY(UTCDateTime)),
    )
    .columns(pair=BigInteger, timestamp=UTCDateTime, preferences=Text)
)
# In force at a package's timestamp: the latest updates at or before it.
_PREFERENCES_IN_FORCE = _updates_at_latest_timestamp(PreferenceUpdate.timestamp <= bindparam("at"))


@dataclass(frozen=True)
class InForce:
    """Preferences in force: every registered type's verdict, and since when (None: never set)."""

    allowed: dict[str, bool]
    updated_at: datetime | None


def _merged(rows: Sequence[Any]) -> InForce:
    """The updates sharing one timestamp merged: per type, an opt-out wins over an opt-in.

    So the outcome is the same whatever order they arrived in (the spec's
    convergence rule). No rows: every type allowed.
    """
    allowed = dict.fromkeys(PACKAGE_TYPES, True)
    for row in rows:
        for package_type, verdict in json.loads(row.preferences).items():
            allowed[package_type] = allowed.get(package_type, True) and verdict
    return InForce(allowed=allowed, updated_at=rows[0].timestamp if rows else None)


def preferences_text(allowed: dict[str, bool]) -> str:
    """An update's stored form: canonical JSON (as every row has been stored), so
    identical updates are identical rows."""
    return json.dumps(allowed, sort_keys=True)


def _preferences_of(
    recipient_id: str, in_force: InForce, applied: bool | None = None
) -> Preferences:
    return Preferences(
        recipient_id=recipient_id,
        allowed={t: in_force.allowed[t] for t in PACKAGE_TYPES},
        updated_at=in_force.updated_at,
        applied=applied,
    )
