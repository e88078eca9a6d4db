"""What the webhook delivery log hands to its callers (both edges, the shell)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime

from galaxy_express.tasks.records import TaskRecord
from galaxy_express.webhooks.models import WebhookDelivery


@dataclass(frozen=True)
class DeliveryRecord:
    """One logged delivery; ``body`` and ``headers`` are read only for a single one."""

    id: int
    received_at: datetime
    webhook_id: str | None
    event: str | None
    external_id: str | None
    status: int
    outcome: str
    detail: str | None
    replay_of: int | None
    body: str | None = None
    headers: dict[str, str] | None = None
    body_sha256: str | None = None
    body_size: int | None = None

    @classmethod
    def from_row(cls, row: WebhookDelivery, *, whole: bool = False) -> DeliveryRecord:
        record = cls(
            id=row.id,
            received_at=row.received_at,
            webhook_id=row.webhook_id,
            event=row.event,
            external_id=row.external_id,
            status=row.status_code,
            outcome=row.outcome,
            detail=row.detail,
            replay_of=row.replay_of,
        )
        if not whole:
            return record
        return replace(
            record,
            body=row.body,
            headers=_headers_of(row),
            body_sha256=row.body_sha256,
            body_size=row.body_size,
        )


@dataclass(frozen=True)
class Replay:
    """A replay: the new delivery's record, whether it changed the task, and the task."""

    delivery: DeliveryRecord
    applied: bool
    task: TaskRecord | None


def _headers_of(row: WebhookDelivery) -> dict[str, str]:
    # Rows from before the log kept headers show what is known: the webhook-id.
    if row.headers is None:
        return {} if row.webhook_id is None else {"webhook-id": row.webhook_id}
    logged = json.loads(row.headers)
    return {str(name): str(value) for name, value in logged.items()}
