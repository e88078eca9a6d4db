"""Tables of the tasks domain."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, validates

from galaxy_express.db import Base, UTCDateTime

PENDING = "PENDING"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
STATUSES: tuple[str, ...] = (PENDING, IN_PROGRESS, COMPLETED)

# The expiry sort key of tasks without an expiry: later than any accepted
# expires_at (the latest is 9999-12-31T23:59:59Z), though no_expiry sorts first anyway.
NO_EXPIRY_KEY = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


class Task(Base):
    """A task; deleting it only sets ``deleted_at`` (reports still see it).

    ``seq`` is the order of creation: it breaks ties in every order, and it is
    the primary key because only an integer primary key autoincrements on both
    databases. ``id`` is the public id.
    """

    __tablename__ = "tasks"
    __table_args__ = ({"sqlite_autoincrement": True},)

    seq: Mapped[int] = Column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = Column(String(128), nullable=False, unique=True)
    name: Mapped[str] = Column(String(200), nullable=False)
    description: Mapped[str | None] = Column(Text, nullable=True)
    status: Mapped[str] = Column(String(16), nullable=False)
    expires_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    # Sort keys of the expiry orders, kept in step with expires_at (below): keyset
    # pagination needs keys that are never NULL and compare with < and >, and tasks
    # without an expiry sort last under both directions because no_expiry (1 for
    # them, 0 for the others) comes first.
    no_expiry: Mapped[int] = Column(SmallInteger, nullable=False, default=1)
    expiry_key: Mapped[datetime] = Column(UTCDateTime, nullable=False, default=NO_EXPIRY_KEY)
    created_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    completed_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    # Set for tasks made by the external TODO service (its task id and user id).
    external_id: Mapped[str | None] = Column(String(128), nullable=True, unique=True)
    owner_id: Mapped[str | None] = Column(String(128), nullable=True, index=True)

    @validates("expires_at")
    def _keep_expiry_keys(self, _key: str, value: datetime | None) -> datetime | None:
        self.no_expiry = int(value is None)
        self.expiry_key = NO_EXPIRY_KEY if value is None else value
        return value


# Listing indexes, one per order, over live tasks only (deleted ones are never listed).
_live = Task.deleted_at.is_(None)
Index(
    "ix_tasks_live_created",
    Task.created_at,
    Task.seq,
    sqlite_where=_live,
    postgresql_where=_live,
)
Index(
    "ix_tasks_live_expiry",
    Task.no_expiry,
    Task.expiry_key,
    Task.seq,
    sqlite_where=_live,
    postgresql_where=_live,
)
# -expires_at mixes directions (no_expiry ascending, the rest descending).
Index(
    "ix_tasks_live_expiry_desc",
    Task.no_expiry,
    Task.expiry_key.desc(),
    Task.seq.desc(),
    sqlite_where=_live,
    postgresql_where=_live,
)


class TaskAssignee(Base):
    """A user assigned to a task; goes away with the user."""

    __tablename__ = "task_assignees"
    __table_args__ = (Index("ix_task_assignees_user_id_task_id", "user_id", "task_id"),)

    task_id: Mapped[str] = Column(
        String(128), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = Column(
        String(128), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    assigned_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
