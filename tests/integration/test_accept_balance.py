"""One accept queue per port, shared fairly by the launcher's workers (real sockets, /proc).

The launcher binds each port once and its workers inherit the socket
(galaxy_express.runtime.launcher); each wake-up accepts the worker's share of the
open and queued connections, and it leaves the next to an idler worker while it
holds more than its share
(galaxy_express.runtime.balance). Under SO_REUSEPORT the kernel hashed
connections over the workers at connect time: 64 split 38/26 in the bench.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.launched import ROOT, Launched, launch
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # starts processes

CONNECTIONS = 64
HEALTH = b"GET /health HTTP/1.1\r\nHost: galaxy\r\nConnection: close\r\n\r\n"


@pytest.fixture
def two_http_workers(sqlite_url: str, redis_url: str, tmp_path: Path) -> Iterator[Launched]:
    launched = launch(sqlite_url, redis_url, tmp_path / "var", workers=2, thrift_workers=0)
    try:
        launched.wait_until_serving(http_workers=2)
        yield launched
    finally:
        launched.stop()


def open_at_once(port: int, count: int = CONNECTIONS) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]


def split(
    launched: Launched, workers: Callable[[], list[int]], port: int, count: int = CONNECTIONS
) -> list[int]:
    """Connections each worker holds, once they hold ``count`` in all."""

    def counts() -> list[int]:
        return [launched.accepted_by(pid, port) for pid in workers()]

    wait_until(lambda: sum(counts()) == count, seconds=30, what=f"{count} accepted connections")
    return counts()


def close_all(connections: list[socket.socket]) -> None:
    for connection in connections:
        connection.close()


def answered(connection: socket.socket) -> bytes:
    data = b""
    while chunk := connection.recv(65536):
        data += chunk
    connection.close()
    return data.split(b"\r\n", 1)[0]


def test_64_connections_split_evenly_over_two_http_workers_also_after_a_restart(
    two_http_workers: Launched,
) -> None:
    launched = two_http_workers
    port = launched.http_port
    connections = open_at_once(port)
    first = split(launched, launched.http_workers, port)
    close_all(connections)

    victim = launched.http_workers()[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: len(launched.http_workers()) == 2 and victim not in launched.http_workers(),
        seconds=30,
        what="the killed worker replaced",
    )
    launched.wait_until_serving(http_workers=2)  # the replacement has started up
    connections = open_at_once(port)
    after_restart = split(launched, launched.http_workers, port)
    close_all(connections)

    assert all(abs(count - CONNECTIONS // 2) <= 2 for count in first), first
    assert all(abs(count - CONNECTIONS // 2) <= 2 for count in after_restart), after_restart


def test_64_connections_split_evenly_over_two_thrift_workers(
    sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    launched = launch(sqlite_url, redis_url, tmp_path / "var", workers=1, thrift_workers=2)
    try:
        launched.wait_until_serving()
        wait_until(lambda: len(launched.thrift_workers()) == 2, seconds=30, what="2 Thrift workers")
        launched.wait_until_each_serves(launched.thrift_workers(), launched.thrift_port)
        connections = open_at_once(launched.thrift_port)
        counts = split(launched, launched.thrift_workers, launched.thrift_port)
        close_all(connections)
    finally:
        launched.stop()
    assert all(abs(count - CONNECTIONS // 2) <= 2 for count in counts), counts


def test_a_stuck_worker_does_not_stop_the_other_accepting(two_http_workers: Launched) -> None:
    """SIGSTOPped, a worker holds the lowest count for good: the other's deferrals are
    bounded, so it takes every connection (under SO_REUSEPORT half would wait)."""
    stuck = two_http_workers.http_workers()[0]
    os.kill(stuck, signal.SIGSTOP)
    try:
        started = time.monotonic()
        connections = open_at_once(two_http_workers.http_port, 20)
        for connection in connections:
            connection.sendall(HEALTH)
        statuses = [answered(connection) for connection in connections]
        took = time.monotonic() - started
    finally:
        os.kill(stuck, signal.SIGCONT)
    assert statuses == [b"HTTP/1.1 200 OK"] * 20
    assert took < 5


def test_a_stopping_worker_leaves_the_queued_connections_to_the_others(
    two_http_workers: Launched,
) -> None:
    """Both workers frozen, requests queue in the kernel; one worker then stops
    (SIGTERM) and exits. Its copy of the socket closes, the queue stays: the
    other worker answers every queued request."""
    stopping, other = two_http_workers.http_workers()
    os.kill(other, signal.SIGSTOP)
    os.kill(stopping, signal.SIGSTOP)
    try:
        connections = open_at_once(two_http_workers.http_port, 10)
        for connection in connections:
            connection.sendall(HEALTH)
        os.kill(stopping, signal.SIGTERM)
        os.kill(stopping, signal.SIGCONT)
        wait_until(
            lambda: stopping not in two_http_workers.http_workers(),
            seconds=30,
            what="the stopping worker gone",
        )
    finally:
        os.kill(other, signal.SIGCONT)
    statuses = [answered(connection) for connection in connections]
    assert statuses == [b"HTTP/1.1 200 OK"] * 10


def test_a_second_launcher_on_the_same_port_refuses_to_start(
    two_http_workers: Launched, tmp_path: Path
) -> None:
    port = two_http_workers.http_port
    argv = [sys.executable, "-m", "galaxy_express.runtime.launcher"]
    argv += ["--config", str(ROOT / "configs" / "test.ini"), "--no-reporter", "--no-migrate"]
    argv += ["--workers", "1", "--thrift-workers", "0", "--http-port", str(port)]
    argv += ["--var-dir", str(tmp_path / "second")]
    second = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert second.returncode != 0
    assert f"can't listen on 127.0.0.1:{port}" in second.stderr
    assert two_http_workers.request("GET", "/health")[0] == 200
