"""The HTTP server: whole responses however the app answers, and a worker made ready.

The handler sends the head and the start of the body in one send; responses
of every shape must still arrive exactly as HTTP says: fixed length, empty,
streamed (chunked) in several parts, and large.
"""

from __future__ import annotations

import gc
import http.client
import io
import logging
import socket
import time
from collections.abc import Iterator

import gevent
import pytest
from gevent.pywsgi import LoggingLogAdapter, WSGIServer
from sqlalchemy import create_engine

from galaxy_express import db
from galaxy_express.db import wal_checkpoints
from galaxy_express.runtime.server import (
    READ_BUFFER_BYTES,
    FairWSGIHandler,
    make_http_server,
    read_head,
)


def _app(environ, start_response) -> list[bytes] | Iterator[bytes]:
    path = environ["PATH_INFO"]
    if path == "/small":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"hello"]
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/echo":  # the body, then the X-Long header's value
        said = environ["wsgi.input"].read() + environ.get("HTTP_X_LONG", "").encode()
        start_response("200 OK", [("Content-Length", str(len(said)))])
        return [said]
    if path == "/large":
        body = bytes(range(256)) * 8192  # 2 MiB
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    start_response("200 OK", [("Content-Type", "text/plain")])  # no length: chunked
    return iter([b"first,", b"", b"second,", b"third"])


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    server = WSGIServer(("127.0.0.1", 0), _app, handler_class=FairWSGIHandler, log=None)
    server.start()
    try:
        yield server.server_host, server.server_port
    finally:
        server.stop()


def test_responses_of_every_shape_arrive_whole_on_one_connection(server) -> None:
    host, port = server
    connection = http.client.HTTPConnection(host, port, timeout=10)
    answers = {}
    for path in ("/small", "/empty", "/streamed", "/large", "/small"):
        connection.request("GET", path)
        response = connection.getresponse()
        answers[path] = (response.status, response.getheader("Transfer-Encoding"), response.read())
    connection.close()

    assert answers["/small"] == (200, None, b"hello")
    assert answers["/empty"] == (204, None, b"")
    assert answers["/streamed"] == (200, "chunked", b"first,second,third")
    assert answers["/large"] == (200, None, bytes(range(256)) * 8192)


def test_heads_and_bodies_longer_than_the_read_buffer_arrive_whole(server) -> None:
    host, port = server
    connection = http.client.HTTPConnection(host, port, timeout=10)
    long_header = "h" * (3 * READ_BUFFER_BYTES)
    sent = [(b"b" * 50 * READ_BUFFER_BYTES, long_header), (b"{}", ""), (b"", "x")]
    lengths, intact = [], []
    for body, header in sent:
        connection.request("POST", "/echo", body=body, headers={"X-Long": header})
        echoed = connection.getresponse().read()
        lengths.append(len(echoed))
        intact.append(echoed == body + header.encode())
    connection.close()

    assert lengths == [len(body) + len(header) for body, header in sent]
    assert all(intact)


def test_a_serving_worker_checkpoints_in_the_background_and_freezes_startup(sqlite_url) -> None:
    engine = create_engine(sqlite_url, **db.engine_options(sqlite_url))
    wal_checkpoints.track(engine)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        server = make_http_server({"stop_timeout": "1 seconds"}, listener, _app)
        frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()  # the rest of the test run needs its garbage collected
        listener.close()
    with engine.connect() as connection:
        worker_checkpoints = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()

    assert isinstance(server, WSGIServer)
    assert frozen > 10_000
    assert worker_checkpoints == wal_checkpoints.WORKER_CHECKPOINT_PAGES


def test_the_access_log_line_is_written_only_when_its_level_is_enabled(caplog) -> None:
    logger = logging.getLogger("test.access")
    log = LoggingLogAdapter(logger, level=logging.DEBUG)
    server = WSGIServer(("127.0.0.1", 0), _app, handler_class=FairWSGIHandler, log=log)
    server.start()
    try:
        for level in (logging.INFO, logging.DEBUG):
            caplog.set_level(level, logger="test.access")
            connection = http.client.HTTPConnection(server.server_host, server.server_port)
            connection.request("GET", "/small")
            connection.getresponse().read()
            connection.close()
    finally:
        server.stop()

    lines = [record.getMessage() for record in caplog.records if record.name == "test.access"]
    assert len(lines) == 1
    assert '"GET /small HTTP/1.1" 200' in lines[0]


