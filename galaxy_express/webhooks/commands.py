"""The webhook command: the external TODO service's event (its own field names)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
