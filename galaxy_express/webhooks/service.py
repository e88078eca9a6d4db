"""Task events from the external TODO service.

A delivery is verified (when a secret is configured), deduplicated by its
``webhook-id``, parsed, and applied to the task it names, in order: per task,
the task is what its events applied in their order give, whatever order
they arrived in (``ordering``). Every delivery, and
what became of it, is written to the audit log, rejected ones too.

The log is bounded: a refused delivery (any 4xx or 5xx answer, so every one
whose signature failed) keeps its metadata, the SHA-256 and size of its body
and at most the body's first KiB, so refused traffic costs a few hundred
bytes a delivery however large its bodies. Bodies are dropped after
``webhooks.retention_days`` and whole rows after
``webhooks.delivery_retention_days``, in bounded batches (``prune_deliveries``,
run by the reporter's loop).

An operator may replay a logged delivery (``webhooks.deliveries.replay``): its
stored body goes through the same steps as a new, audited delivery with
``replay_of`` set, but without the signature check (it passed, or wasn't asked
for, when the body arrived), the freshness window or the ``webhook-id`` dedupe.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from galaxy_express.core import clock, metrics
from galaxy_express.core.context import ServiceContext
from galaxy_express.core.errors import Conflict, NotFound, ServiceError
from galaxy_express.core.validation import parse_json, validate
from galaxy_express.db import insert_ignoring_conflicts, unit_of_work
from galaxy_express.tasks.models import COMPLETED, PENDING, Task
from galaxy_express.tasks.records import TaskRecord
from galaxy_express.tasks.schemas import task_json
from galaxy_express.tasks.service import add_task, records_of, set_event_fields
from galaxy_express.webhooks import ordering, signing
from galaxy_express.webhooks.commands import TaskEvent
from galaxy_express.webhooks.models import (
    ExternalTask,
    SeenWebhookId,
    TaskEventRow,
    WebhookDelivery,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One HTTP delivery as received: the raw body (signatures cover it) and headers."""

    body: bytes
    headers: signing.SignedHeaders
    # The logged delivery this one replays; None for deliveries from the sender.
    replay_of: int | None = None


@dataclass(frozen=True)
class Processed:
    """A delivery once audited: its log row, and its answer or the error it met."""

    delivery_id: int | None
    answer: WebhookOutcome | None = None
    error: ServiceError | None = None


@dataclass(frozen=True)
class WebhookOutcome:
    """What a delivery did: whether it created a task, and the body to answer it with."""

    created: bool
    body: dict[str, Any]
    # The task as the answer shows it (None for an answer replayed to a repeated webhook-id).
    task: TaskRecord | None = None

    @property
    def answered_status(self) -> int:
        # Only for the delivery log, which records what the sender was answered.
        return 201 if self.created else 200


@dataclass
class _Audit:
    received_at: datetime
    webhook_id: str | None
    event: TaskEvent | None = None
    outcome: str = "received"
    detail: str | None = None
    status_code: int = 500
    extra: dict[str, Any] = field(default_factory=dict)


# Outcomes that changed a task: an event logged with one of them is applied already.
APPLIED_OUTCOMES = ("created", "updated", "deleted")
# What a refused delivery keeps of its body.
REFUSED_BODY_PREFIX_BYTES = 1024
# Rows pruned per statement: short transactions that never hold the writer long.
PRUNE_BATCH = 500


def receive_task_event(context: ServiceContext, delivery: Delivery) -> WebhookOutcome:
    """Verify, deduplicate and apply one delivery; audit it whatever happens."""
    processed = process_delivery(context, delivery)
    if processed.error is not None:
        raise processed.error
    assert processed.answer is not None
    return processed.answer


