"""The inbox's service functions: listing, counts, bulk actions, spam reports.

A recipient's mailbox is their rows of ``inbox_entries``. Every query names
the recipient, so no recipient can see, move or delete another's packages:
an id outside the mailbox is "not found", whoever it belongs to.

Every change writes its events (``inbox.changes``) in its own transaction.
A listing and the summary read the mailbox's seq first, in their own unit of
work: on SQLite the unit is one snapshot, so the seq is exactly what they
reflect. On PostgreSQL each statement sees what committed before it began;
every change up to the seq read had committed before that (a seq is given only
once the counter row's previous holder committed), so the later reads reflect
at least all of them, and perhaps a few after. A client following
``changes?since=seq`` replays those again, setting items to what they already
are: nothing is missed, and replaying is harmless.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, bindparam, delete, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from galaxy_express.core import access, clock, metrics
from galaxy_express.core.context import ServiceContext
from galaxy_express.core.errors import NotFound
from galaxy_express.core.pagination import Page, SortKey, fingerprint, paginate, rows_after
from galaxy_express.db import unit_of_work
from galaxy_express.db.driver import read_rows, reading
from galaxy_express.db.unit_of_work import after_commit, in_request_transaction
from galaxy_express.inbox import changes, spam_reports
from galaxy_express.inbox.commands import BulkByFilter, InboxQuery
from galaxy_express.inbox.models import InboxEntry, InboxSequence
from galaxy_express.inbox.records import (
    ChangeKind,
    ChangesPage,
    InboxAction,
    InboxBulkUpdate,
    InboxItem,
    InboxSummary,
    InboxUpdate,
    Seen,
    SpamCountRebuild,
    SpamReportCount,
)
from galaxy_express.packages.models import Package

# Where each moving action puts a package.
_DESTINATION = {
    InboxAction.TRASH: "trash",
    InboxAction.RESTORE: "inbox",
    InboxAction.SPAM: "spam",
}


def list_inbox(context: ServiceContext, recipient_id: str, query: InboxQuery) -> Page[InboxItem]:
    """One page of a folder (``list_inbox_seen`` without its seq)."""
    return list_inbox_seen(context, recipient_id, query).value


def list_inbox_seen(
    context: ServiceContext, recipient_id: str, query: InboxQuery
) -> Seen[Page[InboxItem]]:
    """One page of a folder, newest or oldest first by package timestamp, then package id,
    and the mailbox's seq it reflects at least (see the module).

    Keyset pagination over an index that starts with the query's equality
    filters: a page costs the same at any depth, and packages delivered
    between pages are neither skipped nor repeated.
    """
    access.require_recipient(context, recipient_id)
    filters = {"recipient_id": recipient_id, "folder": query.folder}
    if query.package_type is not None:
        filters["package_type"] = query.package_type
    if query.sender_id is not None:
        filters["sender_id"] = query.sender_id
    statement = _folder_page(query.unread, frozenset(filters))
    entry = InboxEntry.__table__.c
    newest_first = query.order == "newest"

    def read_page(session: Session) -> Page[Any]:
        return paginate(
            session,
            statement,
            [SortKey(entry.timestamp, newest_first), SortKey(entry.package_id, newest_first)],
            key_of=lambda row: (row.timestamp, row.package_id),
            limit=query.limit,
            cursor=query.cursor,
            query_fingerprint=fingerprint(recipient_id=recipient_id, **query.filters()),
            secrets=context.settings.cursor_secrets,
            params=filters,
            read_rows=read_rows,
        )

    with reading(context.db) as session:
        page = read_page(session)
        if page.items:
            # Read by the page's own statement: exactly the seq its rows reflect.
            seq = int(page.items[0].mailbox_seq or 0)
        else:
            # No row to carry it: the seq first, then the page again, so the page
            # reflects at least the seq (on PostgreSQL a later statement may see more).
            seq = changes.current_seq(session, recipient_id)
            page = read_page(session)
        items = [InboxItem.from_row(row) for row in page.items]
    return Seen(Page(items=items, next_cursor=page.next_cursor), seq)


# The mailbox's last seq as a column of its page (NULL before its first change).
_MAILBOX_SEQ = (
    select(InboxSequence.last_seq)
    .where(InboxSequence.recipient_id == bindparam("recipient_id"))
    .scalar_subquery()
    .label("mailbox_seq")
)


@functools.cache
def _folder_page(unread: bool | None, filtered: frozenset[str]) -> Select:
    """A folder's rows, filtered by the named columns' bound values; built once per shape.

    Plain columns, not entities: a page of ORM objects cost more CPU to build
    (and to expire at commit) than the query itself. The table's columns (not
    the model's attributes) make it a Core query: its rows are built once, not
    again by the ORM's loading. Built once, it is not walked for its cache key
    at every request either (``paginate``'s ``params``). Each row also carries
    the mailbox's seq (``mailbox_seq``, read in the same statement: the
    ``Inbox-Seq`` without a second round trip).
    """
    entry, packages = InboxEntry.__table__.c, Package.__table__
    statement = (
        select(entry.folder, entry.read_at, *packages.columns, _MAILBOX_SEQ)
        .join(packages, packages.c.package_id == entry.package_id)
        .where(*(entry[name] == bindparam(name) for name in sorted(filtered)))
    )
    if unread is not None:
        statement = statement.where(
            entry.read_at.is_(None) if unread else entry.read_at.is_not(None)
        )
    return statement


def get_inbox_summary(context: ServiceContext, recipient_id: str) -> InboxSummary:
    """Counts per folder, and unread in the inbox folder (``get_inbox_summary_seen``)."""
    return get_inbox_summary_seen(context, recipient_id).value


def get_inbox_summary_seen(context: ServiceContext, recipient_id: str) -> Seen[InboxSummary]:
    """Counts per folder, and unread in the inbox folder: index-only counts; and the
    mailbox's seq they reflect at least (see the module)."""
    access.require_recipient(context, recipient_id)
    with unit_of_work(context.db) as session:
        seq = changes.current_seq(session, recipient_id)
        by_folder = session.execute(
            select(InboxEntry.folder, func.count())
            .where(InboxEntry.recipient_id == recipient_id)
            .group_by(InboxEntry.folder)
        ).all()
        unread = session.execute(
            select(func.count()).where(
                InboxEntry.recipient_id == recipient_id,
                InboxEntry.folder == "inbox",
                InboxEntry.read_at.is_(None),
            )
        ).scalar_one()
    counts = {folder: int(count) for folder, count in by_folder}
    summary = InboxSummary(
        inbox=counts.get("inbox", 0),
        unread=int(unread),
        trash=counts.get("trash", 0),
        spam=counts.get("spam", 0),
    )
    return Seen(summary, seq)


