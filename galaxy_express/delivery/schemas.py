"""Requests and responses of the delivery domain, and their JSON rendering."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from galaxy_express.clock import to_rfc3339
from galaxy_express.delivery.package_types import PACKAGE_TYPES
from galaxy_express.delivery.records import PackageRecord, Preferences, Statistics
from galaxy_express.validation import Id, RequestModel, Text, Timestamp

PackageType = Literal[PACKAGE_TYPES]  # type: ignore[valid-type]


class ContentIn(RequestModel):
    subject: Text = Field(default="", max_length=200)
    body: Text = Field(default="", max_length=16384)


class SendPackage(RequestModel):
    timestamp: Timestamp
    sender_id: Id
    recipient_id: Id
    package_id: Id
    package_type: PackageType
    content: ContentIn | None = None


class UpdatePreferences(RequestModel):
    timestamp: Timestamp
    recipient_id: Id
    personal_preference: bool
    marketing_preference: bool
    preferences: dict[PackageType, bool] | None = Field(
        default=None, description="Other registered types; a type not named is allowed."
    )

    @model_validator(mode="after")
    def _named_fields_agree(self) -> UpdatePreferences:
        for name, value in (self.preferences or {}).items():
            named = {"personal": self.personal_preference, "marketing": self.marketing_preference}
            if name in named and named[name] != value:
                raise ValueError(f"preferences.{name} disagrees with {name}_preference")
        return self

    def allowed(self) -> dict[str, bool]:
        """The full statement of what the recipient accepts."""
        allowed = dict.fromkeys(PACKAGE_TYPES, True)
        allowed.update(self.preferences or {})
        allowed["personal"] = self.personal_preference
        allowed["marketing"] = self.marketing_preference
        return allowed


# Responses (documented in OpenAPI; rendered by the functions below).


class ContentOut(BaseModel):
    subject: str
    body: str


class PackageOut(BaseModel):
    package_id: str
    sender_id: str
    recipient_id: str
    package_type: str
    timestamp: datetime
    content: ContentOut | None
    status: Literal["delivered", "dropped"]
    reason: str | None
    processed_at: datetime


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


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    # Readiness names each dependency; liveness asks none, so it has neither.
    database: Literal["ok", "unavailable"] | None = None
    redis: Literal["ok", "unavailable"] | None = None


class HealthQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["liveness", "readiness"] = "readiness"


def package_json(package: PackageRecord) -> dict[str, Any]:
    content = package.content
    return {
        "package_id": package.package_id,
        "sender_id": package.sender_id,
        "recipient_id": package.recipient_id,
        "package_type": package.package_type,
        "timestamp": to_rfc3339(package.timestamp),
        "content": None if content is None else {"subject": content.subject, "body": content.body},
        "status": package.status,
        "reason": package.reason,
        "processed_at": to_rfc3339(package.processed_at),
    }


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
