"""Tables of the users domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, String, func
from sqlalchemy.orm import Mapped

from galaxy_express.db import Base, UTCDateTime


class User(Base):
    __tablename__ = "users"
    __table_args__ = (Index("ix_users_created_at_id", "created_at", "id"),)

    id: Mapped[str] = Column(String(128), primary_key=True)
    # As given: the case is kept for display, but a username is taken case-insensitively.
    username: Mapped[str] = Column(String(64), nullable=False)
    created_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)


# The database itself refuses a second "Zap" beside "zap", so two racing
# creations can't both win. Usernames are ASCII (see schemas), so SQLite's and
# PostgreSQL's lower() agree.
Index("uq_users_username_lower", func.lower(User.username), unique=True)
