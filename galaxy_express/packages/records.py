"""The package as services hand it on: delivery returns it, the inbox lists it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

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
        content = None if row.subject is None else Content(row.subject, row.body or "")
        return cls(
            package_id=row.package_id,
            sender_id=row.sender_id,
            recipient_id=row.recipient_id,
            package_type=row.package_type,
            timestamp=row.timestamp,
            content=content,
            status=row.status,
            reason=row.reason,
            processed_at=row.processed_at,
        )
