"""Wake-ups: after a mailbox's changes commit, a Redis pub/sub message says so.

One channel per deployment (``{redis.key_prefix}inbox-changes``); a message is
``{"recipient_id": ..., "seq": ...}``, the last seq that commit gave the
recipient. It only wakes readers up (the live stream): the changes themselves
are read from the database, which stays the truth. So a message lost, late or
repeated costs a reader a poll, never a change, and a Redis failure while
publishing is logged and counted, never raised: the write it follows stands.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import rediscluster
from redis import Redis
from redis.exceptions import RedisError

from galaxy_express.core import metrics
from galaxy_express.core.redis_cluster import is_cluster, pipeline

logger = logging.getLogger(__name__)

_REDIS_FAILURES = (RedisError, OSError)


def channel_name(key_prefix: str) -> str:
    """The deployment's wake-up channel."""
    return f"{key_prefix}inbox-changes"


def encode(recipient_id: str, seq: int) -> str:
    return json.dumps({"recipient_id": recipient_id, "seq": seq}, separators=(",", ":"))


def decode(message: bytes | str) -> tuple[str, int]:
    """(recipient_id, seq) of a message; ``ValueError`` when it is not one."""
    try:
        fields = json.loads(message)
        recipient_id, seq = fields["recipient_id"], fields["seq"]
    except (TypeError, KeyError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not an inbox wake-up: {message!r}") from error
    if not isinstance(recipient_id, str) or type(seq) is not int:
        raise ValueError(f"not an inbox wake-up: {message!r}")
    return recipient_id, seq


def publish(redis: Redis, key_prefix: str, last_seqs: Mapping[str, int]) -> None:
    """Tell every reader that these mailboxes changed (recipient -> last seq committed).

    Call it after the commit only. The messages are queued and sent by the
    process's publisher a few milliseconds later (``FLUSH_DELAY_SECONDS``), those
    queued meanwhile coalesced (per mailbox, its highest seq) into one pipelined
    round trip (on Redis Cluster the same queue, then one PUBLISH per mailbox): a
    send pays a dict update, not a Redis command (a command through baseplate's
    client cost a send more CPU than its whole transaction). Never raises for
    Redis: logged and counted.
    """
    if not last_seqs:
        return
    pool = getattr(redis, "connection_pool", None)
    if pool is None:
        _send(redis, channel_name(key_prefix), last_seqs)
        return
    _publisher(pool, key_prefix, cluster=is_cluster(redis)).queue(last_seqs)


# How long the publisher waits before sending, so that a burst of commits costs
# one round trip (the stream promises a second; this is a small part of it).
FLUSH_DELAY_SECONDS = 0.002


class _Publisher:
    """One process's queue of wake-ups for one Redis pool and prefix."""

    def __init__(self, pool: Any, key_prefix: str, *, cluster: bool = False) -> None:
        # A plain client on the app's pool: the publisher runs outside any request,
        # so not baseplate's per-request client (its spans belong to a request).
        self._client: Any = (
            rediscluster.RedisCluster(
                connection_pool=pool,
                read_from_replicas=pool.read_from_replicas,
                skip_full_coverage_check=pool.skip_full_coverage_check,
            )
            if cluster
            else Redis(connection_pool=pool)
        )
        self._channel = channel_name(key_prefix)
        self._mutex = threading.Lock()
        self._pending: dict[str, int] = {}
        self._flushing = False

    def queue(self, last_seqs: Mapping[str, int]) -> None:
        with self._mutex:
            for recipient_id, seq in last_seqs.items():
                if seq > self._pending.get(recipient_id, -1):
                    self._pending[recipient_id] = seq
            if self._flushing:
                return
            self._flushing = True
        # A greenlet in the servers (threading is gevent's there), a thread elsewhere.
        threading.Thread(target=self._flush, name="inbox-wakeups", daemon=True).start()

    def _flush(self) -> None:
        try:
            time.sleep(FLUSH_DELAY_SECONDS)
            while True:
                with self._mutex:
                    pending, self._pending = self._pending, {}
                    if not pending:
                        self._flushing = False
                        return
                _send(self._client, self._channel, pending)
        except BaseException:
            with self._mutex:
                self._flushing = False
            raise


_publishers: dict[tuple[int, int, str], _Publisher] = {}
_publishers_mutex = threading.Lock()


def _publisher(pool: Any, key_prefix: str, *, cluster: bool = False) -> _Publisher:
    # By process too: a publisher inherited through fork has no flushing thread.
    key = (os.getpid(), id(pool), key_prefix)
    found = _publishers.get(key)
    if found is None:
        with _publishers_mutex:
            found = _publishers.get(key)
            if found is None:
                found = _publishers[key] = _Publisher(pool, key_prefix, cluster=cluster)
    return found


def _send(redis: Any, channel: str, last_seqs: Mapping[str, int]) -> None:
    """Publish the messages: one round trip on a single Redis; on a cluster one
    PUBLISH each (its pipeline routes commands by key, and a channel is none)."""
    messages = [encode(recipient_id, seq) for recipient_id, seq in last_seqs.items()]
    try:
        if len(messages) == 1 or is_cluster(redis):
            for message in messages:
                redis.publish(channel, message)
            return
        queued = pipeline(redis, "inbox.wakeups")
        for message in messages:
            queued.publish(channel, message)
        queued.execute()
    except _REDIS_FAILURES:
        metrics.INBOX_WAKEUP_FAILURES.inc()
        logger.warning(
            "inbox changes of %d mailboxes committed but their wake-up was not published; "
            "streams find them at their next poll",
            len(messages),
            exc_info=True,
        )
