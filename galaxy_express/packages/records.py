"""The package as services hand it on: delivery returns it, the inbox lists it."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Protocol

from galaxy_express.core.shapes import record_builder
from galaxy_express.packages.models import Package


@dataclass(frozen=True)
class Content:
    subject: str
    body: str


class PackageColumns(Protocol):
    """A row of the packages table's columns (a Core row, a driver row)."""

    package_id: str
    sender_id: str
    recipient_id: str
    package_type: str
    timestamp: datetime
    subject: str | None
    body: str | None
    status: str
    reason: str | None
    processed_at: datetime


@dataclass(frozen=True)
class PackageRecord:
    package_id: str
    sender_id: str
    recipient_id: str
    package_type: str
    timestamp: datetime
    content: Content | None
    status: str
    reason: str | None
    processed_at: datetime

    @classmethod
    def from_row(cls, row: Package | PackageColumns) -> PackageRecord:
        subject = row.subject
        content = None if subject is None else Content(subject, row.body or "")
        record: PackageRecord = _from_row(row, content)
        return record

    def column_values(self) -> dict[str, object]:
        """The packages row of this record (``from_row`` read back)."""
        values: dict[str, object] = {name: getattr(self, name) for name in _COLUMN_FIELDS}
        values["subject"] = None if self.content is None else self.content.subject
        values["body"] = None if self.content is None else self.content.body
        return values


# The record's fields that are columns of the same name (content is subject and body).
_COLUMN_FIELDS = tuple(field.name for field in fields(PackageRecord) if field.name != "content")
# from_row's builder: the columns from the row, the content made of two of them.
_from_row = record_builder(PackageRecord, ("content",))
