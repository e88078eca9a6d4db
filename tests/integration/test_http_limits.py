"""Heads that are too long, too many, too slow or never end, against a real served worker.

Every refusal is a problem+json answer and the connection is closed; memory
held for unfinished heads is bounded by the head limit and returns after.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.abuse import closed_by_server, memory_kib, unfinished_head
from tests.launched import ROOT, Launched, launch

pytestmark = pytest.mark.slow  # starts processes or runs many generated cases

TIMEOUTS = {"head_timeout": "1 seconds", "body_timeout": "1 seconds"}
TIMEOUTS |= {"keepalive_timeout": "1 seconds"}


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, redis_server_url: str
) -> Iterator[Launched]:
    var = tmp_path_factory.mktemp("http-limits")
    parser = configparser.RawConfigParser()
    parser.read(ROOT / "configs" / "test.ini")
    for key, value in TIMEOUTS.items():
        parser.set("server:main", key, value)
    config = var / "limits.ini"
    with config.open("w") as out:
        parser.write(out)
    database = var / "galaxy.db"
    database.write_bytes(sqlite_template.read_bytes())
    servers = launch(
        f"sqlite:///{database}", f"{redis_server_url}/4", var, workers=1, config=config, quiet=True
    )
    try:
        servers.wait_until_serving(http_workers=1)
        yield servers
    finally:
        servers.stop()


def exchange(servers: Launched, data: bytes, wait: float = 5) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` raw; the status, headers and body the server answers, then closes."""
    with socket.create_connection(("127.0.0.1", servers.http_port), timeout=wait) as sock:
        with contextlib.suppress(OSError):  # refused before all was sent
            sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def assert_problem(answer: tuple[int, dict[str, str], bytes], status: int) -> dict[str, object]:
    got, headers, body = answer
    assert got == status, body
    assert headers["content-type"].startswith("application/problem+json")
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert problem["status"] == status
    assert problem["type"].startswith("urn:galaxy-express:")
    return dict(problem)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /health HTTP/1.1\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"GET /health HTTP/1.1\r\n" + b"X-Many: v\r\n" * 101 + b"\r\n", 431),
        (b"GET /health HTTP/1.1\r\n" + (b"X-Big: " + b"b" * 8000 + b"\r\n") * 9 + b"\r\n", 431),
        (b"GET /health HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n", 400),
        (b"GET /health HTTP/7.3\r\n\r\n", 400),
        (b"POST /v1/packages HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
    ],
    ids=["request-line", "header-line", "header-count", "head-size", "folded", "version", "length"],
)
def test_a_head_over_a_limit_or_malformed_is_a_problem(
    served: Launched, request_bytes: bytes, status: int
) -> None:
    assert_problem(exchange(served, request_bytes), status)
    assert served.request("GET", "/health")[0] == 200


def test_a_slow_head_is_a_408_in_time(served: Launched) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", served.http_port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        answer = b""
        for _ in range(20):  # a header byte every 100 ms: each read is quick, the head is not
            try:
                sock.sendall(b"X")
            except OSError:
                break
            time.sleep(0.1)
        sock.settimeout(3)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert b"application/problem+json" in answer
    assert time.monotonic() - started < 2


def test_a_slow_body_is_a_408_and_closed(served: Launched) -> None:
    head = b"POST /v1/packages HTTP/1.1\r\nContent-Type: application/json\r\n"
    with socket.create_connection(("127.0.0.1", served.http_port), timeout=5) as sock:
        sock.sendall(head + b"Content-Length: 100\r\n\r\n{")
        status, headers, body = exchange_rest(sock)
    assert status == 408, body
    assert headers["content-type"].startswith("application/problem+json")


def exchange_rest(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_an_idle_kept_alive_connection_is_closed_quietly(served: Launched) -> None:
    with socket.create_connection(("127.0.0.1", served.http_port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert closed_by_server(sock, seconds=3)
        assert 0.8 < time.monotonic() - started < 2.5


def test_memory_held_by_unfinished_heads_is_bounded_and_returns(served: Launched) -> None:
    [worker] = served.http_workers()
    before = memory_kib(worker)["VmRSS"]
    # 50 connections each sending 97 header lines of 64 KB (6 MB each), never finishing.
    sockets = [unfinished_head("127.0.0.1", served.http_port, 97, 65536) for _ in range(50)]
    during = memory_kib(worker)["VmRSS"]
    for sock in sockets:
        sock.close()
    time.sleep(0.5)
    after = memory_kib(worker)["VmRSS"]
    assert during - before < 32 * 1024, (before, during)
    assert after - before < 16 * 1024, (before, after)
    assert served.request("GET", "/health")[0] == 200


def test_the_document_declares_the_servers_own_answers(served: Launched) -> None:
    status, _, document = served.request("GET", "/openapi.json")
    assert status == 200
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for code in ("400", "408", "414", "431"):
                answer = operation["responses"][code]["content"]
                assert "application/problem+json" in answer, (method, path, code)
