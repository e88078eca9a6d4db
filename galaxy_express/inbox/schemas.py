"""The inbox domain's HTTP presentation: response models for OpenAPI, and their JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from galaxy_express.core.clock import to_rfc3339_or_none
from galaxy_express.core.pagination import Page
from galaxy_express.core.shapes import record_json
from galaxy_express.inbox.commands import Folder
from galaxy_express.inbox.records import InboxItem, InboxSummary, InboxUpdate, SpamReportCount
from galaxy_express.packages.schemas import PackageOut, package_json


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


def inbox_item_json(item: InboxItem) -> dict[str, Any]:
    return {
        **package_json(item.package),
        "folder": item.folder,
        "read": item.read,
        "read_at": to_rfc3339_or_none(item.read_at),
    }


def inbox_page_json(page: Page[InboxItem]) -> dict[str, Any]:
    return {
        "items": [inbox_item_json(item) for item in page.items],
        "next_cursor": page.next_cursor,
    }


def inbox_summary_json(summary: InboxSummary) -> dict[str, Any]:
    return record_json(summary)


def inbox_update_json(update: InboxUpdate) -> dict[str, Any]:
    return record_json(update)


def spam_report_count_json(count: SpamReportCount) -> dict[str, Any]:
    return record_json(count)
