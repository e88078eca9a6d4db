"""Abuse both edges of a served worker and print what other callers and memory saw.

    .venv/bin/python -m gevent.monkey scripts/abuse.py

Starts the service as `make run` does (1 HTTP and 1 Thrift worker, its own
SQLite file under var/abuse and an embedded Redis on a free port), then:

- Thrift: ``is_healthy`` latency on one connection, quiet and while three
  clients send the length bombs of tests/abuse.py over and over (a 60-byte
  frame whose list claims 2**31 - 1 strings, a 2 GiB string, a 1 GiB frame, on
  each protocol), and the Thrift worker's memory before and after;
- HTTP: the HTTP worker's RSS before, during and after 50 connections each
  sending a request line and 97 header lines of 64 KB, never finishing.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import sys
import time
from pathlib import Path

import gevent

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from galaxy_express.runtime import migrate
from tests.abuse import (
    THRIFT_BOMBS,
    closed_by_server,
    is_healthy_seconds,
    memory_kib,
    unfinished_head,
)
from tests.launched import ROOT, children, cmdline, free_port, launch


def main() -> None:
    var = ROOT / "var" / "abuse"
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    database_url = f"sqlite:///{var / 'abuse.db'}"
    migrate.upgrade(database_url)
    service = launch(database_url, f"redis://127.0.0.1:{free_port()}/0", var, workers=1, quiet=True)
    try:
        service.wait_until_serving(http_workers=1)
        [thrift] = [pid for pid in children(service.process.pid) if "thrift" in cmdline(pid)]
        thrift_bombs(("127.0.0.1", service.thrift_port), thrift)
        [http] = service.http_workers()
        unfinished_heads(service.http_port, http)
    finally:
        service.stop()


def thrift_bombs(address: tuple[str, int], worker: int) -> None:
    quiet = is_healthy_seconds(*address, calls=400)
    before = memory_kib(worker)

    def bombard(seconds: float) -> int:
        sent, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            for bomb in THRIFT_BOMBS.values():
                with socket.create_connection(address, timeout=5) as sock:
                    sock.sendall(bomb)
                    closed_by_server(sock, seconds=2)
                sent += 1
        return sent

    bombers = [gevent.spawn(bombard, 5) for _ in range(3)]
    during = is_healthy_seconds(*address, calls=400)
    sent = sum(bomber.get() for bomber in bombers)
    after = memory_kib(worker)
    print(f"thrift is_healthy, quiet:             {latencies(quiet)}")
    print(f"thrift is_healthy, during {sent:,} bombs: {latencies(during)}")
    print(f"thrift worker before: {sizes(before)}")
    print(f"thrift worker after:  {sizes(after)}")


def unfinished_heads(port: int, worker: int) -> None:
    before = memory_kib(worker)["VmRSS"]
    sockets = [unfinished_head("127.0.0.1", port, 97, 65536) for _ in range(50)]
    during = memory_kib(worker)["VmRSS"]
    for sock in sockets:
        sock.close()
    time.sleep(1)
    after = memory_kib(worker)["VmRSS"]
    print(
        "http worker RSS, 50 unfinished heads of 97 x 64 KB: "
        f"before {before / 1024:.1f} MiB, during {during / 1024:.1f}, after {after / 1024:.1f}"
    )


def latencies(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[int(len(ordered) * 0.99)]
    return (
        f"p50 {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, "
        f"max {ordered[-1] * 1000:.2f} ms"
    )


def sizes(kib: dict[str, int]) -> str:
    return ", ".join(f"{name} {value / 1024:.1f} MiB" for name, value in sorted(kib.items()))


if __name__ == "__main__":
    main()
