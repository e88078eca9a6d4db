"""The deployment's own Redis keyspace: every key under ``redis.key_prefix``.

Two deployments may share a Redis database; each touches only the keys under
its prefix. Keys are handled as bytes: a key under the prefix that is not
UTF-8 (written by hand, or by another tool) is still listed and deleted
rather than stopping the scan.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from redis import Redis

_GLOB_SPECIAL = re.compile(rb"([*?\[\]\\])")
_KEYS_PER_SCAN = 1000
_KEYS_PER_DELETE = 500


def glob_escape(prefix: str) -> bytes:
    """``prefix`` as a literal SCAN MATCH pattern (``*``, ``?``, ``[``, ``]`` escaped)."""
    return _GLOB_SPECIAL.sub(rb"\\\1", prefix.encode())


def keys_under(redis: Redis, prefix: str) -> Iterator[bytes]:
    """Every key that starts with ``prefix``, as bytes (SCAN: never blocks Redis)."""
    for key in redis.scan_iter(match=glob_escape(prefix) + b"*", count=_KEYS_PER_SCAN):
        yield key if isinstance(key, bytes) else key.encode("utf-8", "surrogateescape")


def delete_keys_under(redis: Redis, prefix: str) -> int:
    """Delete every key under ``prefix``; how many were deleted."""
    deleted = 0
    batch: list[bytes] = []
    for key in keys_under(redis, prefix):
        batch.append(key)
        if len(batch) >= _KEYS_PER_DELETE:
            deleted += int(redis.delete(*batch))
            batch.clear()
    if batch:
        deleted += int(redis.delete(*batch))
    return deleted
