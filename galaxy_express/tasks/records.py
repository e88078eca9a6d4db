"""What the tasks service hands to its callers (both edges, webhooks, reports)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

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
    def from_row(cls, row: Task, assignee_ids: Sequence[str]) -> TaskRecord:
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            status=row.status,
            expires_at=row.expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            completed_at=row.completed_at,
            deleted_at=row.deleted_at,
            assignee_ids=tuple(sorted(assignee_ids)),
            external_id=row.external_id,
            owner_id=row.owner_id,
        )
