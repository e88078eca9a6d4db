"""The one configuration spec of the service.

Every setting is read once, at start-up, from the INI file's app section, with
a few environment variables layered on top so that operators (and
docker-compose) can point the same file at other databases. A missing or bad
value fails at start-up and names the key.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from baseplate.lib import config

from galaxy_express.core.access import Principal, parse_scoped_keys

# Environment variables that override INI keys. Empty values are ignored so an
# unset variable in docker-compose does not blank a setting.
#
# This is the one reader of them, on purpose, rather than baseplate's
# config.DefaultFromEnv (measured against baseplate 2.7.1): DefaultFromEnv only
# supplies a default, so the INI value wins and DATABASE_URL would be ignored
# under every shipped config (they all set db.url); it refuses a falsy value
# ("no value provided" for 0 or false, so SPAM_DROP_THRESHOLD=0 and
# TRACING_ENABLED=false would fail); it reads the environment when the spec is
# built, at import; and it can only sit in our own SPEC, while db.url and
# redis.url are parsed by baseplate's clients from the raw app config. Laying
# the overrides on the raw config before anything parses it serves all of them.
ENV_OVERRIDES: Mapping[str, str] = {
    "DATABASE_URL": "db.url",
    "REDIS_URL": "redis.url",
    "REDIS_CLUSTER_NODES": "redis.cluster_nodes",
    "WEBHOOK_SECRET": "webhooks.secret",
    "REPORT_INTERVAL_SECONDS": "reports.interval_seconds",
    "REPORTS_DIR": "reports.dir",
    "API_KEYS": "auth.api_keys",
    "AUTH_KEYS": "auth.keys",
    "SPAM_DROP_THRESHOLD": "delivery.spam_drop_threshold",
    "TRACING_ENABLED": "tracing.enabled",
    "CURSOR_SECRET": "cursors.secret",
    "CURSOR_PREVIOUS_SECRET": "cursors.previous_secret",
    "REDIS_KEY_PREFIX": "redis.key_prefix",
}

# Every Redis key the service writes starts with this (``redis.key_prefix``), so
# two deployments can share a Redis database and rebuilds and resets touch only
# their own keys.
DEFAULT_REDIS_KEY_PREFIX = "ge:"


@dataclass(frozen=True)
class Settings:
    """The service's own settings (clients such as db and redis parse theirs)."""

    tracing_enabled: bool
    webhook_secret: str | None
    webhook_tolerance_seconds: int
    reports_dir: Path
    report_interval_seconds: int
    api_keys: tuple[str, ...]
    # auth.keys: key -> its principal (scopes); see access.py.
    scoped_keys: Mapping[str, Principal]
    spam_drop_threshold: int
    redis_timeout_seconds: float
    # The secret that signs cursors first, then the previous one (still accepted).
    cursor_secrets: tuple[bytes, ...]
    # Retention, in days (0 keeps forever); see README "Retention".
    webhook_body_retention_days: int
    webhook_delivery_retention_days: int
    report_retention_days: int
    redis_key_prefix: str = DEFAULT_REDIS_KEY_PREFIX
    idempotency_retention_days: int = 30
    # The live stream (README "Live stream"): a heartbeat comment at least this
    # often, the poll that catches lost wake-ups, the streams a worker holds at most.
    stream_heartbeat_seconds: float = 15.0
    stream_poll_seconds: float = 1.0
    max_streams_per_worker: int = 2000
    inbox_changes_retention_days: int = 30
    # webhook-ids remembered for dedupe; at least the freshness window (parse_settings).
    webhook_seen_ids_retention_days: int = 7


SPEC = {
    "tracing": {"enabled": config.Optional(config.Boolean, default=False)},
    "webhooks": {
        "secret": config.Optional(config.String, default=None),
        "tolerance_seconds": config.Optional(config.Integer, default=300),
        "retention_days": config.Optional(config.Integer, default=7),
        "delivery_retention_days": config.Optional(config.Integer, default=30),
        "seen_ids_retention_days": config.Optional(config.Integer, default=7),
    },
    "reports": {
        "dir": config.Optional(config.String, default="var/reports"),
        "interval_seconds": config.Optional(config.Integer, default=15),
        "retention_days": config.Optional(config.Integer, default=30),
    },
    "cursors": {
        "secret": config.Optional(config.String, default=None),
        "previous_secret": config.Optional(config.String, default=None),
    },
    "auth": {
        "api_keys": config.Optional(config.TupleOf(config.String), default=()),
        "keys": config.Optional(config.String, default=""),
    },
    "delivery": {"spam_drop_threshold": config.Optional(config.Integer, default=0)},
    "redis": {"key_prefix": config.Optional(config.String, default=DEFAULT_REDIS_KEY_PREFIX)},
    # How long an Idempotency-Key's first answer is kept (the reporter prunes older ones).
    "idempotency": {"retention_days": config.Optional(config.Integer, default=30)},
    "inbox": {
        # How long inbox change events are kept (a `since` older than the oldest is 410).
        "changes_retention_days": config.Optional(config.Integer, default=30),
        # The live stream (README "Live stream").
        "stream_heartbeat_seconds": config.Optional(config.Float, default=15.0),
        "stream_poll_seconds": config.Optional(config.Float, default=1.0),
        "max_streams_per_worker": config.Optional(config.Integer, default=2000),
    },
}


