"""Tables of the webhooks domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped

from galaxy_express.db import Base, UTCDateTime


class WebhookDelivery(Base):
    """The audit log: every delivery and its outcome, rejected ones too."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_received_at", "received_at"),
        # The delivery log's filter by task, newest first (GET /v1/webhooks/deliveries).
        Index("ix_webhook_deliveries_external_id", "external_id", "received_at", "id"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    webhook_id: Mapped[str | None] = Column(String(256), nullable=True)
    event: Mapped[str | None] = Column(String(32), nullable=True)
    external_id: Mapped[str | None] = Column(String(128), nullable=True)
    event_timestamp: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    status_code: Mapped[int] = Column(SmallInteger, nullable=False)
    outcome: Mapped[str] = Column(String(32), nullable=False)
    detail: Mapped[str | None] = Column(Text, nullable=True)
    # The body as received (valid UTF-8 only; at most 64 KiB, the body limit) for an
    # accepted delivery, at most its first KiB for a refused one; None once pruned
    # (webhooks.retention_days). Digest and size always describe the whole body.
    body: Mapped[str | None] = Column(Text, nullable=True)
    body_sha256: Mapped[str | None] = Column(String(64), nullable=True)
    body_size: Mapped[int | None] = Column(Integer, nullable=True)
    # The webhook-* headers as JSON, webhook-signature stored as "redacted" only.
    headers: Mapped[str | None] = Column(Text, nullable=True)
    # The delivery this one replayed (POST /v1/webhooks/deliveries/{id}/replay).
    replay_of: Mapped[int | None] = Column(Integer, nullable=True)


class SeenWebhookId(Base):
    """webhook-ids already processed: a repeated id is answered without reprocessing."""

    __tablename__ = "seen_webhook_ids"
    # Pruning goes oldest first (webhooks.seen_ids_retention_days).
    __table_args__ = (Index("ix_seen_webhook_ids_received_at", "received_at"),)

    webhook_id: Mapped[str] = Column(String(256), primary_key=True)
    received_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    status_code: Mapped[int] = Column(SmallInteger, nullable=False)
    # The first answer's JSON, replayed to the repeat.
    response: Mapped[str] = Column(Text, nullable=False)


class ExternalTask(Base):
    """Per external task: the last event applied (for ordering) and its creating event."""

    __tablename__ = "external_tasks"

    external_id: Mapped[str] = Column(String(128), primary_key=True)
    task_id: Mapped[str] = Column(String(128), nullable=False, unique=True)
    last_event_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    # sha256 of the normalised `created` event, to tell a redelivery from a conflict.
    created_fingerprint: Mapped[str] = Column(String(64), nullable=False)


class TaskEventRow(Base):
    """Each distinct event a task received (see ``webhooks.ordering``): the task is
    replayed from them, so it doesn't depend on the order they arrived in. The key
    is the whole event, so a repeat is the same row."""

    __tablename__ = "task_events"

    external_id: Mapped[str] = Column(String(128), primary_key=True)
    timestamp: Mapped[datetime] = Column(UTCDateTime, primary_key=True)
    # 0 created, 1 updated, 2 deleted: their order at one timestamp.
    rank: Mapped[int] = Column(SmallInteger, primary_key=True, autoincrement=False)
    is_completed: Mapped[bool] = Column(Boolean, primary_key=True)
    content: Mapped[str] = Column(String(200), primary_key=True)
