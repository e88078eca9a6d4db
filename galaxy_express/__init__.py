"""Galaxy Express: the two edges, built over one baseplate and one service layer.

``make_wsgi_app`` serves HTTP (Pyramid, ``[app:main]``), ``make_processor``
serves Thrift (``[app:thrift]``); both come from ``make_baseplate``, so they
share configuration, context clients (``db``, ``redis``, ``settings``) and
every service function.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from baseplate import Baseplate
from baseplate.frameworks.pyramid import BaseplateConfigurator
from baseplate.frameworks.thrift import baseplateify_processor
from baseplate.lib import config as baseplate_config
from opentelemetry.instrumentation.pyramid import PyramidInstrumentor

from galaxy_express.config import Settings, parse_settings, with_env_overrides
from galaxy_express.db import (
    SQLITE_BUSY_TIMEOUT_MS,
    SessionClient,
    cooperate_with_gevent,
    engine_options,
)
from galaxy_express.observability import configure_tracing
from galaxy_express.redis_cluster import redis_client

logger = logging.getLogger(__name__)

# The HTTP operations of each domain (a module with an ``api``), in route order.
DOMAIN_VIEWS: tuple[str, ...] = (
    "galaxy_express.ops",
    "galaxy_express.delivery.views",
    "galaxy_express.inbox.views",
    "galaxy_express.users.views",
    "galaxy_express.tasks.views",
    "galaxy_express.webhooks.views",
    "galaxy_express.reports.views",
)

DB_SPEC = {
    "db": {
        "url": baseplate_config.String,
        "sqlite_busy_timeout": baseplate_config.Optional(
            baseplate_config.Timespan, default=timedelta(milliseconds=SQLITE_BUSY_TIMEOUT_MS)
        ),
    }
}


def make_baseplate(app_config: Mapping[str, str]) -> tuple[Baseplate, Settings]:
    """The Baseplate both edges use, and the parsed settings."""
    raw = with_env_overrides(app_config)
    settings = parse_settings(raw)
    configure_tracing(settings)
    redis = redis_client(raw)  # before Baseplate(raw): a cluster adds its keys
    baseplate = Baseplate(raw)
    baseplate.configure_observers()
    db = baseplate_config.parse_config(raw, DB_SPEC).db
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


def make_wsgi_app(app_config: Mapping[str, str]) -> Any:
    from pyramid.config import Configurator

    from galaxy_express import http_errors

    baseplate, settings = make_baseplate(app_config)
    configurator = Configurator(settings={"galaxy_express.settings": settings})
    configurator.include(BaseplateConfigurator(baseplate).includeme)
    if not settings.tracing_enabled:
        # OpenTelemetry's Pyramid tween would build a span and its attributes on
        # every request only for the sampler to drop them; this makes it a no-op.
        PyramidInstrumentor.uninstrument_config(configurator)
    configurator.include("galaxy_express.auth")
    apis = [importlib.import_module(name).api for name in DOMAIN_VIEWS]
    for api in apis:
        api.includeme(configurator)
    http_errors.include(configurator, apis, settings)
    return http_errors.guard(configurator.make_wsgi_app())


def make_processor(app_config: Mapping[str, str]) -> Any:
    from galaxy_express.thrift.gen import GalaxyExpress
    from galaxy_express.thrift.handler import Handler

    baseplate, _ = make_baseplate(app_config)
    processor = GalaxyExpress.Processor(Handler())
    return baseplateify_processor(processor, logger, baseplate, convert_to_baseplate_error=True)
