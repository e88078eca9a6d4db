"""The reports domain's HTTP presentation: the report's OpenAPI model and its JSON.

The report runner writes the same JSON to its files.
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import BaseModel

from galaxy_express.core.clock import to_rfc3339
from galaxy_express.core.cooperation import Pacer
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
    # Every list's full length, also when it was cut.
    counts: ReportCounts
    # On demand, each list holds at most 1,000 tasks; true when any was cut.
    truncated: bool = False


def encoded_report(report: TaskReport, pace: Pacer | None = None) -> bytes:
    """The report's JSON (UTF-8, compact), encoded a task at a time with ``pace`` between.

    Encoding the whole 0.6 MB of a big report in one ``json.dumps`` held the
    worker for milliseconds; this is the same document, built in pieces.
    """
    pace = pace or Pacer()
    head = {
        "user_id": report.user_id,
        "start": to_rfc3339(report.start),
        "end": to_rfc3339(report.end),
    }
    pieces = [_ENCODER.encode(head)[:-1]]  # "}" closes it below
    for name in CATEGORIES:
        pieces.append(f',"{name}":[')
        for index, task in enumerate(getattr(report, name)):
            if index:
                pieces.append(",")
            pieces.append(_ENCODER.encode(task_json(task)))
            pace()
        pieces.append("]")
    tail = {"counts": report.counts(), "truncated": report.truncated}
    pieces.append("," + _ENCODER.encode(tail)[1:])
    return "".join(pieces).encode()


# Compact, and UTF-8 as it is (as every other answer of the service).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