def process_delivery(context: ServiceContext, delivery: Delivery) -> Processed:
    """``receive_task_event``, returning the service error it met instead of raising it."""
    audit = _Audit(received_at=clock.now(), webhook_id=delivery.headers.webhook_id)
    try:
        answer = _receive(context, delivery, audit)
    except ServiceError as exc:
        audit.status_code, audit.outcome, audit.detail = exc.status, exc.slug, exc.detail
        return Processed(_write_audit(context, audit, delivery), error=exc)
    except Exception:
        # A bug must not hide the delivery from the log: audited as the 500 it becomes.
        audit.status_code, audit.outcome = 500, "internal"
        _write_audit(context, audit, delivery)
        raise
    audit.status_code = answer.answered_status
    return Processed(_write_audit(context, audit, delivery), answer=answer)


def audit_unread_delivery(
    context: ServiceContext,
    headers: signing.SignedHeaders,
    error: ServiceError,
    declared_size: int | None,
) -> None:
    """Audit a delivery whose body couldn't be read (too large, not JSON)."""
    audit = _Audit(received_at=clock.now(), webhook_id=headers.webhook_id)
    audit.status_code, audit.outcome, audit.detail = error.status, error.slug, error.detail
    _write_audit(
        context, audit, Delivery(body=b"", headers=headers), unread=True, size=declared_size
    )


def _receive(context: ServiceContext, delivery: Delivery, audit: _Audit) -> WebhookOutcome:
    settings = context.settings
    webhook_id = delivery.headers.webhook_id
    if delivery.replay_of is not None:
        webhook_id = None  # an operator's replay skips the webhook-id dedupe
    elif settings.webhook_secret:
        webhook_id = signing.verify(
            settings.webhook_secret,
            delivery.headers,
            delivery.body,
            now=audit.received_at,
            tolerance_seconds=settings.webhook_tolerance_seconds,
        )
    event = validate(TaskEvent, parse_json(delivery.body))
    audit.event = event
    for attempt in range(2):
        try:
            return _apply_once(context, event, webhook_id, audit, delivery)
        except IntegrityError:
            # A concurrent delivery of the same task or webhook-id committed first;
            # once more, and this time we see what it did.
            if attempt:
                raise
    raise AssertionError("unreachable")


def _apply_once(
    context: ServiceContext,
    event: TaskEvent,
    webhook_id: str | None,
    audit: _Audit,
    delivery: Delivery,
) -> WebhookOutcome:
    with unit_of_work(context.db, write=True) as session:
        if delivery.replay_of is not None:
            replayed = _replay_of_applied_event(session, event, delivery.body)
            if replayed is not None:
                audit.outcome = "already_applied"
                return _answer(session, event, replayed, applied=False)
        if webhook_id is not None:
            seen = session.get(SeenWebhookId, webhook_id)
            if seen is not None:
                audit.outcome = "repeated_webhook_id"
                return WebhookOutcome(False, json.loads(seen.response) | {"duplicate": True})
        answer = _apply(session, event, audit)
        if webhook_id is not None:
            insert_ignoring_conflicts(
                session,
                SeenWebhookId.__table__,
                {
                    "webhook_id": webhook_id,
                    "received_at": audit.received_at,
                    "status_code": answer.answered_status,
                    "response": json.dumps(answer.body),
                },
            )
    metrics.WEBHOOK_DELIVERIES.labels(outcome=audit.outcome).inc()
    return answer


def _apply(session: Session, event: TaskEvent, audit: _Audit) -> WebhookOutcome:
    if event.event == "created":
        return _create(session, event, audit)
    external = session.get(ExternalTask, event.metadata.id, with_for_update=True)
    if external is None:
        raise NotFound(f"no task with external id {event.metadata.id!r}")
    task = session.execute(
        select(Task).where(Task.id == external.task_id).with_for_update()
    ).scalar_one()
    applied = _place_in_order(session, external, task, event)
    if applied:
        audit.outcome = event.event
    elif task.deleted_at is not None:
        # Deleted is final; a later update can't bring the task back.
        audit.outcome = "task_deleted"
    else:
        audit.outcome = "stale"
    return _answer(session, event, task, applied=applied)


