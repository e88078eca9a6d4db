"""The tasks domain's HTTP presentation: response models for OpenAPI, and their JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from galaxy_express.core.clock import to_rfc3339, to_rfc3339_or_none
from galaxy_express.core.pagination import Page
from galaxy_express.tasks.commands import TaskStatus
from galaxy_express.tasks.records import TaskRecord


class TaskOut(BaseModel):
    id: str
    name: str
    description: str | None
    status: TaskStatus
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    deleted_at: datetime | None
    assignee_ids: list[str]
    external_id: str | None
    owner_id: str | None


class TaskPageOut(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None


def task_json(task: TaskRecord) -> dict[str, Any]:
    """A task as every HTTP answer and every report shows it."""
    return {
        "id": task.id,
        "name": task.name,
        "description": task.description,
        "status": task.status,
        "expires_at": to_rfc3339_or_none(task.expires_at),
        "created_at": to_rfc3339(task.created_at),
        "updated_at": to_rfc3339(task.updated_at),
        "completed_at": to_rfc3339_or_none(task.completed_at),
        "deleted_at": to_rfc3339_or_none(task.deleted_at),
        "assignee_ids": list(task.assignee_ids),
        "external_id": task.external_id,
        "owner_id": task.owner_id,
    }


def task_page_json(page: Page[TaskRecord]) -> dict[str, Any]:
    return {"items": [task_json(task) for task in page.items], "next_cursor": page.next_cursor}
