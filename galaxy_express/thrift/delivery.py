"""Thrift methods of the delivery domain: parse structs, call the service, build structs."""

from __future__ import annotations

from typing import Any

from galaxy_express.core.context import ServiceContext
from galaxy_express.core.errors import InvalidInput
from galaxy_express.core.shapes import field_values
from galaxy_express.core.validation import parse_id_or_invalid, validate
from galaxy_express.delivery import service
from galaxy_express.delivery.commands import SendPackage, UpdatePreferences
from galaxy_express.delivery.records import Preferences
from galaxy_express.packages.records import Content, PackageRecord
from galaxy_express.thrift.edge import thrift_value, to_instant, to_millis
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


def package_fields(package: PackageRecord) -> dict[str, Any]:
    """The package's Thrift fields (shared by Package and InboxItem), from the record's."""
    return field_values(package, _thrift_value)


def _thrift_value(value: Any) -> Any:
    if type(value) is Content:
        return ttypes.Content(**field_values(value, thrift_value))
    return thrift_value(value)


def package_struct(package: PackageRecord) -> ttypes.Package:
    return ttypes.Package(**package_fields(package))


def preferences_struct(preferences: Preferences) -> ttypes.Preferences:
    return ttypes.Preferences(
        recipient_id=preferences.recipient_id,
        preferences=preferences.allowed,
        updated_at=to_millis(preferences.updated_at),
        applied=preferences.applied,
    )
