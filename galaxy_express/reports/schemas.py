"""The reports domain's HTTP presentation: the report's OpenAPI model and its JSON.

The report runner writes the same JSON to its files.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from galaxy_express.core.clock import to_rfc3339
from galaxy_express.reports.service import CATEGORIES, TaskReport, cooperate
from galaxy_express.tasks.records import TaskRecord
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
    # Every list's full length, also when it was cut.
    counts: ReportCounts
    # On demand, each list holds at most 1,000 tasks; true when any was cut.
    truncated: bool = False


def report_json(report: TaskReport) -> dict[str, Any]:
    lists = {name: _rendered(getattr(report, name)) for name in CATEGORIES}
    return {
        "user_id": report.user_id,
        "start": to_rfc3339(report.start),
        "end": to_rfc3339(report.end),
        **lists,
        "counts": report.counts(),
        "truncated": report.truncated,
    }


def _rendered(tasks: list[TaskRecord]) -> list[dict[str, Any]]:
    rendered = []
    for index, task in enumerate(tasks):
        cooperate(index)
        rendered.append(task_json(task))
    return rendered
