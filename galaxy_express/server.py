"""The servers' factories and the gevent WSGI handler the HTTP server uses.

Two measured traps of gevent's pywsgi are avoided here (BASEPLATE-NOTES 1, 2):
- headers and body leave in separate sends, so without TCP_NODELAY every
  keep-alive request waits ~40 ms for the peer's delayed ACK;
- a connection whose next request is already buffered is served again at
  once, starving the others; yielding after each request keeps them fair.
Headers and the first part of the body also leave in one send here: one
syscall and one segment per response instead of two (a tenth of the CPU of
a small answer went to sending it).

The factories (``[server:main]`` and ``[server:thrift]`` ``factory``) are
baseplate's, after two steps that only a serving worker wants:
- the WAL of a SQLite database is checkpointed by a thread of its own
  (``galaxy_express.wal_checkpoints``), not inside requests;
- everything startup built is frozen out of the garbage collector's way. A
  worker holds a few hundred thousand long-lived objects (modules, SQLAlchemy
  and pydantic models, Pyramid's registry), and each full collection walked
  them all, stopping every request of the process for 40-120 ms a few times
  a minute under load (the benchmark's p99.9); frozen, a full collection
  takes about a millisecond.
"""

from __future__ import annotations

import contextlib
import gc
import socket
from collections.abc import Callable
from typing import Any

import gevent
from baseplate.server import wsgi as baseplate_wsgi
from gevent.pywsgi import LoggingLogAdapter, OldMessage, WSGIHandler
from gevent.server import StreamServer
from sqlalchemy.orm import configure_mappers

from galaxy_express import wal_checkpoints
from galaxy_express.thrift import server as thrift_server

ServerFactory = Callable[[dict[str, str], socket.socket, Any], StreamServer]


def _serving(make_server: ServerFactory) -> ServerFactory:
    """baseplate's server factory, followed by the worker's preparation."""

    def make_serving_server(
        server_config: dict[str, str], listener: socket.socket, app: Any
    ) -> StreamServer:
        server = make_server(server_config, listener, app)
        _prepare_worker()
        return server

    return make_serving_server


make_http_server = _serving(baseplate_wsgi.make_server)
make_thrift_server = _serving(thrift_server.make_server)


MAX_HEADER_LINE = 65536  # as http.client
MAX_HEADERS = 100


def read_head(fp: Any) -> OldMessage:
    """A request's header fields, as gevent's parser reads them, minus the email package.

    gevent parses headers with http.client, which hands them to the email
    package's feed parser: 19 microseconds for a usual head, 2 here.
    What HTTP/1.1 forbids in a head (folded lines, a line that is no field,
    white space before the colon) is refused here; gevent answers 400 when
    ``status`` is set.
    """
    head = OldMessage()
    for _ in range(MAX_HEADERS + 1):
        line = fp.readline(MAX_HEADER_LINE + 1)
        if len(line) > MAX_HEADER_LINE:
            head.status = "Line too long"
            return head
        if line in (b"\r\n", b"\n", b""):
            return head
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            head.status = "Invalid header line"
            return head
        head[name] = value.strip()
    head.status = "Too many headers"
    return head


def _prepare_worker() -> None:
    wal_checkpoints.start_for_tracked_engines()
    configure_mappers()  # otherwise done, building many objects, at the first query
    gc.collect()
    gc.freeze()


class FairWSGIHandler(WSGIHandler):
    def handle(self) -> Any:
        with contextlib.suppress(OSError):  # not TCP (a Unix socket): nothing to tune
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().handle()

    def handle_one_request(self) -> Any:
        result = super().handle_one_request()
        gevent.sleep(0)
        return result

    def MessageClass(self, fp: Any, *_args: Any) -> OldMessage:  # noqa: N802 (gevent's name)
        return read_head(fp)

    def log_request(self) -> None:
        # baseplate logs each request at DEBUG: the line was formatted (about
        # 1% of a small request's CPU) even when the level drops it.
        log = self.server.log
        if isinstance(log, LoggingLogAdapter) and not log._logger.isEnabledFor(log._level):
            return
        super().log_request()

    def _write_with_headers(self, data: bytes) -> None:
        # gevent sends the head, then the body; hold both and send them together.
        held: list[bytes] = []
        self._sendall = held.append
        try:
            super()._write_with_headers(data)
        finally:
            del self._sendall
        self._sendall(b"".join(held))
