"""What the tasks service hands to its callers (both edges, webhooks, reports)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy.engine import Row

from galaxy_express.core.shapes import record_builder
from galaxy_express.tasks.models import Task


@dataclass(frozen=True)
class TaskRecord:
    id: str
    name: str
    description: str | None
    status: str
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    deleted_at: datetime | None
    assignee_ids: tuple[str, ...]
    external_id: str | None
    owner_id: str | None

    @classmethod
    def from_row(cls, row: Task | Row, assignee_ids: Sequence[str]) -> TaskRecord:
        """From a Task, or a row of the COLUMN_FIELDS columns (no ORM object to build)."""
        return _from_row(row, tuple(sorted(assignee_ids)))


# The record's fields that are columns of the same name (assignees are rows of their own).
COLUMN_FIELDS = tuple(field.name for field in fields(TaskRecord) if field.name != "assignee_ids")


# from_row's builder: the columns from the row, the assignees given.
_from_row = record_builder(TaskRecord, ("assignee_ids",))
