"""HTTP operations of the delivery domain: parse, call the service, render."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.response import Response

from galaxy_express.core.errors import InvalidInput, MalformedRequest
from galaxy_express.core.validation import parse_id, parse_id_or_invalid, validate
from galaxy_express.delivery import service
from galaxy_express.delivery.commands import (
    LookupPackages,
    PackageBatch,
    SendPackage,
    UpdatePreferences,
)
from galaxy_express.delivery.records import BatchItemOutcome, InvalidPackage
from galaxy_express.delivery.schemas import (
    PackageLookupOut,
    PreferencesOut,
    SendPackagesOut,
    StatisticsOut,
    preferences_json,
    statistics_json,
)
from galaxy_express.http.web import (
    Api,
    body_as,
    context_of,
    encoded_json_response,
    json_response,
    problem_json,
)
from galaxy_express.packages.schemas import PackageOut, package_json, package_json_text

api = Api(tag="delivery")

# A batch holds up to 100 packages, each up to the single send's 64 KiB.
MAX_BATCH_BODY_BYTES = 1024 * 1024


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
        "dropped_by_reason.invalid, but for a reused Idempotency-Key's 422, which changes "
        "nothing. A 409 lists each field that differs from the first send in `errors`."
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
    outcome = service.send_package(context, command)  # 409: `errors` names each differing field
    body = package_json_text(outcome.package).encode()
    if outcome.replayed:
        return encoded_json_response(body, 200, headers={"Idempotent-Replayed": "true"})
    return encoded_json_response(body, 201)


@api.operation(
    "POST",
    "/v1/packages/lookup",
    summary="Look up which packages were received",
    description=(
        "For a sender back from a blackout: 1 to 500 package ids, answered in the order "
        "asked as the records `found` and the ids `missing` (resend only those). "
        "Counts nothing."
    ),
    body=LookupPackages,
    responses={200: PackageLookupOut},
    errors=(400, 413, 422),
)
def lookup_packages(request: Request) -> Response:
    command = body_as(request, LookupPackages)
    lookup = service.lookup_packages(context_of(request), command.package_ids)
    return json_response(
        {"found": [package_json(p) for p in lookup.found], "missing": lookup.missing}
    )


@api.operation(
    "POST",
    "/v1/packages/batch",
    summary="Send up to 100 packages in one request",
    description=(
        "Each item is sent as `POST /v1/packages` would send it, with every rule of a single "
        "send (at most once, replays, 409 conflicts, invalid items counted under "
        "dropped_by_reason.invalid), also when items repeat each other or race other sends. "
        "The answer is 200 with one result per item in request order: `status` is what the "
        "single send would have answered (201, 200, 409 or 422), `package` the record "
        "(201/200), `error` the problem (409/422). The body may be up to 1 MiB; a body that "
        "is not a list of 1 to 100 packages is refused whole (400/422, counting nothing)."
    ),
    body=PackageBatch,
    responses={200: SendPackagesOut},
    errors=(400, 413, 422),
    max_body_bytes=MAX_BATCH_BODY_BYTES,
)
def send_packages(request: Request) -> Response:
    batch = body_as(request, PackageBatch, max_bytes=MAX_BATCH_BODY_BYTES)
    items = [_send_or_invalid(item) for item in batch.packages]
    results = service.send_packages(context_of(request), items)
    return json_response({"results": [_batch_item_json(result) for result in results]})


def _send_or_invalid(item: Any) -> SendPackage | InvalidPackage:
    try:
        return validate(SendPackage, item)
    except InvalidInput as error:
        return InvalidPackage(_package_id_of(item), error)


def _package_id_of(item: Any) -> str | None:
    """An invalid item's package id, when it has a valid one (to say which item it was)."""
    try:
        return parse_id(item["package_id"])
    except (TypeError, KeyError, ValueError):
        return None


def _batch_item_json(result: BatchItemOutcome) -> dict[str, Any]:
    sent = result.sent
    return {
        "index": result.index,
        "package_id": result.package_id,
        "status": result.status,
        "replayed": sent is not None and sent.replayed,
        "package": None if sent is None else package_json(sent.package),
        "error": None if result.error is None else problem_json(result.error),
    }


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
        "(`applied: false`). Packages are judged by the update in force at their own timestamp. "
        "The outcome is a function of the set of updates received: an identical repeat adds "
        "nothing and answers the current state; of different updates with the same timestamp, "
        "per package type an opt-out wins. `applied` says whether the update's timestamp is "
        "the current one."
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
