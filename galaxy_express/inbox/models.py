"""Tables of the inbox domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, String
from sqlalchemy.orm import Mapped

from galaxy_express.db import Base, UTCDateTime

FOLDERS: tuple[str, ...] = ("inbox", "trash", "spam")


class InboxEntry(Base):
    """A delivered package in its recipient's mailbox.

    The package's listing fields are copied here so that every inbox query is
    served by one index, whatever the folder, filter and order. Deleting a
    package removes its entry; the package row (and so its id) stays.
    """

    __tablename__ = "inbox_entries"
    __table_args__ = (
        Index("ix_inbox_entries_listing", "recipient_id", "folder", "timestamp", "package_id"),
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
