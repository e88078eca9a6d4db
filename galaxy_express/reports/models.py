"""Tables of the reports domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Integer, String
from sqlalchemy.orm import Mapped

from galaxy_express.db import Base, UTCDateTime
from galaxy_express.tasks.models import Task

CLAIMED = "claimed"
WRITTEN = "written"


class ReportWindow(Base):
    """One reporting window [start, end) and who writes (or wrote) its files.

    Windows follow each other: the next one starts where the latest one ends,
    so they stay contiguous across restarts and interval changes. Inserting
    the row is the claim (its primary key lets one reporter win); a claim not
    finished within its lease is taken over by another reporter.
    """

    __tablename__ = "report_windows"

    start: Mapped[datetime] = Column(UTCDateTime, primary_key=True)
    end: Mapped[datetime] = Column(UTCDateTime, nullable=False, unique=True)
    status: Mapped[str] = Column(String(16), nullable=False)
    claimed_by: Mapped[str] = Column(String(128), nullable=False)
    claimed_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    written_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    files: Mapped[int | None] = Column(Integer, nullable=True)


# A window's reports find its activity through these (tasks' own indexes cover
# live tasks only, by listing order).
Index("ix_tasks_created_at", Task.created_at)
Index("ix_tasks_completed_at", Task.completed_at)
# Deleted tasks only: a report asks for deletions within a window, which implies
# NOT NULL. Over every task, SQLite without statistics took this index for the
# task list's "deleted_at IS NULL" (a seek matching every live task, then a
# sort) over the listing index: half the page query's time for 50 tasks.
_deleted = Task.deleted_at.is_not(None)
Index("ix_tasks_deleted_at", Task.deleted_at, sqlite_where=_deleted, postgresql_where=_deleted)
