"""Task webhooks as the external TODO service sends them: events, signed deliveries."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import webtest

from galaxy_express.webhooks.signing import sign

SECRET = "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw=="
NOW = datetime(2142, 5, 1, 12, 0, tzinfo=UTC)


def event(kind: str, minute: int, external_id: str = "todo-1", **metadata: Any) -> dict[str, Any]:
    return {
        "event": kind,
        "timestamp": f"2142-05-01T11:{minute:02d}:00Z",
        "metadata": {"userId": "crew-1", "id": external_id, "content": "Fix the airlock"}
        | {"isCompleted": False}
        | metadata,
    }


def deliver(testapp: webtest.TestApp, body: dict[str, Any], **kwargs: Any) -> webtest.TestResponse:
    return testapp.post_json("/v1/webhooks/tasks", body, expect_errors=True, **kwargs)


def signed(
    body: dict[str, Any],
    webhook_id: str,
    sent_at: datetime = NOW,
    tamper: Callable[[bytes], bytes] | None = None,
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    timestamp = int(sent_at.timestamp())
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(SECRET, webhook_id, timestamp, raw),
    }
    return (tamper(raw) if tamper else raw), headers


def post_signed(app: webtest.TestApp, raw: bytes, headers: dict[str, str]) -> webtest.TestResponse:
    return app.post(
        "/v1/webhooks/tasks",
        raw,
        headers=headers,
        content_type="application/json",
        expect_errors=True,
    )
