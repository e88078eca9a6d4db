"""The on-demand report's query and answer."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, field_validator, model_validator

from galaxy_express.core.validation import Id, QueryModel, Timestamp
from galaxy_express.tasks.schemas import TaskOut

# A number as a query string writes it (JSON's number syntax).
# ASCII digits only, matched whole (no final newline).
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
# Long enough for any periodic review; bounds the size of one answer.
MAX_WINDOW = timedelta(days=366)


class ReportQuery(QueryModel):
    user_id: Id
    start: Timestamp
    end: Timestamp

    @field_validator("start", "end", mode="before")
    @classmethod
    def _unix_seconds_from_query(cls, value: Any) -> Any:
        """A query string carries numbers as text: ``1700000000`` is Unix seconds."""
        if isinstance(value, str) and _NUMBER.fullmatch(value):
            return float(value)
        return value

    @model_validator(mode="after")
    def _ordered_and_bounded(self) -> ReportQuery:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > MAX_WINDOW:
            raise ValueError("the window may be at most 366 days long")
        return self


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