def update_inbox(
    context: ServiceContext, recipient_id: str, action: InboxAction, package_ids: Sequence[str]
) -> InboxUpdate:
    """Apply ``action`` to the packages of ``recipient_id``'s mailbox among ``package_ids``.

    Ids outside the mailbox (unknown, dropped, deleted, or another recipient's)
    are returned as not found and never touched. An id given twice counts once.
    Each package it changes gets its change event (none for one it leaves as it
    was). ``SPAM`` also reports each sender of the packages found, once per
    recipient; the Redis counts are told after the commit. A report counts only
    when ``access.counts_spam_reports`` says the recipient is authenticated.
    """
    access.require_recipient(context, recipient_id)
    wanted = list(dict.fromkeys(package_ids))
    with unit_of_work(context.db, write=True) as session:
        entries = _lock_entries(session, recipient_id, wanted)
        acted = _act(context, session, recipient_id, action, entries, wanted)
    acted.tell(context)
    return InboxUpdate(
        updated=len(entries),
        not_found=[package_id for package_id in wanted if package_id not in entries],
    )


# Packages a bulk action by filter takes per transaction: each holds the write
# lock (SQLite) or its rows (PostgreSQL) for a few milliseconds only.
BULK_BATCH = 500


def update_inbox_by_filter(
    context: ServiceContext, recipient_id: str, command: BulkByFilter
) -> InboxBulkUpdate:
    """Apply an action to every package of the mailbox matching ``command.filter``
    and delivered at or before ``command.up_to_seq``, never to later arrivals.

    In batches of ``BULK_BATCH`` packages, one transaction each (with their
    change events), walking the mailbox by (timestamp, package id): a package
    the action leaves matching (``read`` of a folder) is not taken again.
    Batches that committed stay when a later one fails; running the same
    request again finishes the job (every action is idempotent). Under an
    Idempotency-Key every batch joins the request's one transaction instead.
    ``updated`` counts the packages that matched, changed or not.
    """
    access.require_recipient(context, recipient_id)
    action = InboxAction(command.action)
    conditions = _filter_conditions(recipient_id, command)
    # Under a key the batches share one transaction, and a seq taken locks the
    # mailbox's counter row until its commit: the events of every batch are written
    # once, after the last (the row is held from there to the commit, not across
    # every batch, where each send to that mailbox would wait for it).
    deferred: list[changes.Change] | None = [] if in_request_transaction(context.db) else None
    after: tuple[datetime, str] | None = None
    updated = 0
    while True:
        with unit_of_work(context.db, write=True) as session:
            page = _matching_page(session, conditions, after, BULK_BATCH)
            # Locked (and the filter checked again) in package id order, as every
            # action takes entries.
            ids = [row.package_id for row in page]
            entries = _lock_entries(session, recipient_id, ids, conditions)
            acted = _act(context, session, recipient_id, action, entries, ids, deferred)
        acted.tell(context)
        updated += len(entries)
        if len(page) < BULK_BATCH:
            break
        after = (page[-1].timestamp, page[-1].package_id)
    if deferred:
        with unit_of_work(context.db, write=True) as session:
            last_seq = changes.write_changes(session, recipient_id, deferred, clock.now())
        _Acted(recipient_id, last_seq, [], 0).tell(context)
    return InboxBulkUpdate(updated=updated)


