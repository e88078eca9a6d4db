"""The delivery domain's HTTP presentation: response models for OpenAPI, and their JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from galaxy_express.core.clock import to_rfc3339
from galaxy_express.delivery.records import Preferences, Statistics


class PreferencesOut(BaseModel):
    recipient_id: str
    preferences: dict[str, bool]
    updated_at: datetime | None
    applied: bool | None = None


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
