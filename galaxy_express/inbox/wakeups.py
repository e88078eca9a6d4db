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
from collections.abc import Mapping

from baseplate.clients.redis import MonitoredRedisConnection
from baseplate.clients.redis_cluster import MonitoredRedisClusterConnection
from redis import Redis
from redis.exceptions import RedisError

from galaxy_express.core import metrics

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

    Call it after the commit only. Never raises for Redis: logged and counted.
    """
    if not last_seqs:
        return
    channel = channel_name(key_prefix)
    messages = [encode(recipient_id, seq) for recipient_id, seq in last_seqs.items()]
    try:
        if len(messages) == 1 or isinstance(redis, MonitoredRedisClusterConnection):
            # A cluster's pipeline routes by key, and PUBLISH has none: one at a time.
            for message in messages:
                redis.publish(channel, message)
            return
        if isinstance(redis, MonitoredRedisConnection):  # baseplate names it for its span
            pipeline = redis.pipeline("inbox.wakeups", transaction=False)
        else:
            pipeline = redis.pipeline(transaction=False)
        for message in messages:
            pipeline.publish(channel, message)
        pipeline.execute()
    except _REDIS_FAILURES:
        metrics.INBOX_WAKEUP_FAILURES.inc()
        logger.warning(
            "inbox changes of %d mailboxes committed but their wake-up was not published; "
            "streams find them at their next poll",
            len(messages),
            exc_info=True,
        )
