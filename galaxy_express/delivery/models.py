"""Tables of the delivery domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Integer, String, Text
from sqlalchemy.orm import Mapped

from galaxy_express.db import Base, UTCDateTime
from galaxy_express.packages.models import Package

__all__ = ["Package", "PackageCounter", "PreferenceUpdate"]  # Package: where tests and scripts look


class PackageCounter(Base):
    """Statistics, kept in the same transaction as the rows they count.

    Each counter is spread over a few shards (``db.COUNTER_SHARDS``) so that
    concurrent writers rarely touch the same row; reading sums the shards.
    """

    __tablename__ = "package_counters"

    name: Mapped[str] = Column(String(64), primary_key=True)
    shard: Mapped[int] = Column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = Column(BigInteger, nullable=False, default=0)


class PreferenceUpdate(Base):
    """Every distinct preference update received, applied or not (the history).

    An identical repeat (same recipient, timestamp and preferences) is the same
    row: the unique index makes it so whichever process receives it.
    """

    __tablename__ = "preference_updates"
    __table_args__ = (
        Index("ix_preference_updates_recipient_time", "recipient_id", "timestamp", "id"),
        Index(
            "uq_preference_updates_statement",
            "recipient_id",
            "timestamp",
            "preferences",
            unique=True,
        ),
    )

    id: Mapped[int] = Column(Integer, primary_key=True, autoincrement=True)
    recipient_id: Mapped[str] = Column(String(128), nullable=False)
    timestamp: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    # JSON object {package_type: allowed}; a type missing from it is allowed.
    preferences: Mapped[str] = Column(Text, nullable=False)
    received_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