def delete_from_inbox(context: ServiceContext, recipient_id: str, package_id: str) -> None:
    """Remove one package from the mailbox; ``NotFound`` when it isn't there."""
    outcome = update_inbox(context, recipient_id, InboxAction.DELETE, [package_id])
    if outcome.not_found:
        raise NotFound(f"no package {package_id!r} in the mailbox of {recipient_id!r}")


def read_changes(context: ServiceContext, recipient_id: str, since: int, limit: int) -> ChangesPage:
    """The mailbox's change events after ``since`` (``inbox.changes.read_changes``)."""
    return changes.read_changes(context, recipient_id, since, limit)


def get_spam_report_count(context: ServiceContext, sender_id: str) -> SpamReportCount:
    """How many distinct recipients reported ``sender_id`` as a spammer."""
    access.require_admin(context)
    return SpamReportCount(
        sender_id=sender_id, reporter_count=spam_reports.reporter_count(context, sender_id)
    )


def is_sender_reported(context: ServiceContext, sender_id: str) -> bool:
    """Whether packages from ``sender_id`` are to be dropped (``delivery.spam_drop_threshold``).

    Reads Redis (or the database when Redis is down): call it before opening
    the write transaction, never inside it.
    """
    threshold = context.settings.spam_drop_threshold
    return threshold > 0 and spam_reports.reporter_count(context, sender_id) >= threshold


def rebuild_spam_counts(
    context: ServiceContext, progress: Callable[[int], None] | None = None
) -> SpamCountRebuild:
    """Rebuild every sender's Redis spam count exactly from the stored reports."""
    return spam_reports.rebuild_spam_counts(context, progress)


@dataclass(frozen=True)
class _Locked:
    """A mailbox entry as a transaction locked it."""

    sender_id: str
    folder: str
    read_at: datetime | None


@dataclass(frozen=True)
class _Acted:
    """What a committed action leaves to tell Redis: the wake-up, the spam reports."""

    recipient_id: str
    last_seq: int | None
    reported_senders: list[str]
    new_reports: int

    def tell(self, context: ServiceContext) -> None:
        """Call it once the action's unit of work has ended (its commit)."""
        if self.last_seq is not None:
            changes.publish_after_commit(context, context.db, {self.recipient_id: self.last_seq})
        if self.reported_senders:
            # Inside a request transaction, only once the request commits: a request
            # rolled back leaves no count and no metric of the reports it gave back.
            after_commit(context.db, functools.partial(self._count_reports, context))

    def _count_reports(self, context: ServiceContext) -> None:
        metrics.SPAM_REPORTS.inc(self.new_reports)
        spam_reports.count_reports(context, self.recipient_id, self.reported_senders)


def _lock_entries(
    session: Session,
    recipient_id: str,
    package_ids: list[str],
    conditions: Sequence[ColumnElement[Boolean]] = (),
) -> dict[str, _Locked]:
    """The mailbox's entries among ``package_ids`` (and matching ``conditions``), locked
    (PostgreSQL) in package id order so that what is counted as found is what gets
    changed, and two actions on one mailbox can't wait for each other in a cycle."""
    if not package_ids:
        return {}
    rows = session.execute(
        select(InboxEntry.package_id, InboxEntry.sender_id, InboxEntry.folder, InboxEntry.read_at)
        .where(
            InboxEntry.recipient_id == recipient_id,
            InboxEntry.package_id.in_(package_ids),
            *conditions,
        )
        .order_by(InboxEntry.package_id)
        .with_for_update()
    ).all()
    return {row.package_id: _Locked(row.sender_id, row.folder, row.read_at) for row in rows}


