"""The gevent WSGI handler the HTTP server uses (``[server:main] handler``).

Two measured traps of gevent's pywsgi are avoided here (BASEPLATE-NOTES 1, 2):
- headers and body leave in separate sends, so without TCP_NODELAY every
  keep-alive request waits ~40 ms for the peer's delayed ACK;
- a connection whose next request is already buffered is served again at
  once, starving the others; yielding after each request keeps them fair.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import gevent
from gevent.pywsgi import WSGIHandler


class FairWSGIHandler(WSGIHandler):
    def handle(self) -> Any:
        with contextlib.suppress(OSError):  # not TCP (a Unix socket): nothing to tune
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().handle()

    def handle_one_request(self) -> Any:
        result = super().handle_one_request()
        gevent.sleep(0)
        return result
