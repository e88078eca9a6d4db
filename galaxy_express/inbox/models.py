"""Tables of the inbox domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped

from galaxy_express.db import Base, UTCDateTime

FOLDERS: tuple[str, ...] = ("inbox", "trash", "spam")

# Every listing index ends in the listing order (timestamp, package_id) after
# the equality filters it serves, so a page is an index seek plus ``limit``
# rows whatever its depth and however selective the filter.
_LISTING_ORDER = ("timestamp", "package_id")
_UNREAD = text("read_at IS NULL")
_READ = text("read_at IS NOT NULL")


class InboxEntry(Base):
    """A delivered package in its recipient's mailbox.

    The package's listing fields are copied here so that every inbox query is
    served by one index, whatever the folder, filter and order. Deleting a
    package removes its entry; the package row (and so its id) stays.
    """

    __tablename__ = "inbox_entries"
    __table_args__ = (
        Index("ix_inbox_entries_listing", "recipient_id", "folder", *_LISTING_ORDER),
        # The unread and read halves of the listing index (together its size):
        # they serve ``unread=true|false`` and the summary's unread count.
        Index(
            "ix_inbox_entries_unread",
            "recipient_id",
            "folder",
            *_LISTING_ORDER,
            sqlite_where=_UNREAD,
            postgresql_where=_UNREAD,
        ),
        Index(
            "ix_inbox_entries_read",
            "recipient_id",
            "folder",
            *_LISTING_ORDER,
            sqlite_where=_READ,
            postgresql_where=_READ,
        ),
        Index("ix_inbox_entries_sender", "recipient_id", "folder", "sender_id", *_LISTING_ORDER),
        Index("ix_inbox_entries_type", "recipient_id", "folder", "package_type", *_LISTING_ORDER),
    )

    package_id: Mapped[str] = Column(
        String(128), ForeignKey("packages.package_id"), primary_key=True
    )
    recipient_id: Mapped[str] = Column(String(128), nullable=False)
    sender_id: Mapped[str] = Column(String(128), nullable=False)
    package_type: Mapped[str] = Column(String(32), nullable=False)
    timestamp: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    folder: Mapped[str] = Column(String(8), nullable=False, default="inbox")
    read_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)


class SpamReport(Base):
    """A recipient reported a sender as a spammer: one row per (sender, recipient).

    The source of truth for the per-sender reporter counts kept in Redis;
    ``rebuild_spam_counts`` rebuilds Redis from these rows. Reporting again
    changes nothing, so the first reported package and time are kept.
    """

    __tablename__ = "spam_reports"

    sender_id: Mapped[str] = Column(String(128), primary_key=True)
    recipient_id: Mapped[str] = Column(String(128), primary_key=True)
    package_id: Mapped[str] = Column(String(128), nullable=False)
    reported_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
