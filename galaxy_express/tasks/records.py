"""What the tasks service hands to its callers (both edges, webhooks, reports)."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy.engine import Row

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
        values = _COLUMNS_OF(row)
        assignees = tuple(sorted(assignee_ids))
        # The fields' values set at once, in field order, as the generated __init__
        # sets them one by one (a frozen dataclass's object.__setattr__ each, half of
        # building a record; a task list page builds 50). It checks nothing more:
        # TaskRecord has no __post_init__ (asserted below).
        record = _new(cls)
        vars(record).update(
            zip(
                _FIELDS,
                (*values[:_ASSIGNEES_AT], assignees, *values[_ASSIGNEES_AT:]),
                strict=True,
            )
        )
        return record


# The record's fields that are columns of the same name (assignees are rows of their own).
COLUMN_FIELDS = tuple(field.name for field in fields(TaskRecord) if field.name != "assignee_ids")
# from_row's: those columns' values in field order (a tuple), and where the assignees go.
_COLUMNS_OF = operator.attrgetter(*COLUMN_FIELDS)
_ASSIGNEES_AT = [field.name for field in fields(TaskRecord)].index("assignee_ids")
_FIELDS = tuple(field.name for field in fields(TaskRecord))
_new = object.__new__
assert not hasattr(TaskRecord, "__post_init__"), "from_row would skip it"
