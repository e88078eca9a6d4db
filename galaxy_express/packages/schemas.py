"""The package's HTTP shape: its OpenAPI model and its JSON (delivery and the inbox answer it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from galaxy_express.core.clock import to_rfc3339
from galaxy_express.packages.records import PackageRecord


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
