"""Tracing that never blocks the process.

``baseplate-serve`` always installs an OTLP exporter to localhost:4317. With
no collector there its retries sleep unpatched and freeze the gevent process.
Unless ``tracing.enabled`` is set (and OTEL_EXPORTER_OTLP_ENDPOINT points at a
real collector), every span is dropped before it is recorded, so the exporter
never runs.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from galaxy_express.core.config import Settings


def configure_tracing(settings: Settings) -> None:
    if settings.tracing_enabled:
        return
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        # Tracers are made lazily, on first use, from the provider's sampler.
        provider.sampler = ALWAYS_OFF
