"""The HTTP edge's app factory (``[app:main]`` ``factory``).

It gathers every domain's views (each module's ``api``) into one Pyramid
app over the Baseplate ``galaxy_express.bootstrap`` builds, with the
problem+json translation of errors around it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from baseplate.frameworks.pyramid import BaseplateConfigurator
from opentelemetry.instrumentation.pyramid import PyramidInstrumentor

from galaxy_express.bootstrap import make_baseplate

# The HTTP operations of each domain (a module with an ``api``), in route order.
DOMAIN_VIEWS: tuple[str, ...] = (
    "galaxy_express.http.ops",
    "galaxy_express.delivery.views",
    "galaxy_express.inbox.views",
    "galaxy_express.users.views",
    "galaxy_express.tasks.views",
    "galaxy_express.webhooks.views",
    "galaxy_express.reports.views",
)


def make_wsgi_app(app_config: Mapping[str, str]) -> Any:
    from pyramid.config import Configurator

    from galaxy_express.http import problems as http_errors

    baseplate, settings = make_baseplate(app_config)
    configurator = Configurator(settings={"galaxy_express.settings": settings})
    configurator.include(BaseplateConfigurator(baseplate).includeme)
    if not settings.tracing_enabled:
        # OpenTelemetry's Pyramid tween would build a span and its attributes on
        # every request only for the sampler to drop them; this makes it a no-op.
        PyramidInstrumentor.uninstrument_config(configurator)
    configurator.include("galaxy_express.http.auth")
    apis = [importlib.import_module(name).api for name in DOMAIN_VIEWS]
    for api in apis:
        api.includeme(configurator)
    http_errors.include(configurator, apis, settings)
    return http_errors.guard(configurator.make_wsgi_app())
