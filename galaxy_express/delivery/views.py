"""HTTP operations of the delivery domain: parse, call the service, render."""

from __future__ import annotations

from pyramid.request import Request
from pyramid.response import Response

from galaxy_express.core.errors import InvalidInput, MalformedRequest
from galaxy_express.core.validation import parse_id_or_invalid
from galaxy_express.delivery import service
from galaxy_express.delivery.commands import SendPackage, UpdatePreferences
from galaxy_express.delivery.schemas import (
    PreferencesOut,
    StatisticsOut,
    preferences_json,
    statistics_json,
)
from galaxy_express.http.web import Api, body_as, context_of, json_response
from galaxy_express.packages.schemas import PackageOut, package_json

api = Api(tag="delivery")


def _count_invalid_send(request: Request) -> None:
    service.record_invalid_package(context_of(request))


@api.operation(
    "POST",
    "/v1/packages",
    summary="Send a package",
    description=(
        "Idempotent by package_id: a retry with the same fields answers 200 with the first "
        "answer and `Idempotent-Replayed: true`; other fields under a used id answer 409. "
        "Every 400 or 422 answer (a malformed Idempotency-Key too) is counted under "
        "dropped_by_reason.invalid, but for a reused Idempotency-Key's 422, which changes nothing."
    ),
    body=SendPackage,
    responses={201: PackageOut, 200: PackageOut},
    errors=(400, 409, 413, 422),
    on_refusal=_count_invalid_send,
)
def send_package(request: Request) -> Response:
    context = context_of(request)
    try:
        command = body_as(request, SendPackage)
    except (MalformedRequest, InvalidInput):
        _count_invalid_send(request)
        raise
    outcome = service.send_package(context, command)
    if outcome.replayed:
        return json_response(
            package_json(outcome.package), 200, headers={"Idempotent-Replayed": "true"}
        )
    return json_response(package_json(outcome.package), 201)


@api.operation(
    "GET",
    "/v1/packages/{package_id}",
    summary="Get a package record",
    responses={200: PackageOut},
    errors=(404, 422),
)
def get_package(request: Request) -> Response:
    package_id = parse_id_or_invalid(request.matchdict["package_id"], "package_id")
    return json_response(package_json(service.get_package(context_of(request), package_id)))


@api.operation(
    "POST",
    "/v1/preferences",
    summary="Update a recipient's preferences",
    description=(
        "An update older than the one in force is kept in the history but changes nothing "
        "(`applied: false`). Packages are judged by the update in force at their own timestamp."
    ),
    body=UpdatePreferences,
    responses={200: PreferencesOut},
    errors=(400, 413, 422),
)
def update_preferences(request: Request) -> Response:
    command = body_as(request, UpdatePreferences)
    return json_response(preferences_json(service.update_preferences(context_of(request), command)))


@api.operation(
    "GET",
    "/v1/preferences/{recipient_id}",
    summary="Get a recipient's current preferences",
    description="A recipient never seen allows every type (`updated_at: null`).",
    responses={200: PreferencesOut},
    errors=(422,),
)
def get_preferences(request: Request) -> Response:
    recipient_id = parse_id_or_invalid(request.matchdict["recipient_id"], "recipient_id")
    return json_response(
        preferences_json(service.get_preferences(context_of(request), recipient_id))
    )


@api.operation(
    "GET",
    "/v1/stats",
    summary="Delivery statistics",
    description="Exactly what is stored; the cost does not grow with the number of packages.",
    responses={200: StatisticsOut},
)
def get_statistics(request: Request) -> Response:
    return json_response(statistics_json(service.get_statistics(context_of(request))))
