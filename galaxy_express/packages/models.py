"""The packages table: a package as first processed (delivery writes it, the inbox reads it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String, Text
from sqlalchemy.orm import Mapped

from galaxy_express.db import Base, UTCDateTime


class Package(Base):
    """A package as first processed; its id is taken forever, delivered or not."""

    __tablename__ = "packages"

    package_id: Mapped[str] = Column(String(128), primary_key=True)
    sender_id: Mapped[str] = Column(String(128), nullable=False)
    recipient_id: Mapped[str] = Column(String(128), nullable=False)
    package_type: Mapped[str] = Column(String(32), nullable=False)
    timestamp: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    # Both NULL when the package was sent without content.
    subject: Mapped[str | None] = Column(String(200), nullable=True)
    body: Mapped[str | None] = Column(Text, nullable=True)
    status: Mapped[str] = Column(String(16), nullable=False)
    reason: Mapped[str | None] = Column(String(32), nullable=True)
    processed_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
