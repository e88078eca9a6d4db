"""The webhook delivery log: list it, read one delivery, replay one.

Every delivery ``service`` audits is a row here, newest first. A replay feeds
a logged body to ``service.process_delivery`` again as a new delivery with
``replay_of`` set, so it is audited like any other and keeps the per-task
order; only deliveries whose body was verified (or not asked to be) and kept
whole can be replayed (``Conflict`` otherwise).
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from galaxy_express.core import access
from galaxy_express.core.context import ServiceContext
from galaxy_express.core.errors import Conflict, FieldError, InvalidInput, NotFound
from galaxy_express.core.pagination import Page, SortKey, fingerprint, paginate
from galaxy_express.db import unit_of_work
from galaxy_express.webhooks import service, signing
from galaxy_express.webhooks.commands import DeliveryQuery
from galaxy_express.webhooks.models import WebhookDelivery
from galaxy_express.webhooks.records import DeliveryRecord, Replay

# Refusals that came before the body was trusted: a forged signature, a body too large.
NEVER_VERIFIED_STATUSES = (401, 413)


def list_deliveries(context: ServiceContext, query: DeliveryQuery) -> Page[DeliveryRecord]:
    """Logged deliveries, newest first (ties by id, later first)."""
    access.require_admin(context)
    filters = (
        (WebhookDelivery.outcome, query.outcome),
        (WebhookDelivery.event, query.event),
        (WebhookDelivery.external_id, query.external_id),
    )
    statement = select(WebhookDelivery).where(
        *(column == value for column, value in filters if value is not None)
    )
    order = [
        SortKey(WebhookDelivery.received_at, descending=True),
        SortKey(WebhookDelivery.id, descending=True),
    ]
    with unit_of_work(context.db) as session:
        page = paginate(
            session,
            statement,
            order,
            lambda row: (row.received_at, row.id),
            limit=query.limit,
            cursor=query.cursor,
            query_fingerprint=fingerprint(
                list="webhook_deliveries",
                outcome=query.outcome,
                event=query.event,
                external_id=query.external_id,
            ),
            secrets=context.settings.cursor_secrets,
        )
        return Page([DeliveryRecord.from_row(row) for row in page.items], page.next_cursor)


def get_delivery(context: ServiceContext, delivery_id: int) -> DeliveryRecord:
    """One delivery with its stored body and its headers (signature redacted)."""
    access.require_admin(context)
    with unit_of_work(context.db) as session:
        return DeliveryRecord.from_row(_row(session, delivery_id), whole=True)


def replay_delivery(context: ServiceContext, delivery_id: int) -> Replay:
    """Process a logged delivery's body again, as a new delivery with ``replay_of`` set.

    The answer describes the new delivery whatever became of it (a replayed
    ``updated`` may meet 404 again); ``Conflict`` when the body can't be replayed.
    """
    access.require_admin(context)
    original = get_delivery(context, delivery_id)
    body = _replayable_body(original)
    processed = service.process_delivery(
        context,
        service.Delivery(
            body=body,
            headers=signing.headers_of_log(original.headers or {}),
            replay_of=original.id,
        ),
    )
    if processed.delivery_id is None:
        # The audit couldn't be written: the database went away mid-replay.
        raise processed.error or Conflict("the replay was not recorded; try again")
    answer = processed.answer
    return Replay(
        delivery=get_delivery(context, processed.delivery_id),
        applied=bool(answer and answer.body.get("applied")),
        task=None if answer is None else answer.task,
    )


def _replayable_body(delivery: DeliveryRecord) -> bytes:
    """The delivery's whole raw body, or ``Conflict`` saying why it can't be replayed."""
    if delivery.status in NEVER_VERIFIED_STATUSES:
        raise Conflict(
            f"delivery {delivery.id} was refused ({delivery.status} {delivery.outcome}) before "
            "its body was verified, so it can't be replayed"
        )
    if delivery.body_sha256 is None:
        raise Conflict(
            f"the body of delivery {delivery.id} was never read, so it can't be replayed"
        )
    if delivery.body is None:
        raise Conflict(f"the body of delivery {delivery.id} was pruned (webhooks.retention_days)")
    body = delivery.body.encode()
    if hashlib.sha256(body).hexdigest() != delivery.body_sha256:
        # A refused delivery keeps only its first KiB; a body that wasn't UTF-8 was kept
        # with replacement characters. Either way these are not the bytes received.
        raise Conflict(f"only part of the body of delivery {delivery.id} was kept")
    return body


# At most 18 digits: every such number fits an i64 (Thrift) and a BIGINT.
DELIVERY_ID_DIGITS = 18
# What ``parse_delivery_id`` accepts, as the OpenAPI document says it.
DELIVERY_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": 10**DELIVERY_ID_DIGITS - 1}


def parse_delivery_id(value: object, field: str = "delivery_id") -> int:
    """A delivery id from a path or a Thrift argument: a positive integer, else 422."""
    text = str(value)
    # isdecimal alone would let "١٢" (Arabic-Indic digits) through; ids are ASCII.
    digits = text.isascii() and text.isdecimal() and len(text) <= DELIVERY_ID_DIGITS
    if not (digits and int(text) > 0):
        raise InvalidInput(
            f"{field} is not a delivery id",
            (FieldError(field, "a positive integer (the id a delivery list shows)"),),
        )
    return int(text)


def _row(session: Session, delivery_id: int) -> WebhookDelivery:
    row = session.get(WebhookDelivery, delivery_id)
    if row is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    return row
