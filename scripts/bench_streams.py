"""The live-stream scenario of ``make bench``: many idle streams open while packages are sent.

``run`` opens ``streams`` Server-Sent Events streams (``GET /v1/inbox/{id}/events``,
each on its own connection and mailbox), then, while they stay open, runs the
caller's send-package load (wrk, in a thread) and, beside it, probes: one
package at a time to a mailbox that has a stream, timing from the send's
answer to its ``delivered`` event on that stream. It answers the probes'
latencies and each worker's RSS with the streams open; every stream is closed
at the end. asyncio, one task per stream: thousands of sockets in one process.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STREAM_PATH = "/v1/inbox/{recipient_id}/events"
OPEN_AT_ONCE = 100  # streams opening concurrently (each reads its first page)
IDLE_SECONDS = 5.0  # streams open, nothing sent: what they cost by themselves
MIN_PROBES = 20  # probes sent even when the load ends sooner


@dataclass
class StreamRun:
    streams: int
    open_seconds: float
    latencies: list[float] = field(default_factory=list)  # send answered -> event arrived
    lost: int = 0  # probes whose event never arrived
    heartbeats: int = 0
    load: Any = None  # what the load callable answered
    rss_mb: dict[str, float] = field(default_factory=dict)  # with the streams open
    rss_before_mb: dict[str, float] = field(default_factory=dict)  # before they opened
    # The HTTP workers' CPU per second with the streams open and nothing sent (their
    # heartbeats and the per-worker polls), all workers together, in ms.
    idle_cpu_ms_per_s: float = 0.0


class _Stream:
    """One open stream: reads frames forever, noting when each package's event arrived."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.arrived: dict[str, float] = {}
        self.heartbeats = 0

    async def follow(self) -> None:
        try:
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    return
                now = time.monotonic()
                for line in chunk[:-2].split(b"\n"):
                    if line.startswith(b"data: "):
                        self.arrived[json.loads(line[6:])["package_id"]] = now
                    elif line.startswith(b": heartbeat"):
                        self.heartbeats += 1
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            return

    def close(self) -> None:
        self.writer.close()


async def _open(host: str, port: int, recipient_id: str) -> _Stream:
    reader, writer = await asyncio.open_connection(host, port)
    path = STREAM_PATH.format(recipient_id=recipient_id)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    status = int((await reader.readline()).split()[1])
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    if status != 200:
        writer.close()
        raise RuntimeError(f"a stream was refused: {status}")
    return _Stream(reader, writer)


async def _send(host: str, port: int, recipient_id: str, package_id: str) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        body = json.dumps(
            {
                "timestamp": "2026-02-01T00:00:00Z",
                "sender_id": "bench-live",
                "recipient_id": recipient_id,
                "package_id": package_id,
                "package_type": "personal",
            }
        ).encode()
        writer.write(
            f"POST /v1/packages HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        status = int((await reader.readline()).split()[1])
        await reader.read()
        return status
    finally:
        writer.close()


async def _run(
    host: str,
    port: int,
    streams: int,
    probes: int,
    run_id: str,
    load: Callable[[], Any],
    rss: Callable[[], dict[str, float]],
    cpu: Callable[[], float],
) -> StreamRun:
    recipients = [f"{run_id}-live-{i}" for i in range(streams)]
    before = rss()
    started = time.monotonic()
    opened: list[_Stream] = []
    for start in range(0, streams, OPEN_AT_ONCE):
        batch = recipients[start : start + OPEN_AT_ONCE]
        opened += await asyncio.gather(*(_open(host, port, r) for r in batch))
    run = StreamRun(streams=streams, open_seconds=time.monotonic() - started, rss_before_mb=before)
    readers = [asyncio.create_task(stream.follow()) for stream in opened]
    answered: dict[str, tuple[_Stream, float]] = {}
    try:
        idle_from, idle_started = cpu(), time.monotonic()
        await asyncio.sleep(IDLE_SECONDS)
        run.idle_cpu_ms_per_s = (cpu() - idle_from) * 1000 / (time.monotonic() - idle_started)
        loading = asyncio.create_task(asyncio.to_thread(load))
        chooser = random.Random(7)
        for n in range(probes):
            index = chooser.randrange(streams)
            package_id = f"{run_id}-probe-{n}"
            status = await _send(host, port, recipients[index], package_id)
            if status == 201:
                answered[package_id] = (opened[index], time.monotonic())
            if loading.done() and n >= MIN_PROBES:
                break  # the load is over: what follows would measure an idle server
            await asyncio.sleep(0.02)
        run.rss_mb = rss()
        run.load = await loading
        await asyncio.sleep(1.5)  # the last probes' events
    finally:
        for stream in opened:
            stream.close()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    for package_id, (stream, at) in answered.items():
        if package_id in stream.arrived:
            run.latencies.append(stream.arrived[package_id] - at)
        else:
            run.lost += 1
    run.heartbeats = sum(stream.heartbeats for stream in opened)
    run.latencies.sort()
    return run


def run(
    host: str,
    port: int,
    streams: int,
    probes: int,
    run_id: str,
    load: Callable[[], Any],
    rss: Callable[[], dict[str, float]],
    cpu: Callable[[], float],
) -> StreamRun:
    """Open ``streams`` streams, idle a moment (``cpu``: the workers' CPU seconds so far),
    then run ``load`` (in a thread) and ``probes`` probes beside it."""
    return asyncio.run(_run(host, port, streams, probes, run_id, load, rss, cpu))
