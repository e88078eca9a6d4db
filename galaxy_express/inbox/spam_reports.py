"""Spam reports: rows in the database (the truth), reporter sets in Redis (the counts).

Each sender's count is the cardinality of a Redis SET of the recipients who
reported them (``SADD`` then ``SCARD``), so it counts distinct reporters,
exactly, however reports race: adding a member twice changes nothing.

The rows are written in the same transaction as the move to the spam folder;
Redis is told after the commit (no network I/O inside a transaction). If Redis
is down then, the report still stands, and its count catches up when the same
recipient reports that sender again, or when an operator runs
``rebuild_spam_counts`` (``make rebuild-spam-counts``), which rebuilds every
count exactly from the rows. Readers fall back to counting the rows while
Redis is down.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from galaxy_express.core import metrics
from galaxy_express.core.config import DEFAULT_REDIS_KEY_PREFIX
from galaxy_express.core.context import ServiceContext
from galaxy_express.core.pagination import SortKey, fingerprint, paginate
from galaxy_express.core.redis_cluster import pipeline
from galaxy_express.core.redis_keys import keys_under
from galaxy_express.db import insert_ignoring_conflicts, unit_of_work
from galaxy_express.inbox.models import SpamReport
from galaxy_express.inbox.records import SpamCountRebuild

logger = logging.getLogger(__name__)

# Under the deployment's ``redis.key_prefix`` (``ge:`` unless configured).
REPORTERS = "spam:reporters:"
_BUILDING = "spam:rebuilding:"
# A rebuild that dies half-way leaves its scratch keys to expire on their own.
_BUILD_TTL_SECONDS = 3600
_ROWS_PER_READ = 5000
_MEMBERS_PER_SADD = 1000
_COMMANDS_PER_ROUND_TRIP = 1000
_REDIS_FAILURES = (RedisError, OSError)


def reporters_key(sender_id: str, prefix: str = DEFAULT_REDIS_KEY_PREFIX) -> str:
    # The braces are a Redis Cluster hash tag: a sender's set and its rebuild
    # scratch key hash to one slot, so RENAME between them works on a cluster.
    return f"{prefix}{REPORTERS}{{{sender_id}}}"


def record_reports(
    session: Session, recipient_id: str, first_package_of: Mapping[str, str], at: datetime
) -> int:
    """Store reports of these senders (sender -> first package reported) in the
    caller's transaction; a sender this recipient already reported is left as is.
    Returns how many reports are new."""
    added = 0
    # In sender order, so two reports by one recipient can't deadlock on each other's rows.
    for sender_id, package_id in sorted(first_package_of.items()):
        row = {
            "sender_id": sender_id,
            "recipient_id": recipient_id,
            "package_id": package_id,
            "reported_at": at,
        }
        added += insert_ignoring_conflicts(session, SpamReport.__table__, row)
    return added


def count_reports(context: ServiceContext, recipient_id: str, sender_ids: Iterable[str]) -> None:
    """Add the recipient to each sender's reporter set (after the reports committed).

    Every sender is added, also those reported before, so a count that missed
    a report while Redis was down is repaired by the next one. A Redis failure
    is logged, not raised: the report is stored and a rebuild restores the count.
    """
    prefix = context.settings.redis_key_prefix
    try:
        queued = pipeline(context.redis, "spam_reports.count")
        for sender_id in sender_ids:
            queued.sadd(reporters_key(sender_id, prefix), recipient_id)
        queued.execute()
    except _REDIS_FAILURES:
        metrics.SPAM_COUNT_SYNC_FAILURES.inc()
        logger.warning(
            "spam reports of %s are stored but Redis was not updated; "
            "run `make rebuild-spam-counts` once Redis is back",
            recipient_id,
            exc_info=True,
        )


def reporter_count(context: ServiceContext, sender_id: str) -> int:
    """How many distinct recipients reported ``sender_id``: Redis, or the rows if it is down."""
    try:
        key = reporters_key(sender_id, context.settings.redis_key_prefix)
        return int(context.redis.scard(key))
    except _REDIS_FAILURES:
        logger.warning("Redis is unavailable; counting spam reports in the database")
        with unit_of_work(context.db) as session:
            statement = select(func.count()).where(SpamReport.sender_id == sender_id)
            return int(session.execute(statement).scalar_one())


def rebuild_spam_counts(
    context: ServiceContext, progress: Callable[[int], None] | None = None
) -> SpamCountRebuild:
    """Rebuild every sender's Redis count exactly from the stored reports.

    Each sender's set is built under a scratch key and swapped in with one
    RENAME, so readers see the old count or the new one, never a partial one.
    Sets of senders with no stored report are deleted. Reports that commit
    while the rebuild runs could be overwritten by a swap, so a last pass adds
    every stored report again (SADD changes nothing when the member is there):
    at the end, every report committed before that pass is counted.

    Only keys under the deployment's ``redis.key_prefix`` are read or written.
    ``progress`` is called with the number of reports each sender added.
    """
    run = uuid.uuid4().hex[:12]
    prefix = context.settings.redis_key_prefix
    senders: set[str] = set()
    reports = 0
    builder = _SetBuilder(context.redis, run, prefix)
    for sender_id, recipients in _reporters_by_sender(context):
        senders.add(sender_id)
        built = builder.build(sender_id, recipients)
        reports += built
        if progress is not None:
            progress(built)
    builder.finish()
    removed = _delete_sets_except(context.redis, senders, prefix)
    top_up = _Pipeline(context.redis)
    for sender_id, recipients in _reporters_by_sender(context):
        for chunk in _chunks(recipients, _MEMBERS_PER_SADD):
            top_up.queue("sadd", reporters_key(sender_id, prefix), *chunk)
    top_up.flush()
    # Debug: the operator's command prints the outcome itself, once.
    logger.debug(
        "rebuilt spam counts: %d senders, %d reports, %d removed", len(senders), reports, removed
    )
    return SpamCountRebuild(senders=len(senders), reports=reports, removed=removed)


def stored_report_count(context: ServiceContext) -> int:
    with unit_of_work(context.db) as session:
        return int(session.execute(select(func.count()).select_from(SpamReport)).scalar_one())


def _reporters_by_sender(context: ServiceContext) -> Iterator[tuple[str, Iterator[str]]]:
    """(sender, their reporters) in sender order, read in short keyset batches
    so no transaction stays open while Redis is written."""
    rows = _report_keys(context)
    for sender_id, group in itertools.groupby(rows, key=lambda row: row[0]):
        yield sender_id, (recipient_id for _, recipient_id in group)


def _report_keys(context: ServiceContext) -> Iterator[tuple[str, str]]:
    statement = select(SpamReport.sender_id, SpamReport.recipient_id)
    order = [SortKey(SpamReport.sender_id), SortKey(SpamReport.recipient_id)]
    cursor: str | None = None
    while True:
        with unit_of_work(context.db) as session:
            page = paginate(
                session,
                statement,
                order,
                key_of=lambda row: (row.sender_id, row.recipient_id),
                limit=_ROWS_PER_READ,
                cursor=cursor,
                query_fingerprint=fingerprint(of="spam_reports"),
                secrets=context.settings.cursor_secrets,
            )
            batch = [(row.sender_id, row.recipient_id) for row in page.items]
        yield from batch
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


class _Pipeline:
    """Queue Redis commands and send them in round trips of a bounded size."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pipeline = pipeline(redis, "spam_reports.rebuild")
        self._queued = 0

    def queue(self, command: str, *args: Any) -> None:
        getattr(self._pipeline, command)(*args)
        self._queued += 1
        if self._queued >= _COMMANDS_PER_ROUND_TRIP:
            self.flush()

    def flush(self) -> None:
        if self._queued:
            self._pipeline.execute()
            self._queued = 0


