"""galaxy_express.thrift.observed: a call is tagged, finished and counted as baseplate's
own Thrift wrapper does it, less the OpenTelemetry span."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from baseplate.frameworks.thrift import _ContextAwareHandler
from baseplate.thrift.ttypes import Error, ErrorCode
from opentelemetry import trace
from prometheus_client import REGISTRY

from galaxy_express.thrift import observed


class _Span:
    """What a call does to its server span, recorded."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def set_tag(self, key: str, value: Any) -> None:
        self.events.append(("tag", key, value))

    def start(self) -> None:
        self.events.append(("start",))

    def finish(self, exc_info: Any = None) -> None:
        self.events.append(("finish", None if exc_info is None else exc_info[0]))


class _Handler:
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    def __getattr__(self, name: str) -> Any:
        def method(context: Any, *args: Any) -> Any:
            if isinstance(self.outcome, BaseException):
                raise self.outcome
            return self.outcome

        return method


def _requests(method: str) -> dict[tuple[tuple[str, str], ...], float]:
    """thrift_server_requests_total's samples of a method, by their other labels."""
    counts: dict[tuple[tuple[str, str], ...], float] = {}
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if (
                sample.name == "thrift_server_requests_total"
                and sample.labels.get("thrift_method") == method
            ):
                labels = dict(sample.labels)
                del labels["thrift_method"]
                counts[tuple(sorted(labels.items()))] = sample.value
    return counts


def _latencies(method: str, success: str) -> float | None:
    return REGISTRY.get_sample_value(
        "thrift_server_latency_seconds_count",
        {"thrift_method": method, "thrift_success": success},
    )


def _outcome(call: Any) -> Any:
    try:
        return ("answer", call())
    except Exception as exc:
        return ("raised", type(exc), getattr(exc, "code", None))


def _through_baseplate(method: str, outcome: Any) -> tuple[Any, _Span]:
    span = _Span()
    context = type("Context", (), {"span": span, "headers": {}})()
    handler = _ContextAwareHandler(
        _Handler(outcome), context, logging.getLogger(__name__), True, trace.get_tracer(__name__)
    )
    return _outcome(lambda: getattr(handler, method)()), span


def _through_ours(method: str, outcome: Any) -> tuple[Any, _Span]:
    span = _Span()
    metrics = observed._MethodMetrics(method)
    call = _Handler(outcome).__getattr__(method)
    return _outcome(lambda: observed._observed_call(span, metrics, lambda: call(None))), span


@pytest.mark.parametrize(
    "outcome",
    [
        "an answer",
        Error(code=422, message="invalid"),
        Error(code=503, message="down"),
        Error(code=ErrorCode.NOT_FOUND, message="none"),
        ValueError("a bug"),
    ],
    ids=["success", "422", "503", "404", "crash"],
)
def test_a_call_is_answered_tagged_and_counted_as_baseplates_wrapper_does(outcome: Any) -> None:
    answers, spans, counted, timed = [], [], [], []
    for name, through in (("m_baseplate", _through_baseplate), ("m_ours", _through_ours)):
        before = _requests(name)
        answer, span = through(name, outcome)
        after = _requests(name)
        answers.append(answer)
        spans.append([e if e[:2] != ("tag", "thrift.method") else e[:2] for e in span.events])
        counted.append({k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k)})
        timed.append(
            {s: _latencies(name, s) for s in ("true", "false") if _latencies(name, s) is not None}
        )

    assert answers[0] == answers[1]
    assert spans[0] == spans[1]
    assert counted[0] == counted[1]
    assert sum(counted[0].values()) == 1
    assert timed[0] == timed[1]


@pytest.mark.parametrize("tracing", ["false", "true"])
def test_the_processor_is_observed_by_baseplates_wrapper_only_with_tracing_on(
    tracing: str, sqlite_url: str, redis_url: str, tmp_path: Any
) -> None:
    from galaxy_express.thrift.app import make_processor
    from tests.conftest import load_app_config

    config = load_app_config(
        "app:thrift", **{"db.url": sqlite_url, "redis.url": redis_url, "tracing.enabled": tracing}
    )

    processor = make_processor(config)

    wrapper = processor._processMap["send_package"].__name__
    assert wrapper == (
        "observed_process" if tracing == "false" else "call_processor_with_span_context"
    )
