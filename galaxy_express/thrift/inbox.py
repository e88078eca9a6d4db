"""Thrift methods of the inbox domain: parse structs, call the service, build structs."""

from __future__ import annotations

from typing import Any

from galaxy_express.core.context import ServiceContext
from galaxy_express.core.errors import FieldError, InvalidInput
from galaxy_express.core.validation import parse_id_or_invalid, validate
from galaxy_express.inbox import service
from galaxy_express.inbox.commands import (
    BulkByFilter,
    ChangesQuery,
    InboxFilter,
    InboxQuery,
    PackageIds,
)
from galaxy_express.inbox.records import ChangeEvent, InboxAction, InboxItem, InboxSummary
from galaxy_express.packages.records import Content, PackageRecord
from galaxy_express.thrift.delivery import content_struct
from galaxy_express.thrift.edge import set_fields, struct_builder, to_millis
from galaxy_express.thrift.gen import ttypes


class InboxHandler:
    def list_inbox(
        self, context: ServiceContext, request: ttypes.ListInboxRequest
    ) -> ttypes.InboxPage:
        recipient_id = parse_id_or_invalid(request.recipient_id, "recipient_id")
        query = validate(InboxQuery, _given(request, InboxQuery.model_fields))
        seen = service.list_inbox_seen(context, recipient_id, query)
        return ttypes.InboxPage(
            items=[inbox_item_struct(item) for item in seen.value.items],
            next_cursor=seen.value.next_cursor,
            inbox_seq=seen.seq,
        )

    def get_inbox_summary(self, context: ServiceContext, recipient_id: str) -> ttypes.InboxSummary:
        recipient_id = parse_id_or_invalid(recipient_id, "recipient_id")
        seen = service.get_inbox_summary_seen(context, recipient_id)
        summary: ttypes.InboxSummary = _inbox_summary(seen.value, seen.seq)
        return summary

    def update_inbox(
        self, context: ServiceContext, request: ttypes.UpdateInboxRequest
    ) -> ttypes.UpdateInboxResponse:
        recipient_id = parse_id_or_invalid(request.recipient_id, "recipient_id")
        action = _action(request.action)
        command = validate(PackageIds, {"package_ids": request.package_ids})
        outcome = service.update_inbox(context, recipient_id, action, command.package_ids)
        return ttypes.UpdateInboxResponse(updated=outcome.updated, not_found=outcome.not_found)

    def get_inbox_changes(
        self, context: ServiceContext, request: ttypes.GetInboxChangesRequest
    ) -> ttypes.InboxChangesPage:
        recipient_id = parse_id_or_invalid(request.recipient_id, "recipient_id")
        query = validate(ChangesQuery, set_fields(since=request.since, limit=request.limit))
        page = service.read_changes(context, recipient_id, query.since, query.limit)
        return ttypes.InboxChangesPage(
            changes=[change_struct(event) for event in page.changes],
            next_since=page.next_since,
            has_more=page.has_more,
        )

    def update_inbox_by_filter(
        self, context: ServiceContext, request: ttypes.UpdateInboxByFilterRequest
    ) -> ttypes.UpdateInboxByFilterResponse:
        recipient_id = parse_id_or_invalid(request.recipient_id, "recipient_id")
        chosen = request.filter or ttypes.InboxFilter()
        command = validate(
            BulkByFilter,
            set_fields(
                action=_action(request.action).value,
                filter=_given(chosen, InboxFilter.model_fields),
                up_to_seq=request.up_to_seq,
            ),
        )
        outcome = service.update_inbox_by_filter(context, recipient_id, command)
        return ttypes.UpdateInboxByFilterResponse(updated=outcome.updated)

    def get_spam_report_count(
        self, context: ServiceContext, sender_id: str
    ) -> ttypes.SpamReportCount:
        sender_id = parse_id_or_invalid(sender_id, "sender_id")
        count = service.get_spam_report_count(context, sender_id)
        return ttypes.SpamReportCount(
            sender_id=count.sender_id, reporter_count=count.reporter_count
        )


def _given(request: Any, names: Any) -> dict[str, Any]:
    """The struct's fields that were set, so unset ones take the schema's defaults."""
    return {name: getattr(request, name) for name in names if getattr(request, name) is not None}


def _action(value: int | None) -> InboxAction:
    name = ttypes.InboxAction._VALUES_TO_NAMES.get(value) if value is not None else None
    if name is None:
        choices = ", ".join(ttypes.InboxAction._NAMES_TO_VALUES)
        raise InvalidInput(
            "action is not an inbox action", (FieldError("action", f"must be one of {choices}"),)
        )
    return InboxAction(name.lower())


def change_struct(event: ChangeEvent) -> ttypes.InboxChange:
    """HTTP's change event; its ``from`` and ``to`` are ``from_folder`` and ``to_folder``."""
    return ttypes.InboxChange(
        seq=event.seq,
        kind=event.kind.value,
        package_id=event.package_id,
        at=to_millis(event.at),
        item=None if event.item is None else inbox_item_struct(event.item),
        from_folder=event.from_folder,
        to_folder=event.to_folder,
    )


def inbox_item_struct(item: InboxItem) -> ttypes.InboxItem:
    read_at = to_millis(item.read_at)
    struct: ttypes.InboxItem = _inbox_item(item.package, item.folder, item.read, read_at)
    return struct


_inbox_summary = struct_builder(InboxSummary, ttypes.InboxSummary, extra=("inbox_seq",))

# The package's fields, then the mailbox's: one generated call per item of a page.
_inbox_item = struct_builder(
    PackageRecord, ttypes.InboxItem, {Content: content_struct}, ("folder", "is_read", "read_at")
)