def test_a_head_is_read_as_gevent_reads_it() -> None:
    head = read_head(
        io.BytesIO(
            b"Host: 127.0.0.1:9090\r\nContent-Type:application/json \r\n"
            b"X-Twice: 1\r\nX-Twice: 2\r\n\r\n{ignored body"
        )
    )
    assert head.status == ""
    assert head.get("host") == "127.0.0.1:9090"
    assert head.typeheader == "application/json"
    assert head.get_all("x-twice") == ["1", "2"]
    assert read_head(io.BytesIO(b"")).status == ""  # the client hung up


@pytest.mark.parametrize(
    "head",
    [
        b"X-Folded: one\r\n two\r\n\r\n",  # obs-fold, which RFC 9112 lets servers refuse
        b"Not a field\r\n\r\n",
        b"X-Space : before the colon\r\n\r\n",
        b": no name\r\n\r\n",
    ],
)
def test_a_head_http_forbids_is_refused(head: bytes) -> None:
    assert read_head(io.BytesIO(head)).status


@pytest.mark.parametrize(
    ("head", "detail"),
    [
        (b"X-Long: " + b"a" * 9000 + b"\r\n\r\n", "a header line is over 8192 bytes"),
        (b"".join(b"X-%d: v\r\n" % n for n in range(101)) + b"\r\n", "more than 100 header"),
        (b"".join(b"X-%d: %s\r\n" % (n, b"v" * 8000) for n in range(9)), "head is over"),
    ],
    ids=["line", "count", "head"],
)
def test_a_head_over_the_limits_is_a_431_before_more_is_read(head: bytes, detail: str) -> None:
    stream = io.BytesIO(head + b"X-After: never read\r\n" * 10)
    with pytest.raises(Exception, match=detail) as refused:
        read_head(stream)
    assert refused.value.error.status == 431  # type: ignore[attr-defined]
    assert stream.tell() <= 65536 + 8193


def test_a_refused_head_is_a_400_and_the_server_goes_on(server) -> None:
    host, port = server
    with socket.create_connection((host, port), timeout=10) as client:
        client.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n")
        assert client.recv(65536).startswith(b"HTTP/1.1 400")
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request("GET", "/small")
    assert connection.getresponse().read() == b"hello"
    connection.close()


def test_a_client_that_stops_reading_is_dropped_after_the_write_timeout() -> None:
    """A streamed answer (a live stream's) to a client that reads nothing fills the
    socket's buffers; the send that then waits is given up after write_timeout."""
    import gevent.event

    from galaxy_express.runtime.server import HttpLimits

    closed = gevent.event.Event()

    class Endless:
        def __iter__(self) -> Iterator[bytes]:
            return self

        def __next__(self) -> bytes:
            return b"x" * 65536

        def close(self) -> None:
            closed.set()

    def endless_app(environ, start_response) -> Endless:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return Endless()

    server = WSGIServer(("127.0.0.1", 0), endless_app, handler_class=FairWSGIHandler, log=None)
    server.http_limits = HttpLimits(write_timeout=0.5)
    server.start()
    try:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect((server.server_host, server.server_port))
        client.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(64).startswith(b"HTTP/1.1 200")
        # ... and reads nothing more: the server's sends stall, then it gives up
        assert closed.wait(10)
        client.close()
    finally:
        server.stop(timeout=1)


def test_a_connection_with_requests_waiting_lets_a_new_one_in_between_its_answers() -> None:
    """Requests that never wait on a socket (SQLite reads run in C) must not keep the
    worker: after each answer the hub polls the sockets before the next buffered
    request. With a bare ``sleep(0)`` the pipelined connection's twenty requests
    were all answered before the other connection was even accepted."""
    served: list[str] = []

    def busy_app(environ, start_response) -> list[bytes]:
        served.append(environ["PATH_INFO"])
        deadline = time.perf_counter() + 0.002  # CPU work, no I/O
        while time.perf_counter() < deadline:
            pass
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server = WSGIServer(("127.0.0.1", 0), busy_app, handler_class=FairWSGIHandler, log=None)
    server.start()
    try:
        host, port = server.address[:2]
        pipelined = socket.create_connection((host, port))
        pipelined.sendall(
            b"".join(f"GET /a{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(20))
        )
        while not served:  # the first of them is being answered
            gevent.sleep(0.001)
        newcomer = http.client.HTTPConnection(host, port, timeout=5)
        newcomer.request("GET", "/b")
        assert newcomer.getresponse().status == 200
        # Accepted, then read, each at one of the hub's polls: 4-5 answers later here,
        # not 20. The bound leaves room for a loaded machine's slower polls; any
        # bound under 20 fails without the yield.
        assert served.index("/b") <= 15, served
        newcomer.close()
        pipelined.close()
    finally:
        server.stop()
