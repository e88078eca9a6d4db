"""What the tasks service hands to its callers (both edges, webhooks, reports)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

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
        return _from_row(row, tuple(sorted(assignee_ids)))


# The record's fields that are columns of the same name (assignees are rows of their own).
COLUMN_FIELDS = tuple(field.name for field in fields(TaskRecord) if field.name != "assignee_ids")


def _record_builder() -> Callable[[Any, tuple[str, ...]], TaskRecord]:
    """``from_row``'s work as one generated function, made from the field list::

        def from_row(row, assignee_ids):
            record = new(TaskRecord)
            set_attribute(record, "__dict__", {"id": row.id, ..., "assignee_ids": assignee_ids})
            return record

    The fields' values are set at once, as the generated ``__init__`` sets them one
    by one (a frozen dataclass's ``object.__setattr__`` each, half of building a
    record; a task list page builds 50). A dict display with the names written in
    it costs a third less than filling the dict from the names at run time. It
    checks nothing more: TaskRecord has no ``__post_init__`` (asserted below).
    """
    values = ", ".join(
        f"{name!r}: assignee_ids" if name == "assignee_ids" else f"{name!r}: row.{name}"
        for name in (field.name for field in fields(TaskRecord))
    )
    source = (
        "def from_row(row, assignee_ids):\n"
        "    record = new(TaskRecord)\n"
        f"    set_attribute(record, '__dict__', {{{values}}})\n"
        "    return record\n"
    )
    names: dict[str, Any] = {
        "new": object.__new__,
        "set_attribute": object.__setattr__,
        "TaskRecord": TaskRecord,
    }
    exec(compile(source, "<TaskRecord.from_row>", "exec"), names)
    build: Callable[[Any, tuple[str, ...]], TaskRecord] = names["from_row"]
    return build


_from_row = _record_builder()
assert not hasattr(TaskRecord, "__post_init__"), "from_row would skip it"
