"""The servers' factories and the gevent WSGI handler the HTTP server uses.

Two measured traps of gevent's pywsgi are avoided here:
- headers and body leave in separate sends, so without TCP_NODELAY every
  keep-alive request waits ~40 ms for the peer's delayed ACK;
- a connection whose next request is already buffered is served again at
  once, starving the others; yielding after each request keeps them fair.
Headers and the first part of the body also leave in one send here: one
syscall and one segment per response instead of two (a tenth of the CPU of
a small answer went to sending it).

The handler also bounds each request's head (request line, header lines,
their number and total size: 414/431) and the time its head and body may take
(408), answering with problem+json while reading, so a client that never
finishes a head holds at most ``max_head_size`` (``HttpLimits``).

The factories (``[server:main]`` and ``[server:thrift]`` ``factory``) are
baseplate's (Thrift's with limits, ``galaxy_express.thrift.server``), after
the steps that only a serving worker wants:
- it accepts one connection per wake-up, and leaves the next one to an
  idler worker sharing its socket (``galaxy_express.runtime.balance``);
- the WAL of a SQLite database is checkpointed by a thread of its own
  (``galaxy_express.db.wal_checkpoints``), not inside requests;
- everything startup built is frozen out of the garbage collector's way. A
  worker holds a few hundred thousand long-lived objects (modules, SQLAlchemy
  and pydantic models, Pyramid's registry), and each full collection walked
  them all, stopping every request of the process for 40-120 ms a few times
  a minute under load (the benchmark's p99.9); frozen, a full collection
  takes about a millisecond.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import gevent
from baseplate.lib import config
from baseplate.server import wsgi as baseplate_wsgi
from gevent.pywsgi import LoggingLogAdapter, OldMessage, WSGIHandler
from gevent.server import StreamServer
from sqlalchemy.orm import configure_mappers

from galaxy_express.core import errors
from galaxy_express.core.cooperation import let_the_sockets_in
from galaxy_express.db import wal_checkpoints
from galaxy_express.http.app import streams_of
from galaxy_express.http.web import problem_response
from galaxy_express.inbox import live
from galaxy_express.runtime import balance
from galaxy_express.thrift import server as thrift_server

ServerFactory = Callable[[dict[str, str], socket.socket, Any], StreamServer]


def _serving(make_server: ServerFactory) -> ServerFactory:
    """baseplate's server factory, followed by the worker's preparation."""

    def make_serving_server(
        server_config: dict[str, str], listener: socket.socket, app: Any
    ) -> StreamServer:
        server = make_server(server_config, listener, app)
        balance.share_accepts(server)
        _prepare_worker()
        return server

    return make_serving_server


make_thrift_server = _serving(thrift_server.make_server)


@dataclass(frozen=True)
class HttpLimits:
    """The ``[server:main]`` limits on what a client may make the server hold or wait for.

    Each is enforced while reading, so no connection holds more than
    ``max_head_size`` of head, nor a worker more than that per connection.
    """

    # Under gevent's own 8,192-byte cap, which answers an empty 414.
    max_request_line: int = 8190
    max_header_line: int = 8192
    max_headers: int = 100
    max_head_size: int = 65536
    # Waiting for the next request on a kept-alive connection (then closed quietly).
    keepalive_timeout: float = 60.0
    # From the connection's start, or the next request's first byte, to the head's end.
    head_timeout: float = 10.0
    # From the head's end to the body's end.
    body_timeout: float = 30.0
    # One send of the answer (a live stream's too): a client that stops reading is dropped.
    write_timeout: float = 30.0


DEFAULT_HTTP_LIMITS = HttpLimits()

_HTTP_SPEC = {
    "max_request_line": config.Optional(config.Integer, default=HttpLimits.max_request_line),
    "max_header_line": config.Optional(config.Integer, default=HttpLimits.max_header_line),
    "max_headers": config.Optional(config.Integer, default=HttpLimits.max_headers),
    "max_head_size": config.Optional(config.Integer, default=HttpLimits.max_head_size),
    **{
        name: config.Optional(config.Timespan, default=timedelta(seconds=getattr(HttpLimits, name)))
        for name in ("keepalive_timeout", "head_timeout", "body_timeout", "write_timeout")
    },
}


def parse_http_limits(server_config: dict[str, str]) -> HttpLimits:
    raw = config.parse_config(server_config, _HTTP_SPEC)
    limits = HttpLimits(
        max_request_line=raw.max_request_line,
        max_header_line=raw.max_header_line,
        max_headers=raw.max_headers,
        max_head_size=raw.max_head_size,
        keepalive_timeout=raw.keepalive_timeout.total_seconds(),
        head_timeout=raw.head_timeout.total_seconds(),
        body_timeout=raw.body_timeout.total_seconds(),
        write_timeout=raw.write_timeout.total_seconds(),
    )
    if not 16 <= limits.max_request_line <= HttpLimits.max_request_line:
        raise ValueError(f"max_request_line must be 16..{HttpLimits.max_request_line}")
    if min(limits.max_header_line, limits.max_headers, limits.max_head_size) < 1:
        raise ValueError("[server:main] header limits must be positive")
    return limits


def make_http_server(
    server_config: dict[str, str], listener: socket.socket, app: Any
) -> StreamServer:
    """The ``[server:main]`` factory: baseplate's, with the head and body limits.

    Its ``stop`` (baseplate calls it after the drain time) also ends the live
    streams, right after the listening socket closes: each finishes its answer,
    so the worker exits within the drain instead of at ``stop_timeout``, and
    the clients' reconnections go to the workers still listening.
    """
    limits = parse_http_limits(server_config)
    server = _serving(baseplate_wsgi.make_server)(server_config, listener, app)
    server.http_limits = limits
    server.stop = _ending_streams_first(server, streams_of(app))
    return server


def _ending_streams_first(server: StreamServer, streams: live.Hub | None) -> Callable[..., None]:
    stop = server.stop

    def stop_ending_streams(timeout: float | None = None) -> None:
        server.close()
        if streams is not None:
            streams.shut_down()
        stop(timeout)

    return stop_ending_streams


class _HeadRefused(Exception):
    """A head over a limit or too slow: answered with ``error`` and the connection closed."""

    def __init__(self, error: errors.ServiceError) -> None:
        super().__init__(error.detail)
        self.error = error


class _BodyTimeout(errors.RequestTimeout, OSError):
    """A body too slow. A ``RequestTimeout`` to the app (a 408 problem), and an
    ``OSError`` to gevent, which then drops the rest of the body quietly."""


def read_head(fp: Any, limits: HttpLimits = DEFAULT_HTTP_LIMITS, head_bytes: int = 0) -> OldMessage:
    """A request's header fields, as gevent's parser reads them, minus the email package.

    gevent parses headers with http.client, which hands them to the email
    package's feed parser: 19 microseconds for a usual head, 2 here.
    What HTTP/1.1 forbids in a head (folded lines, a line that is no field,
    white space before the colon) is refused here; gevent answers 400 when
    ``status`` is set. A head over the limits (``head_bytes`` already read for
    the request line) is a 431, refused before more of it is read.
    """
    head = OldMessage()
    for _ in range(limits.max_headers + 1):
        line = fp.readline(limits.max_header_line + 1)
        head_bytes += len(line)
        if len(line) > limits.max_header_line:
            raise _HeadRefused(
                errors.HeaderFieldsTooLarge(f"a header line is over {limits.max_header_line} bytes")
            )
        if head_bytes > limits.max_head_size:
            raise _HeadRefused(
                errors.HeaderFieldsTooLarge(
                    f"the request head is over {limits.max_head_size} bytes"
                )
            )
        if line in (b"\r\n", b"\n", b""):
            return head
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            head.status = "Invalid header line"
            return head
        head[name] = value.strip()
    raise _HeadRefused(errors.HeaderFieldsTooLarge(f"more than {limits.max_headers} header fields"))


def _prepare_worker() -> None:
    wal_checkpoints.start_for_tracked_engines()
    configure_mappers()  # otherwise done, building many objects, at the first query
    gc.collect()
    gc.freeze()


# What a connection's reader buffers: a request's head and a small body in one
# receive. gevent's default is Python's 8 KB, held for the connection's life, so
# a worker with 1,000 live streams open held 8 MB of read buffers for requests
# long read. A longer head takes a few receives; a larger body is read straight
# into its bytes, past the buffer.
READ_BUFFER_BYTES = 2048


class FairWSGIHandler(WSGIHandler):
    _head_timer: gevent.Timeout | None = None
    _held: list[bytes] | None = None
    _requests_read = 0

    def __init__(self, sock: socket.socket, address: Any, server: Any) -> None:
        super().__init__(sock, address, server, rfile=sock.makefile("rb", READ_BUFFER_BYTES))

    @property
    def limits(self) -> HttpLimits:
        return getattr(self.server, "http_limits", DEFAULT_HTTP_LIMITS)

    def handle(self) -> Any:
        with contextlib.suppress(OSError):  # not TCP (a Unix socket): nothing to tune
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().handle()

    def handle_one_request(self) -> Any:
        try:
            result = super().handle_one_request()
        except _HeadRefused as refused:  # raised while reading the request line
            result = self._refusal(refused.error)
        finally:
            self._stop_head_timer()
        # After the answer and before the next request: the sockets get a turn.
        let_the_sockets_in()
        return result

    def read_requestline(self) -> str:
        limits = self.limits
        if self._requests_read and self.server.closed:
            return ""  # the server is stopping: close rather than wait for another request
        if self._requests_read and not self._next_request_begins(limits.keepalive_timeout):
            return ""  # idle too long, or gone: gevent closes the connection
        self._requests_read += 1
        self._head_timer = gevent.Timeout.start_new(
            limits.head_timeout,
            _HeadRefused(errors.RequestTimeout(f"the head took over {limits.head_timeout:g} s")),
        )
        line: bytes = self.rfile.readline(limits.max_request_line + 1)
        if len(line) > limits.max_request_line:
            detail = f"the request line is over {limits.max_request_line} bytes"
            raise _HeadRefused(errors.UriTooLong(detail))
        return line.decode("latin-1")

    def _next_request_begins(self, seconds: float) -> bool:
        with gevent.Timeout(seconds, False):
            return bool(self.rfile.peek(1))
        return False

    def read_request(self, raw_requestline: str) -> Any:
        try:
            return super().read_request(raw_requestline)
        finally:
            self._stop_head_timer()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.close()
            self._head_timer = None

    def MessageClass(self, fp: Any, *_args: Any) -> OldMessage:  # noqa: N802 (gevent's name)
        return read_head(fp, self.limits, head_bytes=len(self.requestline) + 2)

    def get_environ(self) -> Any:
        environ = super().get_environ()
        self.wsgi_input.rfile = _BodyDeadline(self, self.limits.body_timeout)
        return environ

    def _handle_client_error(self, ex: Exception) -> Any:
        # gevent answers a bad head with an empty 400; answer a problem instead.
        if isinstance(ex, _HeadRefused):
            return self._refusal(ex.error)
        self.log_error("refused a request head from %s: %s", self.client_address, ex)
        return self._refusal(errors.MalformedRequest("the request head is malformed"))

    def _refusal(self, error: errors.ServiceError) -> tuple[str, bytes]:
        """gevent's (status, whole response) for a request refused before the app saw it."""
        response = problem_response(error)
        head = [f"HTTP/1.1 {response.status}"]
        head += [f"{name}: {value}" for name, value in response.headerlist]
        head += ["Connection: close", "", ""]
        return str(error.status), "\r\n".join(head).encode("latin-1") + response.body

    def _send_error_response_if_possible(self, error_code: int) -> None:
        # gevent's own answers (a broken chunked body, an error after the app) as problems.
        if self.response_length:
            self.close_connection = True
            return
        error: errors.ServiceError
        if error_code == 400:
            error = errors.MalformedRequest("the request body is malformed")
        else:
            error = errors.ServiceError("an unexpected error occurred; it was logged")
        response = problem_response(error)
        try:
            self.start_response(response.status, response.headerlist)
            self.write(response.body)
        except OSError:
            self.close_connection = True

    def log_request(self) -> None:
        # baseplate logs each request at DEBUG: the line was formatted (about
        # 1% of a small request's CPU) even when the level drops it.
        log = self.server.log
        if isinstance(log, LoggingLogAdapter) and not log._logger.isEnabledFor(log._level):
            return
        super().log_request()

    def _sendall(self, data: bytes) -> None:
        if self._held is not None:  # the head, held until the body's first part joins it
            self._held.append(data)
            return
        # A client that stops reading fills the socket's buffers, and a send then
        # waits forever (a stream's heartbeat too): drop it after write_timeout.
        seconds = self.limits.write_timeout
        with gevent.Timeout(seconds, _WriteTimeout(f"the client read nothing for {seconds:g} s")):
            super()._sendall(data)

    def _write_with_headers(self, data: bytes) -> None:
        # gevent sends the head, then the body; hold both and send them together.
        self._held = []
        try:
            super()._write_with_headers(data)
            held = b"".join(self._held)
        finally:
            self._held = None
        self._sendall(held)


class _WriteTimeout(OSError):
    """A send that did not finish in time: to gevent, a lost client (closed quietly)."""

    def __init__(self, detail: str) -> None:
        super().__init__(errno.EPIPE, detail)


class _BodyDeadline:
    """The connection's reader for one request's body: it must arrive by the deadline."""

    def __init__(self, handler: FairWSGIHandler, seconds: float) -> None:
        self._handler, self._seconds = handler, seconds
        self._raw = handler.rfile
        self._deadline = time.monotonic() + seconds

    def read(self, size: int = -1) -> bytes:
        return self._in_time(self._raw.read, size)

    def readline(self, size: int = -1) -> bytes:
        return self._in_time(self._raw.readline, size)

    def _in_time(self, read: Callable[[int], bytes], size: int) -> bytes:
        timeout = _BodyTimeout(f"the body took over {self._seconds:g} s")
        remaining = self._deadline - time.monotonic()
        if remaining > 0:
            with gevent.Timeout(remaining, timeout):
                return read(size)
        self._handler.close_connection = True
        raise timeout
