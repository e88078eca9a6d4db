"""The inbox domain's commands: the listing query and the bulk actions' ids.

Both edges build these (HTTP from the query string and JSON body, Thrift from
its structs), so a request is validated by the same rules whichever way it came.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from galaxy_express.core.pagination import DEFAULT_LIMIT, MAX_CURSOR_LENGTH, MAX_LIMIT
from galaxy_express.core.validation import Id, QueryModel, RequestModel
from galaxy_express.packages.package_types import PackageType

Folder = Literal["inbox", "trash", "spam"]
MAX_BULK_IDS = 500


class InboxQuery(QueryModel):
    # limit and cursor are PageQuery's, declared here after the filters so that the
    # documented parameters keep their order.
    folder: Folder = "inbox"
    unread: bool | None = Field(
        default=None, description="true: only unread packages; false: only read ones"
    )
    package_type: PackageType | None = None
    sender_id: Id | None = None
    order: Literal["newest", "oldest"] = Field(
        default="newest",
        description="By package timestamp; ties by package_id, in the same direction",
    )
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, min_length=1, max_length=MAX_CURSOR_LENGTH)

    def filters(self) -> dict[str, Any]:
        """What a cursor of this query is bound to (everything but limit and cursor)."""
        return self.model_dump(exclude={"limit", "cursor"})


class PackageIds(RequestModel):
    package_ids: list[Id] = Field(
        min_length=1,
        max_length=MAX_BULK_IDS,
        description="An id given more than once is acted on and counted once.",
    )


class InboxFilter(RequestModel):
    """Which packages a bulk action by filter takes: every field set must match."""

    folder: Folder | None = None
    unread: bool | None = Field(
        default=None, description="true: only unread packages; false: only read ones"
    )
    package_type: PackageType | None = None
    sender_id: Id | None = None


# The largest seq (a signed 64-bit column), and the change feed's page sizes.
MAX_SEQ = 2**63 - 1
DEFAULT_CHANGES_LIMIT = 100
MAX_CHANGES_LIMIT = 500


class BulkByFilter(RequestModel):
    action: Literal["read", "unread", "trash", "restore", "spam", "delete"]
    filter: InboxFilter = Field(
        default_factory=InboxFilter, description="No field set: every folder, every package"
    )
    up_to_seq: int = Field(
        ge=0,
        le=MAX_SEQ,
        description=(
            "The last seq the client saw (Inbox-Seq, or a change's seq): packages delivered "
            "after it are never acted on"
        ),
    )


class ChangesQuery(QueryModel):
    since: int = Field(
        default=0,
        ge=0,
        le=MAX_SEQ,
        description="The last seq the client has (Inbox-Seq, or a page's next_since)",
    )
    limit: int = Field(default=DEFAULT_CHANGES_LIMIT, ge=1, le=MAX_CHANGES_LIMIT)


class EventsQuery(QueryModel):
    """The live stream's start: after ``since`` (the ``Last-Event-ID`` header wins)."""

    since: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SEQ,
        description="Start after this seq (default 0: from the oldest kept change). "
        "A `Last-Event-ID` header, as EventSource sends when it reconnects, wins over it.",
    )


def parse_last_event_id(value: str) -> int:
    """A ``Last-Event-ID`` header's seq; ``ValueError`` saying why when it is none."""
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise ValueError("must be a seq: a whole number 0 or more")
    seq = int(text)
    if seq > MAX_SEQ:
        raise ValueError(f"must be at most {MAX_SEQ}")
    return seq
