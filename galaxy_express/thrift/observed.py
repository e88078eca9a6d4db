"""baseplate's Thrift instrumentation without the OpenTelemetry span, for tracing off.

``baseplateify_processor`` wraps every call in baseplate's server span (the
request context, its observers: logging, the server timeout) and, inside it,
an OpenTelemetry server span with its attributes, an event, a status and the
W3C headers' context attached. With tracing off (``core/observability``) the
sampler drops every OpenTelemetry span, yet building and discarding it was a
large share of a Thrift call's own cost (the HTTP edge drops its
OpenTelemetry tween for the same reason). ``observe_processor`` does
everything else baseplate's wrapper does, in the same order: the context
from the THeader headers (trace, edge context, deadline budget, user agent),
the server span and its tags, the same ``thrift_server_*`` metrics with the
same labels (baseplate's own metric objects), and unexpected errors turned
into ``Error(INTERNAL_SERVER_ERROR)``. The labelled metrics of a method's
success are looked up once, not per call. With tracing on, the app uses
baseplate's wrapper unchanged.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any, cast

from baseplate import Baseplate, RequestContext, ServerSpan, TraceInfo
from baseplate.frameworks.thrift import PROM_ACTIVE, PROM_LATENCY, PROM_REQUESTS
from baseplate.thrift.ttypes import Error, ErrorCode
from requests.structures import CaseInsensitiveDict
from thrift.protocol.TProtocol import TProtocolBase, TProtocolException
from thrift.Thrift import TApplicationException, TException, TProcessor
from thrift.transport.TTransport import TTransportException

Process = Callable[[Any, int, TProtocolBase, TProtocolBase], Any]
STATUS_NAMES: Mapping[int, str] = ErrorCode._VALUES_TO_NAMES


def observe_processor(processor: TProcessor, baseplate: Baseplate) -> TProcessor:
    """The processor with every method observed as ``baseplateify_processor`` does
    (``convert_to_baseplate_error`` on), less the OpenTelemetry span."""
    handler = processor._handler
    processor._processMap = {
        name: _observed_process(name, process, handler, baseplate)
        for name, process in processor._processMap.items()
    }
    processor.baseplate = baseplate  # the server names the service from it
    return processor


def _observed_process(name: str, process: Process, handler: Any, baseplate: Baseplate) -> Process:
    method = getattr(handler, name)
    metrics = _MethodMetrics(name)

    def observed_process(self: Any, seqid: int, iprot: TProtocolBase, oprot: TProtocolBase) -> Any:
        context = baseplate.make_context_object()
        span = _server_span(baseplate, context, name, iprot)

        def call(*args: Any, **kwargs: Any) -> Any:
            return _observed_call(span, metrics, lambda: method(context, *args, **kwargs))

        # The generated process_<name> reads its arguments, calls ``self._handler.<name>``
        # and writes the answer: here the handler is this call's observed method.
        return process(
            SimpleNamespace(_handler=SimpleNamespace(**{name: call})), seqid, iprot, oprot
        )

    return observed_process


def _server_span(
    baseplate: Baseplate, context: RequestContext, name: str, iprot: TProtocolBase
) -> ServerSpan:
    """The context and server span of a call, from its THeader headers (as baseplate's)."""
    headers = cast(Mapping[bytes, bytes], CaseInsensitiveDict(data=iprot.get_headers()))
    trace_info: TraceInfo | None
    try:
        flags = headers.get(b"Flags", None)
        trace_info = TraceInfo.from_upstream(
            trace_id=headers[b"Trace"].decode(),
            parent_id=headers[b"Parent"].decode(),
            span_id=str(random.getrandbits(64)),
            sampled=headers.get(b"Sampled") == b"1",
            flags=int(flags) if flags is not None else None,
        )
    except (KeyError, ValueError):
        trace_info = None
    context.raw_edge_context = headers.get(b"Edge-Request", None)
    try:
        context.deadline_budget = float(headers[b"Deadline-Budget"].decode()) / 1000
    except (KeyError, ValueError):
        context.deadline_budget = None
    span = baseplate.make_server_span(context, name=name, trace_info=trace_info)
    span.set_tag("protocol", "thrift")
    with contextlib.suppress(KeyError, UnicodeDecodeError):
        span.set_tag("peer.service", headers[b"User-Agent"].decode())
    context.headers = headers
    return span


class _MethodMetrics:
    """baseplate's ``thrift_server_*`` metrics of one method; a success's children kept."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.active = PROM_ACTIVE.labels(name)
        self.succeeded = PROM_REQUESTS.labels(
            thrift_method=name,
            thrift_success="true",
            thrift_exception_type="",
            thrift_baseplate_status="",
            thrift_baseplate_status_code="",
        )
        self.succeeded_latency = PROM_LATENCY.labels(name, "true")

    def count(self, seconds: float, exc: BaseException | None) -> None:
        if exc is None:
            self.succeeded.inc()
            self.succeeded_latency.observe(seconds)
            return
        # Any exception with a ``code`` is read as baseplate's Error (as baseplate does:
        # a service may compile its own copy of the Error struct).
        try:
            code = exc.code  # type: ignore[attr-defined]
            status = STATUS_NAMES.get(code, "")
        except AttributeError:
            code = status = ""
        PROM_REQUESTS.labels(
            thrift_method=self.name,
            thrift_success="false",
            thrift_exception_type=type(exc).__name__,
            thrift_baseplate_status=status,
            thrift_baseplate_status_code=code,
        ).inc()
        PROM_LATENCY.labels(self.name, "false").observe(seconds)


def _observed_call(span: ServerSpan, metrics: _MethodMetrics, call: Callable[[], Any]) -> Any:
    """One handler call in the server span, its outcome tagged and counted as baseplate's."""
    span.set_tag("thrift.method", metrics.name)
    started = time.perf_counter()
    failure: BaseException | None = None
    try:
        span.start()
        with metrics.active.track_inprogress():
            result = call()
    except (TApplicationException, TProtocolException, TTransportException) as exc:
        # Thrift's own failures, not the handler's outcomes.
        failure = exc
        span.finish(exc_info=sys.exc_info())
        raise
    except Error as exc:
        failure = exc
        span.set_tag("exception_type", "Error")
        span.set_tag("thrift.status_code", exc.code)
        span.set_tag("thrift.status", STATUS_NAMES.get(exc.code, ""))
        span.set_tag("success", "false")
        # A 5xx is still a failure; a 4xx is an expected answer.
        span.finish(exc_info=sys.exc_info() if 500 <= exc.code < 600 else None)
        raise
    except TException as exc:
        # An exception the IDL declares: an expected answer.
        failure = exc
        span.set_tag("exception_type", type(exc).__name__)
        span.set_tag("success", "false")
        span.finish()
        raise
    except BaseException:
        # The handler crashed (or timed out): the client gets an internal error.
        span.finish(exc_info=sys.exc_info())
        internal = Error(code=ErrorCode.INTERNAL_SERVER_ERROR, message="Internal server error")
        failure = internal
        raise internal  # noqa: B904 (as baseplate's: the crash stays its context)
    else:
        span.finish()
        return result
    finally:
        metrics.count(time.perf_counter() - started, failure)
