"""The webhook commands: the external TODO service's event (its own field names) and
the delivery log's filters."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from galaxy_express.core.pagination import PageQuery
from galaxy_express.core.validation import Id, Text, Timestamp


class EventMetadata(BaseModel):
    # The sender owns this payload and may add fields; unknown ones are ignored.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    userId: Id  # noqa: N815 - the external service's name
    id: Id
    content: Text = Field(min_length=1, max_length=200)
    isCompleted: bool  # noqa: N815 - the external service's name


class TaskEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    event: Literal["created", "updated", "deleted"]
    timestamp: Timestamp
    metadata: EventMetadata


class DeliveryQuery(PageQuery):
    """The filters of the delivery log (query string or Thrift fields)."""

    outcome: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        # A slug: nothing a database could refuse (PostgreSQL text holds no NUL).
        pattern=r"^[a-z][a-z_-]*$",
        description="created, updated, deleted, redelivered, stale, task_deleted, "
        "already_applied, repeated_webhook_id, or a problem's slug (not-found, conflict, "
        "unauthorized, invalid-input, malformed-request, payload-too-large, ...)",
    )
    event: Literal["created", "updated", "deleted"] | None = None
    external_id: Id | None = None
