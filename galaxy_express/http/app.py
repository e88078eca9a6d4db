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

from galaxy_express.bootstrap import make_baseplate, make_stream_hub
from galaxy_express.http.views import domain_apis
from galaxy_express.inbox import live
from galaxy_express.inbox.views import STREAMS_SETTING


def make_wsgi_app(app_config: Mapping[str, str]) -> Any:
    from pyramid.config import Configurator

    from galaxy_express.http import problems as http_errors

    baseplate, settings = make_baseplate(app_config)
    streams = make_stream_hub(baseplate, settings, app_config)
    configurator = Configurator(
        settings={"galaxy_express.settings": settings, STREAMS_SETTING: streams}
    )
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


def streams_of(app: Any) -> live.Hub | None:
    """The app's live streams (the server ends them when it stops); None for other apps."""
    registry = getattr(app, "registry", None)
    hub = None if registry is None else registry.settings.get(STREAMS_SETTING)
    return hub if isinstance(hub, live.Hub) else None
