"""The benchmark's Thrift load generator: several processes, framed binary, the C codec.

    .venv/bin/python scripts/thrift_load.py --port 9091 --method send_package \
        --connections 64 --duration 10

wrk speaks only HTTP, so the Thrift rows of ``make bench`` come from here. The
generator must not be the bottleneck, and on two cores it shares with the
service it easily could be, so each request costs it as little as Python
allows: the project's generated client encodes and decodes its structs with
thrift-unofficial's C codec (``TBinaryProtocolAccelerated``, i.e. fastbinary),
in memory, and a bare epoll loop moves the framed bytes (a 4-byte length, then
the message: the framed binary transport, one of those the server accepts)
over keep-alive connections, each sending its next call as soon as the last is
answered. The connections are split over ``--processes`` processes (one per 32
connections, at most 2, by default), so the client has cores too.

Every process counts its answers and their latencies and reports its own CPU
time (user + system, ``resource.getrusage``): the benchmark compares it with
the Thrift workers' (the client's CPU per request must stay below theirs,
or the row would measure the client).

``send_package`` sends what ``scripts/wrk/send_package.lua`` sends over HTTP:
unique ids, both package types, recipients of whom every tenth opted out of
marketing (the benchmark sets that up), and every tenth call a retry of an id
sent at least 200 calls earlier, identical, answered ``replayed``.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import random
import resource
import select
import socket
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from baseplate.thrift.ttypes import Error  # noqa: E402
from thrift.protocol.TBinaryProtocol import TBinaryProtocolAccelerated  # noqa: E402
from thrift.transport.TTransport import TMemoryBuffer  # noqa: E402

from galaxy_express.thrift.gen import GalaxyExpress, ttypes  # noqa: E402

METHODS = ("send_package", "get_statistics", "list_inbox")
RETRY_EVERY = 10
RETRY_DISTANCE = 200  # retry ids sent this many calls ago: their first answer is in
FIRST_MILLIS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CONNECTIONS_PER_PROCESS = 32
MAX_PROCESSES = 2
ANSWER_TIMEOUT_SECONDS = 10  # after the deadline, for the calls in flight
RECEIVE_BYTES = 65536


@dataclass
class Load:
    """What all the processes measured together."""

    answers: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds, sorted
    seconds: float = 0.0  # the measured window
    client_cpu_seconds: float = 0.0
    socket_errors: int = 0

    @property
    def errors(self) -> int:
        return self.socket_errors + sum(
            n for outcome, n in self.outcomes.items() if outcome not in ("ok", "replayed")
        )


def default_processes(connections: int) -> int:
    return max(1, min(MAX_PROCESSES, -(-connections // CONNECTIONS_PER_PROCESS)))


def run(
    host: str,
    port: int,
    method: str,
    connections: int,
    duration: float,
    *,
    prefix: str = "run",
    recipients: int = 1000,
    inbox_recipient: str = "bench-hot",
    processes: int | None = None,
) -> Load:
    """Drive ``method`` over ``connections`` for ``duration`` seconds; what was measured."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    count = min(connections, processes or default_processes(connections))
    shares = [connections // count + (i < connections % count) for i in range(count)]
    context = multiprocessing.get_context("fork")  # starts at once: nothing to import again
    ready, results = context.Queue(), context.Queue()
    go = context.Event()
    workers = [
        context.Process(
            target=_process,
            args=(
                host,
                port,
                method,
                share,
                f"{prefix}-p{i}",
                recipients,
                inbox_recipient,
                ready,
                go,
                results,
            ),
            kwargs={"duration": duration},
            daemon=True,
        )
        for i, share in enumerate(shares)
    ]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            problem = ready.get(timeout=60)
            if problem:
                raise RuntimeError(f"thrift load: {problem}")
        go.set()
        reports = [results.get(timeout=duration + 60) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    load = Load()
    outcomes: Counter[str] = Counter()
    for report in reports:
        load.answers += report["answers"]
        outcomes.update(report["outcomes"])
        load.latencies += report["latencies"]
        load.seconds = max(load.seconds, report["seconds"])
        load.client_cpu_seconds += report["cpu_seconds"]
        load.socket_errors += report["socket_errors"]
    load.outcomes = dict(outcomes)
    load.latencies.sort()
    return load


def _process(
    host: str,
    port: int,
    method: str,
    connections: int,
    prefix: str,
    recipients: int,
    inbox_recipient: str,
    ready: Any,
    go: Any,
    results: Any,
    *,
    duration: float,
) -> None:
    try:
        sockets = _connect(host, port, connections)
    except OSError as exc:
        ready.put(f"could not connect to {host}:{port}: {exc}")
        return
    ready.put("")
    go.wait()
    cpu_before = _cpu_seconds()
    report = _drive(sockets, method, duration, prefix, recipients, inbox_recipient)
    report["cpu_seconds"] = _cpu_seconds() - cpu_before
    results.put(report)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _connect(host: str, port: int, connections: int) -> list[socket.socket]:
    # Connected before the start signal, so the row measures calls, not handshakes.
    sockets = []
    for _ in range(connections):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sockets.append(sock)
    return sockets


def _drive(
    sockets: list[socket.socket],
    method: str,
    duration: float,
    prefix: str,
    recipients: int,
    inbox_recipient: str,
) -> dict[str, Any]:
    """Each connection sends its next call as soon as the last is answered, until the deadline.

    A bare epoll loop rather than asyncio: per call it costs one ``recv`` and one
    ``send`` and a few lines of Python, where asyncio's streams and tasks cost the
    client more CPU than the codec (at 64 connections, 0.12 ms a call against
    wrk's 0.05 for an HTTP send, on the cores the workers need).
    """
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    socket_errors = 0
    poller = select.epoll()
    connections: dict[int, _Connection] = {}
    started = time.monotonic()
    deadline = started + duration
    for index, sock in enumerate(sockets):
        connection = _Connection(
            sock, _Calls(method, f"{prefix}-c{index}", recipients, inbox_recipient)
        )
        connections[sock.fileno()] = connection
        poller.register(sock.fileno(), select.EPOLLIN)
        connection.call()
    # After the deadline no connection sends again; the answers in flight are still counted.
    while connections:
        ready = poller.poll(1.0)
        if not ready and time.monotonic() > deadline + ANSWER_TIMEOUT_SECONDS:
            socket_errors += len(connections)  # calls never answered
            break
        for fd, _events in ready:
            connection = connections[fd]
            try:
                answer = connection.receive()
            except BlockingIOError:
                continue  # woken with nothing to read after all
            except OSError:
                answer, socket_errors = None, socket_errors + 1
                connection.closed = True
            if answer is not None:
                latencies.append(time.perf_counter() - connection.sent)
                outcomes[connection.calls.outcome(answer)] += 1
                if time.monotonic() < deadline:
                    connection.call()
                    continue
                connection.closed = True
            if connection.closed:
                poller.unregister(fd)
                connection.sock.close()
                del connections[fd]
    poller.close()
    return {
        "answers": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "latencies": latencies,
        "seconds": time.monotonic() - started,
        "socket_errors": socket_errors,
    }


class _Connection:
    """One keep-alive connection with at most one call in flight."""

    def __init__(self, sock: socket.socket, calls: _Calls) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.calls = calls
        self.buffer = bytearray()
        self.sent = 0.0
        self.closed = False

    def call(self) -> None:
        frame = self.calls.next_frame()
        self.sent = time.perf_counter()
        # A frame of a few hundred bytes into an empty send buffer (the last call
        # was answered, so nothing of ours waits there): one send takes it all.
        if self.sock.send(frame) != len(frame):
            raise OSError("a call did not fit the socket's empty send buffer")

    def receive(self) -> bytes | None:
        """The answer once all its frame has arrived; None until then."""
        data = self.sock.recv(RECEIVE_BYTES)
        if not data:
            raise OSError("the server closed the connection")
        self.buffer += data
        if len(self.buffer) < 4:
            return None
        size = struct.unpack_from("!i", self.buffer)[0]
        if len(self.buffer) < 4 + size:
            return None
        answer = bytes(self.buffer[4 : 4 + size])
        del self.buffer[: 4 + size]
        return answer


class _Calls:
    """One connection's calls, encoded by the generated client through the C codec."""

    def __init__(self, method: str, prefix: str, recipients: int, inbox_recipient: str) -> None:
        self.method = method
        self.prefix = prefix
        self.recipients = recipients
        self.inbox = ttypes.ListInboxRequest(recipient_id=inbox_recipient, limit=50)
        self.calls = 0
        self.fresh = 0
        self.out = TMemoryBuffer()
        self.answers = TMemoryBuffer()
        self.client = GalaxyExpress.Client(
            TBinaryProtocolAccelerated(self.answers), TBinaryProtocolAccelerated(self.out)
        )

    def next_frame(self) -> bytes:
        self.out._buffer.seek(0)
        self.out._buffer.truncate()
        if self.method == "send_package":
            self.client.send_send_package(self._package())
        elif self.method == "get_statistics":
            self.client.send_get_statistics()
        else:
            self.client.send_list_inbox(self.inbox)
        message = self.out.getvalue()
        return struct.pack("!i", len(message)) + message

    def outcome(self, answer: bytes) -> str:
        self.answers._buffer = io.BytesIO(answer)  # the protocol reads on from it
        try:
            result = getattr(self.client, f"recv_{self.method}")()
        except Error as error:
            return f"error {error.code}"
        except Exception as error:  # a TApplicationException: the server failed the call
            return f"failed: {type(error).__name__}"
        return "replayed" if getattr(result, "replayed", False) else "ok"

    def _package(self) -> ttypes.SendPackageRequest:
        self.calls += 1
        if self.calls % RETRY_EVERY == 0 and self.fresh > RETRY_DISTANCE:
            n = random.randint(1, self.fresh - RETRY_DISTANCE)
        else:
            self.fresh += 1
            n = self.fresh
        return ttypes.SendPackageRequest(
            timestamp=FIRST_MILLIS + n * 1000,
            sender_id=f"bench-s{n % 50}",
            recipient_id=f"bench-r{(n // 2) % self.recipients}",
            package_id=f"{self.prefix}-{n}",
            package_type="personal" if n % 2 == 0 else "marketing",
            content=ttypes.Content(subject=f"Package {n}", body="Greetings from the benchmark."),
        )


def _percentile(sorted_values: list[float], percent: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(percent / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9091)
    parser.add_argument("--method", choices=METHODS, default="send_package")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument(
        "--processes", type=int, default=None, help="default: 1 per 32 conns, at most 2"
    )
    parser.add_argument("--prefix", default=f"tl{int(time.time())}")
    args = parser.parse_args()
    load = run(
        args.host,
        args.port,
        args.method,
        args.connections,
        args.duration,
        prefix=args.prefix,
        processes=args.processes,
    )
    print(
        json.dumps(
            {
                "calls_per_second": round(load.answers / load.seconds, 1),
                "p50_ms": round(_percentile(load.latencies, 50) * 1000, 2),
                "p99_ms": round(_percentile(load.latencies, 99) * 1000, 2),
                "outcomes": load.outcomes,
                "socket_errors": load.socket_errors,
                "client_cpu_ms_per_call": round(
                    load.client_cpu_seconds * 1000 / max(load.answers, 1), 3
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
