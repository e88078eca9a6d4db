"""The idempotency key store: one table, for every route of both edges.

Every function runs in the caller's transaction: the edges call ``claim`` first
in the request's transaction (``unit_of_work.request_transaction``), then
``record`` (or ``release``) before it commits. The key's row is inserted before
the operation runs, so a racing repeat's insert of the same key waits for this
transaction (PostgreSQL's unique index; SQLite's write lock, taken by BEGIN
IMMEDIATE) and then finds the row committed with the first answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, Integer, LargeBinary, String, Text, bindparam, delete, select, update
from sqlalchemy.orm import Mapped, Session

from galaxy_express.core import clock
from galaxy_express.core.errors import DependencyUnavailable
from galaxy_express.core.idempotency import KEY_HEADER, Answer, reused
from galaxy_express.db.base import Base, UTCDateTime
from galaxy_express.db.unit_of_work import unit_of_work
from galaxy_express.db.upserts import insert_ignoring_conflicts

# Keys deleted per transaction when pruning, and transactions per pruning round:
# each holds the write lock for a few milliseconds only.
PRUNE_BATCH = 500
PRUNE_BATCHES_PER_ROUND = 20


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    # A digest of the method, path and caller (core.idempotency.scope_of), then the key.
    scope: Mapped[str] = Column(String(64), primary_key=True)
    key: Mapped[str] = Column(String(255), primary_key=True)
    # "POST /v1/tasks", "thrift create_task": for people looking a key up.
    operation: Mapped[str] = Column(String(512), nullable=False)
    fingerprint: Mapped[str] = Column(String(64), nullable=False)
    created_at: Mapped[datetime] = Column(UTCDateTime, nullable=False, index=True)
    # Set before the claiming transaction commits; NULL only inside it.
    status: Mapped[int | None] = Column(Integer, nullable=True)
    headers: Mapped[str | None] = Column(Text, nullable=True)
    body: Mapped[bytes | None] = Column(LargeBinary, nullable=True)


@dataclass(frozen=True)
class StoredKey:
    """A key's row, as ``make shell`` shows it."""

    operation: str
    key: str
    created_at: datetime
    answer: Answer | None


def claim(
    session: Session,
    scope: str,
    key: str,
    operation: str,
    fingerprint: str,
    key_field: str = KEY_HEADER,
) -> Answer | None:
    """Take the key for this request (None: go on and answer), or the first answer to it.

    Raises ``IdempotencyKeyReused`` (422) when the key answered another request.
    """
    values = {
        "scope": scope,
        "key": key,
        "operation": operation[:512],
        "fingerprint": fingerprint,
        "created_at": clock.now(),
    }
    if insert_ignoring_conflicts(session, _TABLE, values):
        return None
    row = session.execute(_STORED, {"scope": scope, "key": key}).one()
    reused(row.fingerprint, fingerprint, key_field)
    answer = _answer_of(row.status, row.headers, row.body)
    if answer is None:  # pragma: no cover - a claim is only ever committed with its answer
        raise DependencyUnavailable("the first request with this Idempotency-Key is running")
    return answer


def record(session: Session, scope: str, key: str, answer: Answer) -> None:
    """Store the first answer, in the transaction of its effects."""
    session.execute(
        _RECORD,
        {
            "s": scope,
            "k": key,
            "status": answer.status,
            "headers": json.dumps(dict(answer.headers), sort_keys=True),
            "body": answer.body,
        },
    )


def release(session: Session, scope: str, key: str) -> None:
    """Give the key back: the answer is not kept (a refusal or a failure)."""
    session.execute(_RELEASE, {"s": scope, "k": key})


def prune_expired(
    session: Session, retention_days: int, batches: int = PRUNE_BATCHES_PER_ROUND
) -> int:
    """Delete the keys older than ``retention_days`` (0 keeps them forever), a bounded
    batch per transaction, for at most ``batches`` transactions (the rest waits for the
    next round); how many went."""
    if not retention_days:
        return 0
    older_than = clock.now() - timedelta(days=retention_days)
    pruned = 0
    for _ in range(batches):
        with unit_of_work(session, write=True):
            count = prune(session, older_than)
        pruned += count
        if count < PRUNE_BATCH:
            break
    return pruned


def prune(session: Session, older_than: datetime, limit: int = PRUNE_BATCH) -> int:
    """Delete up to ``limit`` keys created before ``older_than``; how many went."""
    doomed = session.execute(_OLDEST, {"before": older_than, "limit": limit}).all()
    for scope, key in doomed:
        session.execute(_RELEASE, {"s": scope, "k": key})
    return len(doomed)


def look_up(session: Session, key: str) -> list[StoredKey]:
    """Every stored use of ``key`` (one a method, path and caller)."""
    rows = session.execute(select(IdempotencyKey).where(IdempotencyKey.key == key)).scalars()
    return [
        StoredKey(
            row.operation, row.key, row.created_at, _answer_of(row.status, row.headers, row.body)
        )
        for row in rows
    ]


def _answer_of(status: int | None, headers: str | None, body: bytes | None) -> Answer | None:
    if status is None:
        return None
    return Answer(status=status, body=body or b"", headers=json.loads(headers or "{}"))


_TABLE = IdempotencyKey.__table__
_STORED = select(
    IdempotencyKey.fingerprint, IdempotencyKey.status, IdempotencyKey.headers, IdempotencyKey.body
).where(IdempotencyKey.scope == bindparam("scope"), IdempotencyKey.key == bindparam("key"))
# Statements on the table, not the mapped class: an ORM UPDATE or DELETE first
# evaluates its criteria against every object the session holds (synchronize_session),
# which was a third of a keyed send's CPU; no request holds these rows as objects.
_THIS_KEY = (_TABLE.c.scope == bindparam("s"), _TABLE.c.key == bindparam("k"))
_RECORD = (
    update(_TABLE)
    .where(*_THIS_KEY)
    .values(status=bindparam("status"), headers=bindparam("headers"), body=bindparam("body"))
)
_RELEASE = delete(_TABLE).where(*_THIS_KEY)
_OLDEST = (
    select(IdempotencyKey.scope, IdempotencyKey.key)
    .where(IdempotencyKey.created_at < bindparam("before"))
    .order_by(IdempotencyKey.created_at)
    .limit(bindparam("limit"))
)
