"""The reports domain's HTTP presentation: the report's OpenAPI model and its JSON.

The report runner writes the same JSON to its files.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from galaxy_express.core.clock import to_rfc3339
from galaxy_express.reports.service import CATEGORIES, TaskReport
from galaxy_express.tasks.schemas import TaskOut, task_json


class ReportCounts(BaseModel):
    created: int
    completed: int
    deleted: int
    open: int


class TaskReportOut(BaseModel):
    user_id: str
    start: datetime
    end: datetime
    created: list[TaskOut]
    completed: list[TaskOut]
    deleted: list[TaskOut]
    open: list[TaskOut]
    counts: ReportCounts


def report_json(report: TaskReport) -> dict[str, Any]:
    lists = {name: [task_json(task) for task in getattr(report, name)] for name in CATEGORIES}
    return {
        "user_id": report.user_id,
        "start": to_rfc3339(report.start),
        "end": to_rfc3339(report.end),
        **lists,
        "counts": {name: len(tasks) for name, tasks in lists.items()},
    }
