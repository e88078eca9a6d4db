"""The tasks domain's HTTP presentation: response models for OpenAPI, and their JSON."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from galaxy_express.core.pagination import Page
from galaxy_express.core.shapes import record_json, shaped_like
from galaxy_express.tasks.commands import TaskStatus
from galaxy_express.tasks.records import TaskRecord


@shaped_like(TaskRecord, types={"status": TaskStatus, "assignee_ids": list[str]})
class TaskOut(BaseModel):
    pass


class TaskPageOut(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None


def task_json(task: TaskRecord) -> dict[str, Any]:
    """A task as every HTTP answer and every report shows it."""
    return record_json(task)


def task_page_json(page: Page[TaskRecord]) -> dict[str, Any]:
    return {"items": [task_json(task) for task in page.items], "next_cursor": page.next_cursor}