class _SetBuilder:
    """Builds sets under scratch keys; ``finish`` swaps the built ones in."""

    def __init__(self, redis: Redis, run: str, prefix: str) -> None:
        self._redis = redis
        self._run = run
        self._prefix = prefix
        self._pipeline = _Pipeline(redis)
        self._built: list[str] = []

    def build(self, sender_id: str, recipients: Iterable[str]) -> int:
        scratch = self._scratch_key(sender_id)
        self._pipeline.queue("delete", scratch)
        members = 0
        for chunk in _chunks(recipients, _MEMBERS_PER_SADD):
            self._pipeline.queue("sadd", scratch, *chunk)
            members += len(chunk)
        self._pipeline.queue("expire", scratch, _BUILD_TTL_SECONDS)
        self._built.append(sender_id)
        if len(self._built) >= _COMMANDS_PER_ROUND_TRIP:
            self._swap()
        return members

    def finish(self) -> None:
        self._swap()

    def _swap(self) -> None:
        self._pipeline.flush()
        if not self._built:
            return
        # RENAME keeps the scratch key's expiry, so PERSIST in the same script:
        # no reader ever sees a count that would expire. A script per sender
        # (not MULTI over all) because a cluster runs it on that sender's slot.
        swap = _Pipeline(self._redis)
        for sender_id in self._built:
            scratch, live = self._scratch_key(sender_id), reporters_key(sender_id, self._prefix)
            swap.queue("execute_command", "EVAL", _SWAP_SCRIPT, 2, scratch, live)
        swap.flush()
        self._built.clear()

    def _scratch_key(self, sender_id: str) -> str:
        # The same hash tag as the live key: both live in the sender's slot.
        return f"{self._prefix}{_BUILDING}{self._run}:{{{sender_id}}}"


_SWAP_SCRIPT = """
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PERSIST', KEYS[2])
return 1
"""


def _delete_sets_except(redis: Redis, senders: set[str], prefix: str) -> int:
    """Delete the reporter sets of senders not in ``senders``; how many were deleted.

    Compared as bytes: a key whose sender part is not UTF-8 can't be a stored
    sender's (ids are text), so it is deleted like any other stale set rather
    than stopping the rebuild.
    """
    sets_prefix = f"{prefix}{REPORTERS}"
    wanted = {reporters_key(sender_id, prefix).encode() for sender_id in senders}
    pipeline = _Pipeline(redis)
    removed = 0
    for key in keys_under(redis, sets_prefix):
        if key not in wanted:
            pipeline.queue("delete", key)
            removed += 1
    pipeline.flush()
    return removed


def _chunks(values: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(values)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
