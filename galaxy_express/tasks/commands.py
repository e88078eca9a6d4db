"""The tasks domain's commands: the fields a task is created or changed with, and list queries.

Both edges build these (HTTP from the JSON body and query string, Thrift from
its structs), so a request is validated by the same rules whichever way it came.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, GetJsonSchemaHandler, field_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from galaxy_express.core.pagination import PageQuery
from galaxy_express.core.validation import Id, RequestModel, Text, Timestamp
from galaxy_express.tasks.models import PENDING, STATUSES

NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 16384

TaskStatus = Literal[STATUSES]  # type: ignore[valid-type]
TaskOrder = Literal["-created_at", "created_at", "expires_at", "-expires_at"]


# White space as JSON Schema's regular expressions (ECMA-262) know it. Python's
# str.strip() also strips the information separators U+001C..U+001F, so a name
# of those was refused as blank though the documented schema allowed it.
_WHITE_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
NOT_BLANK_PATTERN = f"[^{_WHITE_SPACE}]"
_NOT_BLANK = re.compile(NOT_BLANK_PATTERN)


def _not_blank(value: str) -> str:
    if not _NOT_BLANK.search(value):
        raise ValueError("must not be blank")
    return value


class _DocumentNotBlank:
    """Say in the JSON schema what ``_not_blank`` refuses."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["pattern"] = NOT_BLANK_PATTERN  # unanchored: contains one such character
        return schema


TaskName = Annotated[
    Text,
    Field(min_length=1, max_length=NAME_MAX_LENGTH),
    AfterValidator(_not_blank),
    _DocumentNotBlank(),
]
Description = Annotated[Text, Field(max_length=DESCRIPTION_MAX_LENGTH)]


class TaskFields(RequestModel):
    """The editable fields, all of them: the body of POST and of PUT (a field left
    out takes its default: no description, PENDING, no expiry)."""

    name: TaskName
    description: Description | None = None
    status: TaskStatus = PENDING
    expires_at: Timestamp | None = None


def _no_default(schema: dict[str, Any]) -> None:
    """Leave the internal "not given" default out of the document: null is not allowed."""
    schema.pop("default", None)


class TaskPatch(RequestModel):
    """PATCH: only the fields given change; null clears description or expires_at."""

    # name and status can't be cleared: a default of None marks them "not given".
    name: TaskName = Field(default=None, json_schema_extra=_no_default)  # type: ignore[assignment]
    description: Description | None = None
    status: TaskStatus = Field(default=None, json_schema_extra=_no_default)
    expires_at: Timestamp | None = None

    @field_validator("name", "status", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class TaskQuery(PageQuery):
    """The query of a task list (GET /v1/users/{user_id}/tasks fixes the assignee)."""

    status: TaskStatus | None = None
    owner_id: Id | None = None
    order: TaskOrder = Field(
        default="-created_at",
        description=(
            "Ties go by creation order (later first under -created_at and -expires_at); "
            "tasks without expires_at come last under both expiry orders"
        ),
    )


class TaskListQuery(TaskQuery):
    assignee_id: Id | None = None
