"""Requests and responses of the users domain, and their JSON rendering."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from galaxy_express.core.clock import to_rfc3339
from galaxy_express.core.pagination import Page
from galaxy_express.core.validation import Id, RequestModel
from galaxy_express.users.records import UserRecord

# ASCII letters, digits and . _ -, starting with a letter or digit: safe in URLs,
# logs and file names, and lowercased the same way by every database.
# The pattern carries the length too, so a reader of the schema (or a generator
# of test data) that looks at the pattern alone still gets it right.
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"
USERNAME_MIN_LENGTH = 3
USERNAME_MAX_LENGTH = 64

Username = Annotated[
    str,
    Field(
        min_length=USERNAME_MIN_LENGTH,
        max_length=USERNAME_MAX_LENGTH,
        pattern=USERNAME_PATTERN,
        description=(
            "3 to 64 ASCII letters, digits and . _ -, starting with a letter or digit; "
            "unique regardless of case"
        ),
    ),
]


class CreateUser(RequestModel):
    username: Username
    id: Id | None = Field(default=None, description="Made by the server (usr_...) when absent")


class UserOut(BaseModel):
    id: str
    username: str
    created_at: datetime


class UserPageOut(BaseModel):
    items: list[UserOut]
    next_cursor: str | None


def user_json(user: UserRecord) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "created_at": to_rfc3339(user.created_at)}


def user_page_json(page: Page[UserRecord]) -> dict[str, Any]:
    return {"items": [user_json(user) for user in page.items], "next_cursor": page.next_cursor}
