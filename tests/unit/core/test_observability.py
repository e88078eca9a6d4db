"""With tracing off, spans are dropped and a module's tracer is made once, not per call."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from galaxy_express.core import observability


def _switched_off(monkeypatch: Any, *, enabled: bool) -> TracerProvider:
    provider = TracerProvider()
    monkeypatch.setattr(observability.trace, "get_tracer_provider", lambda: provider)
    settings = replace(_any_settings(), tracing_enabled=enabled)
    observability.configure_tracing(settings)
    return provider


def _any_settings() -> Any:
    from galaxy_express.core.config import parse_settings

    return parse_settings({})


def test_tracing_off_drops_spans_and_reuses_each_modules_tracer(monkeypatch: Any) -> None:
    provider = _switched_off(monkeypatch, enabled=False)

    first, again = provider.get_tracer("some.module"), provider.get_tracer("some.module")
    other = provider.get_tracer("other.module")

    assert provider.sampler is ALWAYS_OFF
    assert first is again
    assert other is not first
    with first.start_as_current_span("call") as span:
        assert not span.is_recording()
    # Attributes are not a cache key: such a tracer is made afresh.
    assert provider.get_tracer("some.module", attributes={"a": "b"}) is not first


def test_tracing_on_leaves_the_provider_alone(monkeypatch: Any) -> None:
    provider = _switched_off(monkeypatch, enabled=True)

    assert provider.sampler is not ALWAYS_OFF
    assert provider.get_tracer("some.module") is not provider.get_tracer("some.module")