def with_env_overrides(app_config: Mapping[str, str]) -> dict[str, str]:
    """The app config with the environment's overrides applied."""
    merged = dict(app_config)
    for variable, key in ENV_OVERRIDES.items():
        value = os.environ.get(variable, "")
        if value:
            merged[key] = value
    return merged


def redis_key_prefix(app_config: Mapping[str, str]) -> str:
    """The deployment's Redis key prefix; refuses an empty one (it would claim every key)."""
    prefix = app_config.get("redis.key_prefix", DEFAULT_REDIS_KEY_PREFIX).strip()
    if not prefix:
        raise ValueError("redis.key_prefix must not be empty")
    return prefix


def parse_settings(app_config: Mapping[str, str]) -> Settings:
    raw = config.parse_config(dict(app_config), SPEC)
    if raw.reports.interval_seconds < 1:
        raise ValueError("reports.interval_seconds must be at least 1")
    if raw.delivery.spam_drop_threshold < 0:
        raise ValueError("delivery.spam_drop_threshold must be 0 (off) or positive")
    for name, days in (
        ("webhooks.retention_days", raw.webhooks.retention_days),
        ("webhooks.delivery_retention_days", raw.webhooks.delivery_retention_days),
        ("reports.retention_days", raw.reports.retention_days),
        ("inbox.changes_retention_days", raw.inbox.changes_retention_days),
        ("webhooks.seen_ids_retention_days", raw.webhooks.seen_ids_retention_days),
    ):
        if days < 0:
            raise ValueError(f"{name} must be 0 (keep forever) or positive")
    _check_seen_ids_outlive_the_freshness_window(
        raw.webhooks.seen_ids_retention_days, raw.webhooks.tolerance_seconds
    )
    scoped_keys = parse_scoped_keys(raw.auth.keys or "")
    if set(scoped_keys) & set(raw.auth.api_keys):
        raise ValueError("a key is in both auth.api_keys and auth.keys; list it once")
    if raw.idempotency.retention_days < 0:
        raise ValueError("idempotency.retention_days must be 0 (keep forever) or positive")
    _check_stream_settings(raw.inbox)
    return Settings(
        tracing_enabled=raw.tracing.enabled,
        webhook_secret=raw.webhooks.secret or None,
        webhook_tolerance_seconds=raw.webhooks.tolerance_seconds,
        reports_dir=Path(raw.reports.dir),
        report_interval_seconds=raw.reports.interval_seconds,
        api_keys=tuple(key for key in raw.auth.api_keys if key),
        scoped_keys=scoped_keys,
        spam_drop_threshold=raw.delivery.spam_drop_threshold,
        redis_timeout_seconds=0.5,
        cursor_secrets=_cursor_secrets(raw.cursors.secret, raw.cursors.previous_secret),
        webhook_body_retention_days=raw.webhooks.retention_days,
        webhook_delivery_retention_days=raw.webhooks.delivery_retention_days,
        report_retention_days=raw.reports.retention_days,
        redis_key_prefix=redis_key_prefix(app_config),
        idempotency_retention_days=raw.idempotency.retention_days,
        stream_heartbeat_seconds=raw.inbox.stream_heartbeat_seconds,
        stream_poll_seconds=raw.inbox.stream_poll_seconds,
        max_streams_per_worker=raw.inbox.max_streams_per_worker,
        inbox_changes_retention_days=raw.inbox.changes_retention_days,
        webhook_seen_ids_retention_days=raw.webhooks.seen_ids_retention_days,
    )


def _check_stream_settings(inbox: config.ConfigNamespace) -> None:
    # The spec asks for a heartbeat at least every 15 s, and a change on every
    # stream within 1 s: the wake-ups hold that; the poll (1 s by default) is
    # how late a change may be while Redis is down, so an operator may trade
    # that lateness for fewer polls, up to a minute.
    if not 0 < inbox.stream_heartbeat_seconds <= 15:
        raise ValueError("inbox.stream_heartbeat_seconds must be over 0 and at most 15")
    if not 0 < inbox.stream_poll_seconds <= 60:
        raise ValueError("inbox.stream_poll_seconds must be over 0 and at most 60")
    if inbox.max_streams_per_worker < 0:
        raise ValueError("inbox.max_streams_per_worker must be 0 (no streams) or positive")


def _check_seen_ids_outlive_the_freshness_window(retention_days: int, tolerance: int) -> None:
    """A webhook-id may be forgotten only once its delivery could no longer be accepted.

    A signed delivery is refused when its timestamp is over ``tolerance_seconds``
    off, so an id kept at least that long is remembered for as long as a replay
    of its delivery could pass the signature check; kept less, a replay arriving
    after the id was pruned but within the window would be processed twice.
    """
    if retention_days and retention_days * 86400 < tolerance:
        raise ValueError(
            f"webhooks.seen_ids_retention_days ({retention_days} days) must cover "
            f"webhooks.tolerance_seconds ({tolerance} s): a delivery is accepted for that "
            "long, so its webhook-id must be remembered at least as long to refuse a repeat"
        )


def _cursor_secrets(current: str | None, previous: str | None) -> tuple[bytes, ...]:
    """The configured cursor secrets; without one, a random secret of this process.

    A random secret is right for one process (the launcher hands one to all of
    its workers); servers behind one address must share ``cursors.secret``, or
    a cursor from one is refused by the other.
    """
    first = current.encode() if current else secrets.token_bytes(32)
    return (first, previous.encode()) if previous else (first,)
