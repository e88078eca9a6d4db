"""The one configuration spec of the service.

Every setting is read once, at start-up, from the INI file's app section, with
a few environment variables layered on top so that operators (and
docker-compose) can point the same file at other databases. A missing or bad
value fails at start-up and names the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from baseplate.lib import config

# Environment variables that override INI keys. Empty values are ignored so an
# unset variable in docker-compose does not blank a setting.
ENV_OVERRIDES: Mapping[str, str] = {
    "DATABASE_URL": "db.url",
    "REDIS_URL": "redis.url",
    "WEBHOOK_SECRET": "webhooks.secret",
    "REPORT_INTERVAL_SECONDS": "reports.interval_seconds",
    "REPORTS_DIR": "reports.dir",
    "API_KEYS": "auth.api_keys",
    "SPAM_DROP_THRESHOLD": "delivery.spam_drop_threshold",
    "TRACING_ENABLED": "tracing.enabled",
}


@dataclass(frozen=True)
class Settings:
    """The service's own settings (clients such as db and redis parse theirs)."""

    tracing_enabled: bool
    webhook_secret: str | None
    webhook_tolerance_seconds: int
    reports_dir: Path
    report_interval_seconds: int
    api_keys: tuple[str, ...]
    spam_drop_threshold: int
    redis_timeout_seconds: float
    idempotency_retention_days: int = 30


SPEC = {
    "tracing": {"enabled": config.Optional(config.Boolean, default=False)},
    "webhooks": {
        "secret": config.Optional(config.String, default=None),
        "tolerance_seconds": config.Optional(config.Integer, default=300),
    },
    "reports": {
        "dir": config.Optional(config.String, default="var/reports"),
        "interval_seconds": config.Optional(config.Integer, default=15),
    },
    "auth": {"api_keys": config.Optional(config.TupleOf(config.String), default=())},
    "delivery": {"spam_drop_threshold": config.Optional(config.Integer, default=0)},
    # How long an Idempotency-Key's first answer is kept (the reporter prunes older ones).
    "idempotency": {"retention_days": config.Optional(config.Integer, default=30)},
}


def with_env_overrides(app_config: Mapping[str, str]) -> dict[str, str]:
    """The app config with the environment's overrides applied."""
    merged = dict(app_config)
    for variable, key in ENV_OVERRIDES.items():
        value = os.environ.get(variable, "")
        if value:
            merged[key] = value
    return merged


def parse_settings(app_config: Mapping[str, str]) -> Settings:
    raw = config.parse_config(dict(app_config), SPEC)
    if raw.reports.interval_seconds < 1:
        raise ValueError("reports.interval_seconds must be at least 1")
    if raw.delivery.spam_drop_threshold < 0:
        raise ValueError("delivery.spam_drop_threshold must be 0 (off) or positive")
    if raw.idempotency.retention_days < 1:
        raise ValueError("idempotency.retention_days must be at least 1")
    return Settings(
        tracing_enabled=raw.tracing.enabled,
        webhook_secret=raw.webhooks.secret or None,
        webhook_tolerance_seconds=raw.webhooks.tolerance_seconds,
        reports_dir=Path(raw.reports.dir),
        report_interval_seconds=raw.reports.interval_seconds,
        api_keys=tuple(key for key in raw.auth.api_keys if key),
        spam_drop_threshold=raw.delivery.spam_drop_threshold,
        redis_timeout_seconds=0.5,
        idempotency_retention_days=raw.idempotency.retention_days,
    )
