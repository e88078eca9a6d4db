"""Tracing that never blocks the process.

``baseplate-serve`` always installs an OTLP exporter to localhost:4317. With
no collector there its retries sleep unpatched and freeze the gevent process.
Unless ``tracing.enabled`` is set (and OTEL_EXPORTER_OTLP_ENDPOINT points at a
real collector), every span is dropped before it is recorded, so the exporter
never runs.
"""

from __future__ import annotations

from typing import Any

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
        _reuse_tracers(provider)


def _reuse_tracers(provider: TracerProvider) -> None:
    """Make the provider hand out one tracer per instrumenting module, not one per call.

    baseplate's Thrift processor asks for a tracer twice per call (``trace.get_tracer``
    and a ``ContextAwareTracer``), and the SDK builds a new one each time: a
    deprecated ``InstrumentationInfo``, a ``warnings.filterwarnings`` (which
    mutates the process's warning filters) and the tracer: about a tenth of a
    Thrift worker's CPU per call in a profile. A tracer keeps nothing of a
    call, and with every span dropped the sampler it was built with never
    changes, so the first one made for a module serves every later call.
    """
    make = provider.get_tracer
    made: dict[tuple[Any, ...], trace.Tracer] = {}

    def get_tracer(
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> trace.Tracer:
        if attributes:  # not hashable in general, and rare: made afresh
            return make(
                instrumenting_module_name, instrumenting_library_version, schema_url, attributes
            )
        key = (instrumenting_module_name, instrumenting_library_version, schema_url)
        tracer = made.get(key)
        if tracer is None:
            tracer = made[key] = make(*key)
        return tracer

    provider.get_tracer = get_tracer  # type: ignore[method-assign]
