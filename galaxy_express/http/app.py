"""The HTTP edge's app factory (``[app:main]`` ``factory``).

It gathers every domain's views (each module's ``api``) into one Pyramid
app over the Baseplate ``galaxy_express.bootstrap`` builds, with the
problem+json translation of errors around it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from baseplate.frameworks.pyramid import BaseplateConfigurator
from opentelemetry.instrumentation.pyramid import PyramidInstrumentor

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.http.views import domain_apis


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
    for api in domain_apis():
        api.includeme(configurator)
    http_errors.include(configurator)
    return http_errors.guard(configurator.make_wsgi_app())
