"""``make cluster-faults``: a node lost mid-load, then a Redis master's data; the invariants.

    sudo .venv/bin/python scripts/cluster_faults.py [--nodes 2] [--rate 40] [--phase 20]

Starts the cluster lab (tests/cluster_lab.py: namespaces, HAProxy, PostgreSQL
database ``galaxy_cluster_faults``, dropped and re-created, a 3-master Redis
Cluster) on ports of its own, then drives the soak's mixed traffic through
HAProxy with a client that retries lost connections and 502/503/504 with the
same request (an interplanetary client: every operation is safe to repeat).
One --phase (seconds) each:

1. traffic on every node;
2. every process of node 2 SIGKILLed at once (``ip netns pids``), traffic goes on;
3. node 2 restarted, back in HAProxy's rotation;
4. one Redis master SIGKILLed (its data is gone: no persistence, no replica);
5. that master restarted empty, ``python -m galaxy_express.runtime.rebuild`` run;
6. traffic, then the unanswered sends finished.

Then it checks: every accepted package stored once; statistics equal the
stored rows; every spam count (read through the API, so from Redis) equal to
its distinct reporters in the database; each report window written once
across the nodes; no 5xx and no client-side error beyond what the retries
absorbed. It prints the soak's tables and one summary line; exit 0 when all hold.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import soak  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from tests.cluster_lab import Lab, LabConfig, missing_requirements  # noqa: E402
from tests.launched import Launched  # noqa: E402

RETRIES = 8  # 0.1 s doubling to 2 s: about 10 s, more than HAProxy needs to drop a node


def main() -> int:
    args = _parse_args()
    why_not = missing_requirements()
    if why_not:
        sys.exit(f"cluster-faults: {why_not}")
    lab = Lab(
        LabConfig(
            nodes=args.nodes,
            http_port=args.http_port,
            thrift_port=args.http_port + 1,
            prefix="gf",
            subnet="10.78.0",
            redis_ports=(7201, 7202, 7203),
            database="galaxy_cluster_faults",
            fresh_database=True,
            report_interval_seconds=5,
            var_dir=ROOT / "var" / "cluster-faults",
            quiet=True,
        )
    )
    try:
        lab.start()
        print(lab.describe(), flush=True)
        return run(lab, args)
    finally:
        lab.stop()


def run(lab: Lab, args: argparse.Namespace) -> int:
    record = soak.Record()
    balancer = Launched(lab.haproxy, lab.config.http_port, lab.config.thrift_port)  # type: ignore[arg-type]
    routes = soak._routes(balancer)
    traffic = soak.Traffic(soak.Client(lab.config.http_port, record, RETRIES), record, routes)
    operations, weights = zip(*((op, w) for w, op in traffic.mix()), strict=True)
    events: list[str] = []
    victim = lab.nodes[-1]
    master = lab.redis.nodes[0] if lab.redis else None

    def note(text: str) -> None:
        events.append(text)
        print(f"faults: {time.monotonic() - started:5.1f} s: {text}", flush=True)

    def kill_node() -> None:
        pids = lab.kill_node(victim)
        note(f"node {victim.index}: SIGKILL to its {len(pids)} processes")

    def restart_node() -> None:
        lab.start_node(victim)
        lab.wait_until_serving()
        note(f"node {victim.index}: restarted, back in rotation")

    def kill_master() -> None:
        assert lab.redis is not None
        assert master is not None
        lab.redis.kill_node(master)
        note(f"Redis master {master}: SIGKILLed, its data lost")

    def restart_master_and_rebuild() -> None:
        assert lab.redis is not None
        assert master is not None
        lab.redis.start_node(master)
        lab.redis.wait_until_ok(30)
        note(f"Redis master {master}: restarted empty; {rebuild(lab)}")

    phases: list[Callable[[], None] | None] = [
        None,
        kill_node,
        restart_node,
        kill_master,
        restart_master_and_rebuild,
        None,
    ]
    stop = threading.Event()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        driver = threading.Thread(
            target=_drive, args=(pool, operations, weights, record, args.rate, stop)
        )
        driver.start()
        try:
            for action in phases:
                if action is not None:
                    action()
                time.sleep(args.phase)  # after the action: a slow restart shortens no phase
        finally:
            stop.set()
            driver.join()
    traffic.finish_unanswered()
    elapsed = time.monotonic() - started
    ticks = sum(record.statuses.values())
    soak._report_traffic(record, ticks, elapsed)
    print(f"  attempts absorbed by retries: {dict(record.retried) or 'none'}")
    checks = soak.check_invariants(balancer, lab.local_database_url, record, traffic)
    checks.append(_windows_written_once(lab))
    print("\nInvariants:")
    for ok, line in checks:
        print(f"  [{'ok' if ok else 'FAILED'}] {line}")
    failed = [line.split(":")[0] for ok, line in checks if not ok]
    print(
        f"\ncluster-faults: {'PASS' if not failed else 'FAIL'}: {lab.config.nodes} nodes, "
        f"{len(record.accepted)} packages accepted and stored once, "
        f"{sum(len(r) for r in record.reporters.values())} spam reports counted exactly, "
        f"{ticks} answers in {elapsed:.0f} s, "
        f"{sum(record.retried.values())} attempts absorbed by retries, "
        f"{len(record.server_errors)} 5xx, events: {'; '.join(events)}"
        + (f"; failed: {failed}" if failed else ""),
        flush=True,
    )
    return 0 if not failed else 1


def _drive(
    pool: ThreadPoolExecutor,
    operations: tuple[Any, ...],
    weights: tuple[float, ...],
    record: soak.Record,
    rate: int,
    stop: threading.Event,
) -> None:
    started, tick = time.monotonic(), 0
    while not stop.is_set():
        pool.submit(soak._guarded, random.choices(operations, weights)[0], record)
        tick += 1
        time.sleep(max(0.0, started + tick / rate - time.monotonic()))


def rebuild(lab: Lab) -> str:
    """``make rebuild-spam-counts`` against the cluster, from the host."""
    env = dict(os.environ)
    env["DATABASE_URL"] = lab.local_database_url
    env["REDIS_CLUSTER_NODES"] = lab.redis.startup_nodes if lab.redis else ""
    argv = [sys.executable, "-m", "galaxy_express.runtime.rebuild", "--config", "configs/local.ini"]
    result = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()[-1]


def _windows_written_once(lab: Lab) -> tuple[bool, str]:
    """Windows follow each other without overlap, and each one's files are in one node's folder."""
    engine = create_engine(lab.local_database_url, future=True)
    with engine.connect() as connection:
        rows = connection.execute(
            text('SELECT start, "end", status FROM report_windows ORDER BY start')
        ).all()
    engine.dispose()
    gaps = sum(1 for a, b in itertools.pairwise(rows) if a.end != b.start)
    written = sum(1 for row in rows if row.status == "written")
    writers: dict[str, set[int]] = {}
    for node in lab.nodes:
        for path in node.reports_dir.glob("task_report_*.json"):
            window = "_".join(path.stem.split("_")[-2:])
            writers.setdefault(window, set()).add(node.index)
    twice = [window for window, nodes in writers.items() if len(nodes) > 1]
    by_node = Counter(index for nodes in writers.values() for index in nodes)
    return (
        bool(rows) and gaps == 0 and not twice,
        f"each report window written once across nodes: {len(rows)} windows "
        f"({written} written, {gaps} gaps), files of {len(writers)} windows by node "
        f"{dict(by_node)}, {len(twice)} windows written by two nodes",
    )


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--rate", type=int, default=40, help="operations per second")
    parser.add_argument("--concurrency", type=int, default=16, help="client threads")
    parser.add_argument("--phase", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--http-port", type=int, default=19290, help="HAProxy's (Thrift: +1)")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
