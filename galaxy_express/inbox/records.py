"""What the inbox service hands to its callers (both edges, the shell)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from galaxy_express.core.shapes import record_builder
from galaxy_express.packages.records import PackageColumns, PackageRecord

T = TypeVar("T")


class InboxAction(StrEnum):
    """What a recipient can do to packages of their mailbox (the path's last part)."""

    READ = "read"
    UNREAD = "unread"
    TRASH = "trash"
    RESTORE = "restore"
    SPAM = "spam"
    DELETE = "delete"


class InboxRow(PackageColumns, Protocol):
    """A row of an inbox entry's folder and read_at, and its package's columns."""

    folder: str
    read_at: datetime | None


@dataclass(frozen=True)
class InboxItem:
    package: PackageRecord
    folder: str
    read_at: datetime | None

    @property
    def read(self) -> bool:
        return self.read_at is not None

    @classmethod
    def from_row(cls, row: InboxRow) -> InboxItem:
        """From a row of an entry's folder and read_at and its package's columns."""
        item: InboxItem = _item_from_row(row, PackageRecord.from_row(row))
        return item


# from_row's builder: folder and read_at from the row, the package given.
_item_from_row = record_builder(InboxItem, ("package",))


class ChangeKind(StrEnum):
    """What a change event did to a package of the mailbox."""

    DELIVERED = "delivered"
    READ = "read"
    UNREAD = "unread"
    MOVED = "moved"
    DELETED = "deleted"


@dataclass(frozen=True)
class ChangeEvent:
    """One change of a mailbox, with its per-recipient ``seq`` (strictly increasing).

    ``item`` is the entry as it is when the changes are read (not as it was
    right after this change): null once the package is deleted. Replaying any
    run of events in seq order, each setting its item, so converges on the
    mailbox as it is. ``from_folder``/``to_folder`` are set for ``moved`` only
    (HTTP's ``from`` and ``to``).
    """

    seq: int
    kind: ChangeKind
    package_id: str
    at: datetime
    item: InboxItem | None
    from_folder: str | None = None
    to_folder: str | None = None


@dataclass(frozen=True)
class ChangesPage:
    """Changes after ``since``, oldest first; ``next_since`` is the ``since`` of the next
    read (the last seq here, or ``since`` itself when there was none)."""

    changes: list[ChangeEvent]
    next_since: int
    has_more: bool


@dataclass(frozen=True)
class Seen(Generic[T]):
    """A read of a mailbox and the seq it reflects at least (HTTP's ``Inbox-Seq``)."""

    value: T
    seq: int


@dataclass(frozen=True)
class InboxSummary:
    inbox: int
    # Unread packages in the inbox folder only.
    unread: int
    trash: int
    spam: int


@dataclass(frozen=True)
class InboxUpdate:
    # Distinct ids found in the recipient's mailbox, changed or not.
    updated: int
    # Distinct ids not in the recipient's mailbox, in the order first given.
    not_found: list[str]


@dataclass(frozen=True)
class InboxBulkUpdate:
    # Packages that matched the filter (delivered at or before up_to_seq), changed or not.
    updated: int


@dataclass(frozen=True)
class SpamReportCount:
    sender_id: str
    reporter_count: int


@dataclass(frozen=True)
class SpamCountRebuild:
    """What ``rebuild_spam_counts`` did."""

    senders: int
    reports: int
    # Redis counts of senders with no report in the database, deleted.
    removed: int
