"""The inbox domain's HTTP presentation: response models for OpenAPI, and their JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any

from pydantic import BaseModel, Field

from galaxy_express.core.clock import to_rfc3339, to_rfc3339_or_none
from galaxy_express.core.pagination import Page
from galaxy_express.core.shapes import (
    json_renderer,
    page_json_text,
    record_json,
)
from galaxy_express.inbox.commands import Folder
from galaxy_express.inbox.records import (
    ChangeEvent,
    ChangeKind,
    ChangesPage,
    InboxBulkUpdate,
    InboxItem,
    InboxSummary,
    InboxUpdate,
    SpamReportCount,
)
from galaxy_express.packages.records import PackageRecord
from galaxy_express.packages.schemas import PackageOut, package_json_text


class InboxItemOut(PackageOut):
    folder: Folder
    read: bool
    read_at: datetime | None


class InboxPageOut(BaseModel):
    items: list[InboxItemOut]
    next_cursor: str | None


class InboxSummaryOut(BaseModel):
    inbox: int
    unread: int = Field(description="Unread packages in the inbox folder")
    trash: int
    spam: int


class InboxUpdateOut(BaseModel):
    updated: int = Field(description="Distinct ids found in this mailbox, changed or not")
    not_found: list[str] = Field(description="Distinct ids not in this mailbox; untouched")


class SpamReportCountOut(BaseModel):
    sender_id: str
    reporter_count: int = Field(description="Distinct recipients who reported the sender")


# package_json's function, called straight: a page renders 50.
_package_json = json_renderer(PackageRecord)


def inbox_item_json(item: InboxItem) -> dict[str, Any]:
    # The package's own dict, added to (a fresh one per call): not copied into another.
    values = _package_json(item.package)
    values["folder"] = item.folder
    values["read"] = item.read
    values["read_at"] = to_rfc3339_or_none(item.read_at)
    return values


def inbox_item_text(item: InboxItem) -> str:
    """``json_text(inbox_item_json(item))``, written directly (a property test holds
    them together): the package's object, its closing brace replaced by the
    mailbox's fields. Encoding those three through the encoder cost more than
    the package's nine written as text."""
    read_at = item.read_at
    mailbox = (
        ',"read":false,"read_at":null}'
        if read_at is None
        else f',"read":true,"read_at":"{to_rfc3339(read_at)}"}}'
    )
    return (
        f'{package_json_text(item.package)[:-1]},"folder":{encode_basestring(item.folder)}{mailbox}'
    )


def inbox_page_text(page: Page[InboxItem]) -> str:
    """A folder's page as JSON text: as text, the page's encoding costs a fraction."""
    return page_json_text(page, inbox_item_text)


def inbox_summary_json(summary: InboxSummary) -> dict[str, Any]:
    return record_json(summary)


def inbox_update_json(update: InboxUpdate) -> dict[str, Any]:
    return record_json(update)


def spam_report_count_json(count: SpamReportCount) -> dict[str, Any]:
    return record_json(count)


class ChangeEventOut(BaseModel):
    seq: int = Field(description="Per recipient, strictly increasing in commit order")
    kind: ChangeKind
    package_id: str
    at: datetime
    item: InboxItemOut | None = Field(
        description=(
            "The entry as it is when the changes are read (not as it was right after this "
            "change); null once the package is deleted"
        )
    )
    from_: Folder | None = Field(alias="from", description="moved: the folder it left")
    to: Folder | None = Field(description="moved: the folder it went to")


class ChangesPageOut(BaseModel):
    changes: list[ChangeEventOut]
    next_since: int = Field(description="The since of the next read: the last seq here")
    has_more: bool


class InboxBulkUpdateOut(BaseModel):
    updated: int = Field(
        description="Packages that matched (delivered at or before up_to_seq), changed or not"
    )


def change_event_json(event: ChangeEvent) -> dict[str, Any]:
    """One change event as HTTP shows it (the changes page, the SSE stream's ``data:``)."""
    return {
        "seq": event.seq,
        "kind": event.kind.value,
        "package_id": event.package_id,
        "at": to_rfc3339(event.at),
        "item": None if event.item is None else inbox_item_json(event.item),
        "from": event.from_folder,
        "to": event.to_folder,
    }


def changes_page_json(page: ChangesPage) -> dict[str, Any]:
    return {
        "changes": [change_event_json(event) for event in page.changes],
        "next_since": page.next_since,
        "has_more": page.has_more,
    }


def inbox_bulk_update_json(update: InboxBulkUpdate) -> dict[str, Any]:
    return record_json(update)


def event_stream_frames(events: Iterable[ChangeEvent]) -> bytes:
    """Change events as Server-Sent Events frames: ``id``, ``event``, one ``data`` line.

    The JSON is on one line (``json.dumps`` escapes newlines inside strings), as
    a ``data:`` field must be.
    """
    return b"".join(
        b"id: %d\nevent: %s\ndata: %s\n\n"
        % (
            event.seq,
            event.kind.value.encode(),
            json.dumps(
                change_event_json(event), separators=(",", ":"), ensure_ascii=False
            ).encode(),
        )
        for event in events
    )
