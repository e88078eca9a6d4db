"""The inbox's service functions: listing, counts, bulk actions, spam reports.

A recipient's mailbox is their rows of ``inbox_entries``. Every query names
the recipient, so no recipient can see, move or delete another's packages:
an id outside the mailbox is "not found", whoever it belongs to.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from galaxy_express.core import access, clock, metrics
from galaxy_express.core.context import ServiceContext
from galaxy_express.core.errors import NotFound
from galaxy_express.core.pagination import Page, SortKey, fingerprint, paginate
from galaxy_express.db import DriverTransaction, unit_of_work
from galaxy_express.inbox import spam_reports
from galaxy_express.inbox.commands import InboxQuery
from galaxy_express.inbox.models import InboxEntry
from galaxy_express.inbox.records import (
    InboxAction,
    InboxItem,
    InboxSummary,
    InboxUpdate,
    SpamCountRebuild,
    SpamReportCount,
)
from galaxy_express.packages.models import Package
from galaxy_express.packages.records import PackageRecord

# Where each moving action puts a package.
_DESTINATION = {
    InboxAction.TRASH: "trash",
    InboxAction.RESTORE: "inbox",
    InboxAction.SPAM: "spam",
}


def place_in_inbox(transaction: DriverTransaction, package: PackageRecord) -> None:
    """Put a just-delivered package in its recipient's inbox (the sender's transaction)."""
    transaction.execute(
        _PLACE_IN_INBOX,
        {
            "package_id": package.package_id,
            "recipient_id": package.recipient_id,
            "sender_id": package.sender_id,
            "package_type": package.package_type,
            "timestamp": package.timestamp,
            "folder": "inbox",
            "read_at": None,
        },
    )


_PLACE_IN_INBOX = insert(InboxEntry.__table__)


def list_inbox(context: ServiceContext, recipient_id: str, query: InboxQuery) -> Page[InboxItem]:
    """One page of a folder, newest or oldest first by package timestamp, then package id.

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
    with unit_of_work(context.db) as session:
        page = paginate(
            session,
            statement,
            [SortKey(entry.timestamp, newest_first), SortKey(entry.package_id, newest_first)],
            key_of=lambda row: (row.timestamp, row.package_id),
            limit=query.limit,
            cursor=query.cursor,
            query_fingerprint=fingerprint(recipient_id=recipient_id, **query.filters()),
            secrets=context.settings.cursor_secrets,
            params=filters,
        )
        items = [
            InboxItem(PackageRecord.from_row(row), row.folder, row.read_at) for row in page.items
        ]
    return Page(items=items, next_cursor=page.next_cursor)


@functools.cache
def _folder_page(unread: bool | None, filtered: frozenset[str]) -> Select:
    """A folder's rows, filtered by the named columns' bound values; built once per shape.

    Plain columns, not entities: a page of ORM objects cost more CPU to build
    (and to expire at commit) than the query itself. The table's columns (not
    the model's attributes) make it a Core query: its rows are built once, not
    again by the ORM's loading. Built once, it is not walked for its cache key
    at every request either (``paginate``'s ``params``).
    """
    entry, packages = InboxEntry.__table__.c, Package.__table__
    statement = (
        select(entry.folder, entry.read_at, *packages.columns)
        .join(packages, packages.c.package_id == entry.package_id)
        .where(*(entry[name] == bindparam(name) for name in sorted(filtered)))
    )
    if unread is not None:
        statement = statement.where(
            entry.read_at.is_(None) if unread else entry.read_at.is_not(None)
        )
    return statement


def get_inbox_summary(context: ServiceContext, recipient_id: str) -> InboxSummary:
    """Counts per folder, and unread in the inbox folder: index-only counts."""
    access.require_recipient(context, recipient_id)
    with unit_of_work(context.db) as session:
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
    return InboxSummary(
        inbox=counts.get("inbox", 0),
        unread=int(unread),
        trash=counts.get("trash", 0),
        spam=counts.get("spam", 0),
    )


def update_inbox(
    context: ServiceContext, recipient_id: str, action: InboxAction, package_ids: Sequence[str]
) -> InboxUpdate:
    """Apply ``action`` to the packages of ``recipient_id``'s mailbox among ``package_ids``.

    Ids outside the mailbox (unknown, dropped, deleted, or another recipient's)
    are returned as not found and never touched. An id given twice counts once.
    ``SPAM`` also reports each sender of the packages found, once per recipient;
    the Redis counts are told after the commit. A report counts only when
    ``access.counts_spam_reports`` says the recipient is authenticated.
    """
    access.require_recipient(context, recipient_id)
    counted = action is InboxAction.SPAM and access.counts_spam_reports(
        context, recipient_id, bool(context.settings.scoped_keys)
    )
    wanted = list(dict.fromkeys(package_ids))
    now = clock.now()
    with unit_of_work(context.db, write=True) as session:
        senders = _lock_entries(session, recipient_id, wanted)
        found = [package_id for package_id in wanted if package_id in senders]
        if found:
            _apply(session, recipient_id, action, found, now)
        first_package_of: dict[str, str] = {}
        new_reports = 0
        if counted:
            for package_id in found:
                first_package_of.setdefault(senders[package_id], package_id)
            new_reports = spam_reports.record_reports(session, recipient_id, first_package_of, now)
    if first_package_of:
        metrics.SPAM_REPORTS.inc(new_reports)
        spam_reports.count_reports(context, recipient_id, first_package_of)
    return InboxUpdate(
        updated=len(found),
        not_found=[package_id for package_id in wanted if package_id not in senders],
    )


def delete_from_inbox(context: ServiceContext, recipient_id: str, package_id: str) -> None:
    """Remove one package from the mailbox; ``NotFound`` when it isn't there."""
    outcome = update_inbox(context, recipient_id, InboxAction.DELETE, [package_id])
    if outcome.not_found:
        raise NotFound(f"no package {package_id!r} in the mailbox of {recipient_id!r}")


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


def _lock_entries(session: Session, recipient_id: str, package_ids: list[str]) -> dict[str, str]:
    """The mailbox's entries among ``package_ids`` (package id -> sender), locked
    (PostgreSQL) so that what is counted as found is what gets changed."""
    if not package_ids:
        return {}
    rows = session.execute(
        select(InboxEntry.package_id, InboxEntry.sender_id)
        .where(InboxEntry.recipient_id == recipient_id, InboxEntry.package_id.in_(package_ids))
        .order_by(InboxEntry.package_id)
        .with_for_update()
    ).all()
    return {row.package_id: row.sender_id for row in rows}


def _apply(
    session: Session, recipient_id: str, action: InboxAction, package_ids: list[str], now: datetime
) -> None:
    mine = (InboxEntry.recipient_id == recipient_id, InboxEntry.package_id.in_(package_ids))
    if action is InboxAction.DELETE:
        session.execute(
            delete(InboxEntry).where(*mine).execution_options(synchronize_session=False)
        )
        return
    statement = update(InboxEntry).where(*mine).execution_options(synchronize_session=False)
    if action is InboxAction.READ:
        # Reading again keeps the first read time.
        statement = statement.where(InboxEntry.read_at.is_(None)).values(read_at=now)
    elif action is InboxAction.UNREAD:
        statement = statement.values(read_at=None)
    else:
        statement = statement.values(folder=_DESTINATION[action])
    session.execute(statement)
