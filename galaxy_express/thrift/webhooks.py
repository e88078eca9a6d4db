"""Thrift methods of the webhook delivery log: parse structs, call the service, build structs."""

from __future__ import annotations

from galaxy_express.core.context import ServiceContext
from galaxy_express.core.validation import validate
from galaxy_express.thrift.edge import set_fields, to_millis
from galaxy_express.thrift.gen import ttypes
from galaxy_express.thrift.tasks import task_struct
from galaxy_express.webhooks import deliveries
from galaxy_express.webhooks.commands import DeliveryQuery
from galaxy_express.webhooks.records import DeliveryRecord


class WebhooksHandler:
    def list_webhook_deliveries(
        self, context: ServiceContext, request: ttypes.ListWebhookDeliveriesRequest
    ) -> ttypes.WebhookDeliveryPage:
        fields = set_fields(
            outcome=request.outcome,
            event=request.event,
            external_id=request.external_id,
            limit=request.limit,
            cursor=request.cursor,
        )
        page = deliveries.list_deliveries(context, validate(DeliveryQuery, fields))
        return ttypes.WebhookDeliveryPage(
            items=[delivery_struct(item) for item in page.items], next_cursor=page.next_cursor
        )

    def get_webhook_delivery(
        self, context: ServiceContext, delivery_id: int
    ) -> ttypes.WebhookDelivery:
        delivery_id = deliveries.parse_delivery_id(delivery_id)
        return delivery_struct(deliveries.get_delivery(context, delivery_id))

    def replay_webhook_delivery(
        self, context: ServiceContext, delivery_id: int, idempotency_key: str | None = None
    ) -> ttypes.WebhookDelivery:
        # idempotency_key is answered by the edge (thrift.edge.answer_idempotently).
        replay = deliveries.replay_delivery(context, deliveries.parse_delivery_id(delivery_id))
        struct = delivery_struct(replay.delivery)
        struct.applied = replay.applied
        struct.task = None if replay.task is None else task_struct(replay.task)
        return struct


def delivery_struct(delivery: DeliveryRecord) -> ttypes.WebhookDelivery:
    return ttypes.WebhookDelivery(
        id=delivery.id,
        received_at=to_millis(delivery.received_at),
        webhook_id=delivery.webhook_id,
        event=delivery.event,
        external_id=delivery.external_id,
        status=delivery.status,
        outcome=delivery.outcome,
        detail=delivery.detail,
        replay_of=delivery.replay_of,
        body=delivery.body,
        headers=delivery.headers,
        body_sha256=delivery.body_sha256,
        body_size=delivery.body_size,
    )