def _place_in_order(session: Session, external: ExternalTask, task: Task, event: TaskEvent) -> bool:
    """Keep the event and replay the task from all of its events (``ordering``);
    True when that changed the task."""
    key = {"external_id": external.external_id}
    received = [ordering.OrderedEvent(*row) for row in session.execute(_EVENTS_OF, key)]
    new = ordering.ordered(event)
    before = ordering.replay(received)
    after = ordering.replay([*received, new])
    if new not in received:
        insert_ignoring_conflicts(session, TaskEventRow.__table__, key | asdict(new))
    external.last_event_at = max(external.last_event_at, event.timestamp)
    if after == before:
        return False
    set_event_fields(task, **asdict(after))
    return True


_EVENTS_OF = select(
    TaskEventRow.timestamp, TaskEventRow.rank, TaskEventRow.is_completed, TaskEventRow.content
).where(TaskEventRow.external_id == bindparam("external_id"))


def _create(session: Session, event: TaskEvent, audit: _Audit) -> WebhookOutcome:
    fingerprint = _fingerprint(event)
    external = session.get(ExternalTask, event.metadata.id)
    if external is not None:
        if external.created_fingerprint != fingerprint:
            raise Conflict(
                f"a different created event for external id {event.metadata.id!r} was applied"
            )
        audit.outcome = "redelivered"
        task = session.execute(select(Task).where(Task.id == external.task_id)).scalar_one()
        return _answer(session, event, task, applied=False)
    status = COMPLETED if event.metadata.isCompleted else PENDING
    task = add_task(
        session,
        {"name": event.metadata.content, "status": status},
        created_at=event.timestamp,
        completed_at=event.timestamp,
        external_id=event.metadata.id,
        owner_id=event.metadata.userId,
    )
    session.add(
        ExternalTask(
            external_id=event.metadata.id,
            task_id=task.id,
            last_event_at=event.timestamp,
            created_fingerprint=fingerprint,
        )
    )
    created = ordering.ordered(event)
    session.add(TaskEventRow(external_id=event.metadata.id, **asdict(created)))
    session.flush()
    audit.outcome = "created"
    return _answer(session, event, task, applied=True, created=True)


def _replay_of_applied_event(session: Session, event: TaskEvent, body: bytes) -> Task | None:
    """The task, when a delivery of these very bytes was applied to it before.

    An event is applied at most once: replaying it again changes nothing, even
    where the per-task order alone would let it through (a replay of the last
    event applied has that event's timestamp).
    """
    applied_before = session.execute(
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.external_id == event.metadata.id,
            WebhookDelivery.body_sha256 == hashlib.sha256(body).hexdigest(),
            WebhookDelivery.outcome.in_(APPLIED_OUTCOMES),
        )
        .limit(1)
    ).first()
    external = session.get(ExternalTask, event.metadata.id)
    if applied_before is None or external is None:
        return None
    return session.execute(select(Task).where(Task.id == external.task_id)).scalar_one()


def _answer(
    session: Session, event: TaskEvent, task: Task, *, applied: bool, created: bool = False
) -> WebhookOutcome:
    session.flush()
    record = records_of(session, [task])[0]
    body = {
        "event": event.event,
        "external_id": event.metadata.id,
        "applied": applied,
        "duplicate": False,
        "task": task_json(record),
    }
    return WebhookOutcome(created, body, record)