def _act(
    context: ServiceContext,
    session: Session,
    recipient_id: str,
    action: InboxAction,
    entries: dict[str, _Locked],
    order: Sequence[str],
    deferred: list[changes.Change] | None = None,
) -> _Acted:
    """Apply ``action`` to the locked entries, write the spam reports and then the
    events of the entries it changes (in the caller's transaction: the events last,
    so the mailbox's counter row is locked for the shortest time); what to tell after
    the commit. ``order``: the ids as asked, which decides a sender's first reported
    package. ``deferred``: a list to add the events to instead, for the caller to
    write later."""
    now = clock.now()
    changed = _changes_of(action, entries)
    if changed:
        _apply(session, recipient_id, action, [change.package_id for change in changed], now)
    first_package_of: dict[str, str] = {}
    new_reports = 0
    counted = action is InboxAction.SPAM and access.counts_spam_reports(
        context, recipient_id, bool(context.settings.scoped_keys)
    )
    if counted:
        # Every package found reports its sender, also one already in spam.
        for package_id in order:
            if package_id in entries:
                first_package_of.setdefault(entries[package_id].sender_id, package_id)
        new_reports = spam_reports.record_reports(session, recipient_id, first_package_of, now)
    last_seq = None
    if deferred is None:
        last_seq = changes.write_changes(session, recipient_id, changed, now)
    else:
        deferred.extend(changed)
    return _Acted(recipient_id, last_seq, list(first_package_of), new_reports)


def _changes_of(action: InboxAction, entries: dict[str, _Locked]) -> list[changes.Change]:
    """The events of ``action`` on these entries, in package id order: one per entry it
    changes, none for an entry it leaves as it was (read on a read package)."""
    found: list[changes.Change] = []
    for package_id in sorted(entries):
        entry = entries[package_id]
        if action is InboxAction.DELETE:
            found.append(changes.Change(ChangeKind.DELETED, package_id))
        elif action is InboxAction.READ:
            if entry.read_at is None:
                found.append(changes.Change(ChangeKind.READ, package_id))
        elif action is InboxAction.UNREAD:
            if entry.read_at is not None:
                found.append(changes.Change(ChangeKind.UNREAD, package_id))
        elif entry.folder != _DESTINATION[action]:
            found.append(
                changes.Change(ChangeKind.MOVED, package_id, entry.folder, _DESTINATION[action])
            )
    return found


def _filter_conditions(recipient_id: str, command: BulkByFilter) -> list[ColumnElement[Boolean]]:
    entry = InboxEntry
    chosen = command.filter
    conditions = [entry.recipient_id == recipient_id, entry.delivered_seq <= command.up_to_seq]
    if chosen.folder is not None:
        conditions.append(entry.folder == chosen.folder)
    if chosen.unread is not None:
        conditions.append(entry.read_at.is_(None) if chosen.unread else entry.read_at.is_not(None))
    if chosen.package_type is not None:
        conditions.append(entry.package_type == chosen.package_type)
    if chosen.sender_id is not None:
        conditions.append(entry.sender_id == chosen.sender_id)
    return conditions


def _matching_page(
    session: Session,
    conditions: Sequence[ColumnElement[Boolean]],
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Any]:
    """The next ``limit`` matching entries after ``after`` by (timestamp, package id).

    A seek in an index ending in (timestamp, package id) after the filter's
    equality columns (``ix_inbox_entries_walk`` when no folder is given), so
    each batch reads its own rows only, however far into the mailbox it is.
    """
    statement = select(InboxEntry.timestamp, InboxEntry.package_id).where(*conditions)
    return rows_after(session, statement, _WALK_ORDER, after, limit)


_WALK_ORDER = (
    SortKey(InboxEntry.__table__.c.timestamp),
    SortKey(InboxEntry.__table__.c.package_id),
)


def _apply(
    session: Session, recipient_id: str, action: InboxAction, package_ids: list[str], now: datetime
) -> None:
    """Change these entries (each one the action changes)."""
    mine = (InboxEntry.recipient_id == recipient_id, InboxEntry.package_id.in_(package_ids))
    if action is InboxAction.DELETE:
        session.execute(
            delete(InboxEntry).where(*mine).execution_options(synchronize_session=False)
        )
        return
    statement = update(InboxEntry).where(*mine).execution_options(synchronize_session=False)
    if action is InboxAction.READ:
        statement = statement.values(read_at=now)
    elif action is InboxAction.UNREAD:
        statement = statement.values(read_at=None)
    else:
        statement = statement.values(folder=_DESTINATION[action])
    session.execute(statement)
