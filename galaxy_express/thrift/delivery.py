"""Thrift methods of the delivery domain: parse structs, call the service, build structs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from galaxy_express.core.context import ServiceContext
from galaxy_express.core.errors import FieldError, InvalidInput
from galaxy_express.core.validation import parse_id, parse_id_or_invalid, validate
from galaxy_express.delivery import service
from galaxy_express.delivery.commands import (
    LookupPackages,
    PackageBatch,
    SendPackage,
    UpdatePreferences,
)
from galaxy_express.delivery.records import BatchItemOutcome, InvalidPackage, Preferences
from galaxy_express.packages.records import Content, PackageRecord
from galaxy_express.thrift.edge import set_fields, struct_builder, to_instant, to_millis
from galaxy_express.thrift.gen import ttypes


class DeliveryHandler:
    def send_package(
        self, context: ServiceContext, request: ttypes.SendPackageRequest
    ) -> ttypes.SendPackageResponse:
        try:
            command = validate(SendPackage, _send_package_fields(request))
        except InvalidInput:
            service.record_invalid_package(context)
            raise
        outcome = service.send_package(context, command)
        return ttypes.SendPackageResponse(
            sent_package=package_struct(outcome.package), replayed=outcome.replayed
        )

    def lookup_packages(
        self, context: ServiceContext, request: ttypes.LookupPackagesRequest
    ) -> ttypes.LookupPackagesResponse:
        command = validate(LookupPackages, set_fields(package_ids=request.package_ids))
        lookup = service.lookup_packages(context, command.package_ids)
        return ttypes.LookupPackagesResponse(
            found=[package_struct(p) for p in lookup.found], missing=lookup.missing
        )

    def send_packages(
        self, context: ServiceContext, request: ttypes.SendPackagesRequest
    ) -> ttypes.SendPackagesResponse:
        # The list is checked whole (1 to 100), each item on its own, as over HTTP.
        batch = validate(PackageBatch, set_fields(packages=request.packages))
        items = [_send_or_invalid(item) for item in batch.packages]
        results = service.send_packages(context, items)
        return ttypes.SendPackagesResponse(results=[_batch_result_struct(r) for r in results])

    def get_package(self, context: ServiceContext, package_id: str) -> ttypes.Package:
        package_id = parse_id_or_invalid(package_id, "package_id")
        return package_struct(service.get_package(context, package_id))

    def update_preferences(
        self, context: ServiceContext, request: ttypes.UpdatePreferencesRequest
    ) -> ttypes.Preferences:
        fields = {
            "timestamp": to_instant(request.timestamp, "timestamp"),
            "recipient_id": request.recipient_id,
            "personal_preference": request.personal_preference,
            "marketing_preference": request.marketing_preference,
            "preferences": request.preferences,
        }
        command = validate(UpdatePreferences, fields)
        return preferences_struct(service.update_preferences(context, command))

    def get_preferences(self, context: ServiceContext, recipient_id: str) -> ttypes.Preferences:
        recipient_id = parse_id_or_invalid(recipient_id, "recipient_id")
        return preferences_struct(service.get_preferences(context, recipient_id))

    def get_statistics(self, context: ServiceContext) -> ttypes.Statistics:
        statistics = service.get_statistics(context)
        return ttypes.Statistics(
            packages_delivered=statistics.packages_delivered,
            packages_dropped=statistics.packages_dropped,
            dropped_by_reason=statistics.dropped_by_reason,
            delivered_by_type=statistics.delivered_by_type,
        )


def _send_package_fields(request: ttypes.SendPackageRequest) -> dict[str, Any]:
    content = request.content
    return {
        "timestamp": to_instant(request.timestamp, "timestamp"),
        "sender_id": request.sender_id,
        "recipient_id": request.recipient_id,
        "package_id": request.package_id,
        "package_type": request.package_type,
        "content": None if content is None else {"subject": content.subject, "body": content.body},
    }


def _send_or_invalid(request: Any) -> SendPackage | InvalidPackage:
    if not isinstance(request, ttypes.SendPackageRequest):
        error = InvalidInput("the item is not a send", (FieldError("body", "not a package"),))
        return InvalidPackage(None, error)
    try:
        return validate(SendPackage, _send_package_fields(request))
    except InvalidInput as error:
        return InvalidPackage(_valid_id_or_none(request.package_id), error)


def _valid_id_or_none(value: Any) -> str | None:
    try:
        return parse_id(value)
    except ValueError:
        return None


def _batch_result_struct(result: BatchItemOutcome) -> ttypes.SendPackagesResult:
    sent, error = result.sent, result.error
    return ttypes.SendPackagesResult(
        index=result.index,
        package_id=result.package_id,
        status=result.status,
        replayed=sent is not None and sent.replayed,
        sent_package=None if sent is None else package_struct(sent.package),
        error=None
        if error is None
        else ttypes.ItemProblem(
            code=error.status,
            message=error.detail,
            details={e.field: e.message for e in error.errors},
        ),
    )


# A package as every answer shows it (its content a struct of its own); an inbox item
# is the same fields and its mailbox's (thrift/inbox.py).
content_struct = struct_builder(Content, ttypes.Content)
package_struct: Callable[[PackageRecord], ttypes.Package] = struct_builder(
    PackageRecord, ttypes.Package, {Content: content_struct}
)


def preferences_struct(preferences: Preferences) -> ttypes.Preferences:
    return ttypes.Preferences(
        recipient_id=preferences.recipient_id,
        preferences=preferences.allowed,
        updated_at=to_millis(preferences.updated_at),
        applied=preferences.applied,
    )
