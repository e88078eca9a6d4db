"""The delivery domain's HTTP presentation: response models for OpenAPI, and their JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from galaxy_express.core.clock import to_rfc3339
from galaxy_express.delivery.records import Preferences, Statistics
from galaxy_express.packages.schemas import PackageOut

# Responses (documented in OpenAPI; rendered by the functions below).


class PreferencesOut(BaseModel):
    recipient_id: str
    preferences: dict[str, bool]
    updated_at: datetime | None
    applied: bool | None = None


class FieldErrorOut(BaseModel):
    field: str
    message: str


class ProblemOut(BaseModel):
    """An item's problem: the problem+json the single send would have answered."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldErrorOut]


class BatchItemOut(BaseModel):
    index: int
    package_id: str | None
    status: Literal[200, 201, 409, 422]
    replayed: bool
    package: PackageOut | None
    error: ProblemOut | None


class SendPackagesOut(BaseModel):
    results: list[BatchItemOut]


class PackageLookupOut(BaseModel):
    found: list[PackageOut]
    missing: list[str]


class StatisticsOut(BaseModel):
    packages_delivered: int
    packages_dropped: int
    dropped_by_reason: dict[str, int]
    delivered_by_type: dict[str, int]


def preferences_json(preferences: Preferences) -> dict[str, Any]:
    body: dict[str, Any] = {
        "recipient_id": preferences.recipient_id,
        "preferences": preferences.allowed,
        "updated_at": None
        if preferences.updated_at is None
        else to_rfc3339(preferences.updated_at),
    }
    if preferences.applied is not None:
        body["applied"] = preferences.applied
    return body


def statistics_json(statistics: Statistics) -> dict[str, Any]:
    return {
        "packages_delivered": statistics.packages_delivered,
        "packages_dropped": statistics.packages_dropped,
        "dropped_by_reason": statistics.dropped_by_reason,
        "delivered_by_type": statistics.delivered_by_type,
    }
