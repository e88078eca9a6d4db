"""What the delivery service hands to its callers (both edges)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from galaxy_express.core.errors import ServiceError
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


@dataclass(frozen=True)
class InvalidPackage:
    """A batch item refused by validation: its package id when it had a valid one."""

    package_id: str | None
    error: ServiceError


@dataclass(frozen=True)
class BatchItemOutcome:
    """One item of a batch send: what its single send would have answered."""

    index: int
    # None for an item too invalid to name one.
    package_id: str | None
    # The send's outcome (201, or 200 replayed); None when ``error`` is set.
    sent: SendOutcome | None
    # The 409 or 422 the single send would have raised.
    error: ServiceError | None

    @property
    def status(self) -> int:
        if self.error is not None:
            return self.error.status
        assert self.sent is not None
        return 200 if self.sent.replayed else 201


@dataclass(frozen=True)
class PackageLookup:
    """Packages asked for, each either found (its record) or missing, in the order asked."""

    found: list[PackageRecord]
    missing: list[str]
