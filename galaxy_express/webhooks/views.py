"""HTTP edge of the task webhooks."""

from __future__ import annotations

from pyramid.request import Request
from pyramid.response import Response

from galaxy_express.core.errors import ServiceError
from galaxy_express.http.web import Api, context_of, json_response, read_json_bytes
from galaxy_express.webhooks import service
from galaxy_express.webhooks.commands import TaskEvent
from galaxy_express.webhooks.schemas import WebhookOut
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
