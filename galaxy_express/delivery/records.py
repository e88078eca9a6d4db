"""What the delivery service hands to its callers (both edges)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from galaxy_express.packages.records import PackageRecord


@dataclass(frozen=True)
class SendOutcome:
    package: PackageRecord
    # True when this answer replays the first processing of the package id.
    replayed: bool


@dataclass(frozen=True)
class Preferences:
    recipient_id: str
    allowed: dict[str, bool]
    updated_at: datetime | None
    # Only for an update: whether it became the recipient's current preferences.
    applied: bool | None = None


@dataclass(frozen=True)
class Statistics:
    packages_delivered: int
    packages_dropped: int
    dropped_by_reason: dict[str, int]
    delivered_by_type: dict[str, int]
