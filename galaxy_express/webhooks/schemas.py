"""The webhook's HTTP presentation: the answer's OpenAPI model."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from galaxy_express.core.clock import to_rfc3339
from galaxy_express.core.pagination import Page
from galaxy_express.tasks.schemas import TaskOut, task_json
from galaxy_express.webhooks.records import DeliveryRecord, Replay


class WebhookOut(BaseModel):
    event: str
    external_id: str
    applied: bool
    duplicate: bool = False
    task: TaskOut | None


# ---- The delivery log ----------------------------------------------------------


class DeliveryOut(BaseModel):
    id: int
    received_at: datetime
    webhook_id: str | None
    event: str | None
    external_id: str | None
    status: int = Field(description="the HTTP status the delivery was answered")
    outcome: str
    detail: str | None
    replay_of: int | None = Field(description="the delivery this one replayed")


class DeliveryPageOut(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


class DeliveryDetailOut(DeliveryOut):
    body: str | None = Field(
        description="the raw body as received, as text; a refused delivery keeps its first "
        "KiB, and bodies are dropped after webhooks.retention_days"
    )
    headers: dict[str, str] = Field(
        description='the webhook-* headers; webhook-signature shows as "redacted"'
    )
    body_sha256: str | None = Field(description="of the whole body as received")
    body_size: int | None = Field(description="bytes of the whole body as received")


class ReplayOut(DeliveryDetailOut):
    applied: bool = Field(description="whether the replay changed the task")
    task: TaskOut | None = Field(description="the task as the replay left it")


def delivery_json(delivery: DeliveryRecord) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": delivery.id,
        "received_at": to_rfc3339(delivery.received_at),
        "webhook_id": delivery.webhook_id,
        "event": delivery.event,
        "external_id": delivery.external_id,
        "status": delivery.status,
        "outcome": delivery.outcome,
        "detail": delivery.detail,
        "replay_of": delivery.replay_of,
    }
    if delivery.headers is not None:
        shown |= {
            "body": delivery.body,
            "headers": delivery.headers,
            "body_sha256": delivery.body_sha256,
            "body_size": delivery.body_size,
        }
    return shown


def delivery_page_json(page: Page[DeliveryRecord]) -> dict[str, Any]:
    return {"items": [delivery_json(item) for item in page.items], "next_cursor": page.next_cursor}


def replay_json(replay: Replay) -> dict[str, Any]:
    task = None if replay.task is None else task_json(replay.task)
    return delivery_json(replay.delivery) | {"applied": replay.applied, "task": task}
