"""The tasks domain's HTTP presentation: response models for OpenAPI, and their JSON."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from galaxy_express.core.pagination import Page
from galaxy_express.core.shapes import json_text_renderer, page_json_text, record_json, shaped_like
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


def task_page_text(page: Page[TaskRecord]) -> str:
    """A page of tasks' JSON text, each task as ``task_json`` shows it (``json_text``
    of it): written as text, a list answer's hottest part costs a third less."""
    return page_json_text(page, _task_text)


_task_text = json_text_renderer(TaskRecord)
