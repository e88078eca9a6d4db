"""The webhook's HTTP presentation: the answer's OpenAPI model."""

from __future__ import annotations

from pydantic import BaseModel

from galaxy_express.tasks.schemas import TaskOut


class WebhookOut(BaseModel):
    event: str
    external_id: str
    applied: bool
    duplicate: bool = False
    task: TaskOut | None