def _fingerprint(event: TaskEvent) -> str:
    canonical = json.dumps(
        {"timestamp": event.timestamp.isoformat(), **event.metadata.model_dump()}, sort_keys=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _write_audit(
    context: ServiceContext,
    audit: _Audit,
    delivery: Delivery,
    *,
    unread: bool = False,
    size: int | None = None,
) -> int | None:
    """Write the delivery's row (its id; None when the database is down).

    An ``unread`` body has no digest, only its declared size.
    """
    event = audit.event
    refused = audit.status_code >= 400
    kept = delivery.body[:REFUSED_BODY_PREFIX_BYTES] if refused else delivery.body
    try:
        with unit_of_work(context.db, write=True) as session:
            row = WebhookDelivery(
                received_at=audit.received_at,
                webhook_id=(audit.webhook_id or "")[:256] or None,
                event=None if event is None else event.event,
                external_id=None if event is None else event.metadata.id,
                event_timestamp=None if event is None else event.timestamp,
                status_code=audit.status_code,
                outcome=audit.outcome,
                detail=None if audit.detail is None else audit.detail[:1000],
                body=None if unread else _storable(kept),
                body_sha256=None if unread else hashlib.sha256(delivery.body).hexdigest(),
                body_size=size if unread else len(delivery.body),
                headers=json.dumps(signing.logged_headers(delivery.headers)),
                replay_of=delivery.replay_of,
            )
            session.add(row)
            session.flush()
            return row.id
    except ServiceError:
        # The database is down: the delivery itself failed with it (503) and the
        # sender will retry, so this one attempt is only logged here.
        logger.warning("webhook audit not written: %s %s", audit.outcome, audit.webhook_id)
        return None


def _storable(body: bytes) -> str:
    # Text columns can't hold NUL (PostgreSQL) or invalid UTF-8 (a prefix may
    # cut a character in two; "replace" marks the cut).
    return body.decode("utf-8", "replace").replace("\x00", "\ufffd")


@dataclass(frozen=True)
class Pruned:
    bodies: int
    deliveries: int


def prune_deliveries(context: ServiceContext, *, max_batches: int = 20) -> Pruned:
    """Drop bodies and rows past their retention, at most ``max_batches`` batches of each.

    Bounded so one call never holds the database long; the next call goes on
    where this one stopped (the reporter calls it every cycle).
    """
    settings, now = context.settings, clock.now()
    bodies = deliveries = 0
    if settings.webhook_body_retention_days:
        before = now - timedelta(days=settings.webhook_body_retention_days)
        bodies = _in_batches(
            context,
            max_batches,
            lambda ids: (
                update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(body=None)
            ),
            (WebhookDelivery.received_at < before, WebhookDelivery.body.is_not(None)),
        )
    if settings.webhook_delivery_retention_days:
        before = now - timedelta(days=settings.webhook_delivery_retention_days)
        deliveries = _in_batches(
            context,
            max_batches,
            lambda ids: delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)),
            (WebhookDelivery.received_at < before,),
        )
    return Pruned(bodies=bodies, deliveries=deliveries)


def prune_seen_ids(context: ServiceContext, *, max_batches: int = 20) -> int:
    """Forget webhook-ids received over ``webhooks.seen_ids_retention_days`` ago, at
    most ``max_batches`` batches of ``PRUNE_BATCH``, oldest first; how many went.

    Dedupe stays whole: the retention covers the freshness window (checked at
    start-up), and a signed delivery older than that is refused by its timestamp
    before its id is looked up.
    """
    days = context.settings.webhook_seen_ids_retention_days
    if not days:
        return 0
    before = clock.now() - timedelta(days=days)
    return _in_batches(
        context,
        max_batches,
        lambda ids: delete(SeenWebhookId).where(SeenWebhookId.webhook_id.in_(ids)),
        (SeenWebhookId.received_at < before,),
        key=SeenWebhookId.webhook_id,
        oldest_first=SeenWebhookId.received_at,
    )


def _in_batches(
    context: ServiceContext,
    max_batches: int,
    change: Any,
    where: tuple[Any, ...],
    *,
    key: Any = WebhookDelivery.id,
    oldest_first: Any = WebhookDelivery.id,
) -> int:
    """``change`` the rows matching ``where`` by their ``key``, PRUNE_BATCH at a time
    in ``oldest_first`` order, one transaction each; how many were changed."""
    done = 0
    for _ in range(max_batches):
        with unit_of_work(context.db, write=True) as session:
            ids = list(
                session.execute(
                    select(key).where(*where).order_by(oldest_first).limit(PRUNE_BATCH)
                ).scalars()
            )
            if ids:
                session.execute(change(ids))
        done += len(ids)
        if len(ids) < PRUNE_BATCH:
            break
    return done
