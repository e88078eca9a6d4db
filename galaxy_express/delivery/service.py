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
from functools import partial

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from galaxy_express.core import access, clock, metrics
from galaxy_express.core.context import ServiceContext
from galaxy_express.core.errors import Conflict, NotFound
from galaxy_express.db import (
    DriverTransaction,
    driver_transaction,
    increment_counters,
    insert_ignoring_conflicts,
    unit_of_work,
)
from galaxy_express.db.group_commit import group_commit
from galaxy_express.delivery.commands import SendPackage, UpdatePreferences
from galaxy_express.delivery.models import PackageCounter, PreferenceUpdate
from galaxy_express.delivery.records import Preferences, SendOutcome, Statistics
from galaxy_express.inbox.service import is_sender_reported, place_in_inbox
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
    outcome = group_commit(context.db, partial(_process_once, command, sender_reported))
    if outcome.replayed:
        if not _same_request(outcome.package, command):
            raise Conflict(f"package {command.package_id!r} was already sent with different fields")
    else:
        package = outcome.package
        metrics.count_package(package.status, package.reason, package.package_type)
    return outcome


def _process_once(
    command: SendPackage, sender_reported: bool, transaction: DriverTransaction
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
        place_in_inbox(transaction, package)
    return SendOutcome(package=package, replayed=False)


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
    """Record an update; it becomes current unless a later-stamped one already is.

    Every update is kept (the history), so packages can be judged by the
    preferences in force at their own timestamp, however late either arrives.
    Of two updates with the same timestamp, the one received last wins.
    """
    access.require_recipient(context, command.recipient_id)
    with unit_of_work(context.db, write=True) as session:
        update = PreferenceUpdate(
            recipient_id=command.recipient_id,
            timestamp=command.timestamp,
            preferences=json.dumps(command.allowed(), sort_keys=True),
            received_at=clock.now(),
        )
        session.add(update)
        session.flush()
        current = _latest_update(session, command.recipient_id)
        assert current is not None
        return _preferences_of(command.recipient_id, current, applied=current.id == update.id)


def get_preferences(context: ServiceContext, recipient_id: str) -> Preferences:
    access.require_recipient(context, recipient_id)
    with unit_of_work(context.db) as session:
        return _preferences_of(recipient_id, _latest_update(session, recipient_id))


def get_statistics(context: ServiceContext) -> Statistics:
    """Sums of the sharded counters: a handful of rows, however many packages."""
    access.require_admin(context)
    with unit_of_work(context.db) as session:
        rows = session.execute(_COUNTER_TOTALS).all()
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
    in_force = transaction.first(
        _PREFERENCES_IN_FORCE, {"recipient_id": command.recipient_id, "at": command.timestamp}
    )
    allowed = _allowed_types(None if in_force is None else in_force.preferences)
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


def _same_request(stored: PackageRecord, command: SendPackage) -> bool:
    content = (
        None if command.content is None else Content(command.content.subject, command.content.body)
    )
    return (
        stored.sender_id == command.sender_id
        and stored.recipient_id == command.recipient_id
        and stored.package_type == command.package_type
        and stored.timestamp == command.timestamp
        and stored.content == content
    )


def _counter_name(package: PackageRecord) -> str:
    if package.status == DELIVERED:
        return f"delivered:{package.package_type}"
    return f"dropped:{package.reason}"


def _latest_update(session: Session, recipient_id: str) -> PreferenceUpdate | None:
    return session.execute(_LATEST_UPDATE, {"recipient_id": recipient_id}).scalars().first()


# Statements built once: building and hashing them again on every call cost
# more than running them (SQLAlchemy caches the compiled form by that hash).
_COUNTER_TOTALS = select(PackageCounter.name, func.sum(PackageCounter.value)).group_by(
    PackageCounter.name
)
_LATEST_UPDATE = (
    select(PreferenceUpdate)
    .where(PreferenceUpdate.recipient_id == bindparam("recipient_id"))
    .order_by(PreferenceUpdate.timestamp.desc(), PreferenceUpdate.id.desc())
    .limit(1)
)
_STORED_PACKAGE = select(*Package.__table__.columns).where(
    Package.package_id == bindparam("package_id")
)
# The preferences (JSON text) of the update in force at a package's timestamp.
_PREFERENCES_IN_FORCE = (
    select(PreferenceUpdate.preferences)
    .where(
        PreferenceUpdate.recipient_id == bindparam("recipient_id"),
        PreferenceUpdate.timestamp <= bindparam("at"),
    )
    .order_by(PreferenceUpdate.timestamp.desc(), PreferenceUpdate.id.desc())
    .limit(1)
)


def _allowed_types(preferences: str | None) -> dict[str, bool]:
    """Every registered type's verdict under an update's preferences (all allowed without one)."""
    allowed = dict.fromkeys(PACKAGE_TYPES, True)
    if preferences is not None:
        allowed.update(json.loads(preferences))
    return allowed


def _preferences_of(
    recipient_id: str, update: PreferenceUpdate | None, applied: bool | None = None
) -> Preferences:
    allowed = _allowed_types(None if update is None else update.preferences)
    return Preferences(
        recipient_id=recipient_id,
        allowed={t: allowed[t] for t in PACKAGE_TYPES},
        updated_at=None if update is None else update.timestamp,
        applied=applied,
    )
