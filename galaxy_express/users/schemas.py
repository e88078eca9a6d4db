"""The users domain's HTTP presentation: response models for OpenAPI, and their JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from galaxy_express.core.pagination import Page
from galaxy_express.core.shapes import record_json
from galaxy_express.users.records import UserRecord


class UserOut(BaseModel):
    id: str
    username: str
    created_at: datetime


class UserPageOut(BaseModel):
    items: list[UserOut]
    next_cursor: str | None


def user_json(user: UserRecord) -> dict[str, Any]:
    return record_json(user)


def user_page_json(page: Page[UserRecord]) -> dict[str, Any]:
    return {"items": [user_json(user) for user in page.items], "next_cursor": page.next_cursor}
