"""The composition root: the one place the ``Baseplate`` is built.

Both app factories (``galaxy_express.http.app:make_wsgi_app`` for
``[app:main]``, ``galaxy_express.thrift.app:make_processor`` for
``[app:thrift]``) and every entry point in ``galaxy_express.runtime`` call
``make_baseplate``, so they share one configuration spec and one set of
context clients (``db``, ``redis``, ``settings``). Nothing else imports this
module (an import-linter contract says so).
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from baseplate import Baseplate
from baseplate.lib import config as baseplate_config

from galaxy_express.core.config import Settings, parse_settings, with_env_overrides
from galaxy_express.core.files import restrict_new_files
from galaxy_express.core.observability import configure_tracing
from galaxy_express.core.redis_cluster import redis_client, subscription_urls
from galaxy_express.db.engine import SessionClient, cooperate_with_gevent, engine_options
from galaxy_express.db.sqlite import SQLITE_BUSY_TIMEOUT_MS
from galaxy_express.inbox import live, wakeups

DB_SPEC = {
    "db": {
        "url": baseplate_config.String,
        "sqlite_busy_timeout": baseplate_config.Optional(
            baseplate_config.Timespan, default=timedelta(milliseconds=SQLITE_BUSY_TIMEOUT_MS)
        ),
    }
}


def read_app_config(config_file: str | Path, app_name: str = "main") -> dict[str, str]:
    """The ``[app:NAME]`` section of an INI file, as baseplate-serve hands it to a factory.

    The one reader of the INI file outside baseplate's own commands (the
    launcher, migrate, the rebuild script and the tests use it).
    """
    parser = configparser.RawConfigParser()
    if not parser.read(config_file):
        raise FileNotFoundError(f"cannot read {config_file}")
    return dict(parser.items(f"app:{app_name}"))


def make_baseplate(app_config: Mapping[str, str]) -> tuple[Baseplate, Settings]:
    """The Baseplate both edges use, and the parsed settings."""
    raw = with_env_overrides(app_config)
    settings = parse_settings(raw)
    configure_tracing(settings)
    redis = redis_client(raw)  # before Baseplate(raw): a cluster adds its keys
    baseplate = Baseplate(raw)
    baseplate.configure_observers()
    db = baseplate_config.parse_config(raw, DB_SPEC).db
    restrict_new_files(db.url)
    cooperate_with_gevent(db.url)
    busy_timeout_ms = int(db.sqlite_busy_timeout.total_seconds() * 1000)
    baseplate.configure_context(
        {
            "db": SessionClient(
                trace_statements=settings.tracing_enabled,
                **engine_options(db.url, busy_timeout_ms=busy_timeout_ms),
            ),
            "redis": redis,
        }
    )
    baseplate.add_to_context("settings", settings)
    return baseplate, settings


def make_stream_hub(
    baseplate: Baseplate, settings: Settings, app_config: Mapping[str, str]
) -> live.Hub:
    """The worker's live streams: their limits, a fresh context per read, the listener.

    Each read of a stream runs on a context of its own (``server_context``):
    the request's context is not used once the answer has started (see
    docs/live-stream.md).
    """
    raw = with_env_overrides(app_config)
    listener = live.Listener(
        live.subscriber_clients(subscription_urls(raw)),
        wakeups.channel_name(settings.redis_key_prefix),
        wakeups.decode,
    )
    return live.Hub(
        live.StreamSettings(
            heartbeat_seconds=settings.stream_heartbeat_seconds,
            poll_seconds=settings.stream_poll_seconds,
            max_streams=settings.max_streams_per_worker,
        ),
        lambda: baseplate.server_context("inbox.stream"),
        live.latest_seqs,
        listener,
    )
