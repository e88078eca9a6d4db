"""What the inbox service hands to its callers (both edges, the shell)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from galaxy_express.packages.records import PackageRecord


class InboxAction(StrEnum):
    """What a recipient can do to packages of their mailbox (the path's last part)."""

    READ = "read"
    UNREAD = "unread"
    TRASH = "trash"
    RESTORE = "restore"
    SPAM = "spam"
    DELETE = "delete"


@dataclass(frozen=True)
class InboxItem:
    package: PackageRecord
    folder: str
    read_at: datetime | None

    @property
    def read(self) -> bool:
        return self.read_at is not None


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
