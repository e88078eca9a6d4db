"""Tables of the inbox domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, String, text
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
        # The whole mailbox in the listing order, whatever the folder: a bulk action
        # by a filter that names no folder walks it in batches.
        Index("ix_inbox_entries_walk", "recipient_id", *_LISTING_ORDER),
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
    # The seq of the entry's ``delivered`` change (0 for entries delivered before
    # migration 0009): the bulk action by filter acts only up to a client's seq.
    delivered_seq: Mapped[int] = Column(BigInteger, nullable=False, default=0, server_default="0")


class InboxSequence(Base):
    """A recipient's change counter: the last seq given, and the last one pruned.

    Taken with an increment-and-return (an upsert ... RETURNING) in the transaction
    that writes the changes, so its row lock is held until that commit: seqs of one
    mailbox commit in their own order (see ``inbox.changes``).
    """

    __tablename__ = "inbox_sequences"

    recipient_id: Mapped[str] = Column(String(128), primary_key=True)
    last_seq: Mapped[int] = Column(BigInteger, nullable=False)
    # Changes up to this seq may have been pruned: a ``since`` below it is 410.
    pruned_through: Mapped[int] = Column(BigInteger, nullable=False, default=0, server_default="0")


class InboxChange(Base):
    """One change of a mailbox (``inbox.changes``), kept ``inbox.changes_retention_days``."""

    __tablename__ = "inbox_changes"
    # Pruning takes the oldest first, whichever mailbox they are in.
    __table_args__ = (Index("ix_inbox_changes_at", "at"),)

    recipient_id: Mapped[str] = Column(String(128), primary_key=True)
    seq: Mapped[int] = Column(BigInteger, primary_key=True, autoincrement=False)
    # delivered, read, unread, moved or deleted
    kind: Mapped[str] = Column(String(16), nullable=False)
    package_id: Mapped[str] = Column(String(128), nullable=False)
    at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    # Set for ``moved`` only.
    from_folder: Mapped[str | None] = Column(String(8), nullable=True)
    to_folder: Mapped[str | None] = Column(String(8), nullable=True)


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
