"""HTTP edge of the task webhooks."""

from __future__ import annotations

from pyramid.request import Request
from pyramid.response import Response

from galaxy_express.core.errors import ServiceError
from galaxy_express.http.web import Api, context_of, json_response, query_as, read_json_bytes
from galaxy_express.webhooks import deliveries, service
from galaxy_express.webhooks.commands import DeliveryQuery, TaskEvent
from galaxy_express.webhooks.schemas import (
    DeliveryDetailOut,
    DeliveryPageOut,
    ReplayOut,
    WebhookOut,
    delivery_json,
    delivery_page_json,
    replay_json,
)
from galaxy_express.webhooks.signing import SignedHeaders

api = Api(tag="webhooks")


@api.operation(
    "POST",
    "/v1/webhooks/tasks",
    summary="Receive a task event from the external TODO service",
    description=(
        "`created` answers 201 (200 when the same event is delivered again; 409 for a "
        "different `created` of the same external id). `updated` and `deleted` answer 200, "
        "404 for an unknown task. Per task, an event older than the last one applied changes "
        "nothing (`applied: false`). When a signing secret is configured, deliveries need "
        "Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`); "
        "a wrong signature or a timestamp more than 5 minutes off is 401, a `webhook-id` "
        "seen before is answered 200 (`duplicate: true`) without reprocessing. Every "
        "delivery is kept in an audit log with its outcome."
    ),
    body=TaskEvent,
    responses={201: WebhookOut, 200: WebhookOut},
    errors=(400, 401, 404, 409, 413, 422),
)
def receive_task_event(request: Request) -> Response:
    headers = SignedHeaders(
        webhook_id=request.headers.get("webhook-id"),
        timestamp=request.headers.get("webhook-timestamp"),
        signature=request.headers.get("webhook-signature"),
    )
    context = context_of(request)
    try:
        body = read_json_bytes(request)
    except ServiceError as exc:
        service.audit_unread_delivery(context, headers, exc, request.content_length)
        raise
    outcome = service.receive_task_event(context, service.Delivery(body=body, headers=headers))
    return json_response(outcome.body, 201 if outcome.created else 200)


# ---- The delivery log -----------------------------------------------------------

_LOG_ACCESS = (
    " When API keys are configured this needs a key (with the `admin` scope when keys are scoped)."
)


@api.operation(
    "GET",
    "/v1/webhooks/deliveries",
    summary="List logged webhook deliveries",
    description=(
        "Every delivery to `POST /v1/webhooks/tasks` and every replay, newest first (ties by "
        "id, later first), rejected ones too; `status` is the HTTP status it was answered. "
        "Filters: `outcome`, `event`, `external_id`." + _LOG_ACCESS
    ),
    query=DeliveryQuery,
    responses={200: DeliveryPageOut},
    errors=(401, 403, 422),
)
def list_webhook_deliveries(request: Request) -> Response:
    query = query_as(request, DeliveryQuery)
    return json_response(delivery_page_json(deliveries.list_deliveries(context_of(request), query)))


@api.operation(
    "GET",
    "/v1/webhooks/deliveries/{delivery_id}",
    summary="Get one logged webhook delivery",
    description=(
        "The listed fields plus `body` (the raw body as received, as text) and `headers` (the "
        "`webhook-*` headers; `webhook-signature` shows as `redacted`)." + _LOG_ACCESS
    ),
    responses={200: DeliveryDetailOut},
    path_schemas={"delivery_id": deliveries.DELIVERY_ID_SCHEMA},
    errors=(401, 403, 404, 422),
)
def get_webhook_delivery(request: Request) -> Response:
    delivery_id = deliveries.parse_delivery_id(request.matchdict["delivery_id"])
    return json_response(delivery_json(deliveries.get_delivery(context_of(request), delivery_id)))


@api.operation(
    "POST",
    "/v1/webhooks/deliveries/{delivery_id}/replay",
    summary="Replay a logged webhook delivery",
    description=(
        "Processes the stored body again under today's rules, as a new delivery logged with "
        "`replay_of`; answers 200 with that new delivery whatever became of it (its `status` "
        "and `outcome` say, `applied` whether the task changed). A replay skips the signature "
        "check, the `webhook-id` dedupe and the freshness window (the operator asked for it) "
        "but keeps the per-task order: an event applied before changes nothing "
        "(`applied: false`), an `updated` refused with 404 before its `created` arrived now "
        "applies. 409 for a delivery refused for its signature (401) or size (413), whose "
        "body was never verified, and for one whose body wasn't kept whole (a refused "
        "delivery keeps its first KiB; bodies are dropped after `webhooks.retention_days`). "
        "Takes no body." + _LOG_ACCESS
    ),
    responses={200: ReplayOut},
    path_schemas={"delivery_id": deliveries.DELIVERY_ID_SCHEMA},
    errors=(401, 403, 404, 409, 422),
)
def replay_webhook_delivery(request: Request) -> Response:
    delivery_id = deliveries.parse_delivery_id(request.matchdict["delivery_id"])
    return json_response(replay_json(deliveries.replay_delivery(context_of(request), delivery_id)))
