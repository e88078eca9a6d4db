"""``make cluster NODES=n``: n machines (network namespaces) behind HAProxy, until Ctrl-C.

    sudo .venv/bin/python scripts/cluster.py --nodes 3 [--http-port 9090] [--thrift-port 9091]
    sudo .venv/bin/python scripts/cluster.py --nodes 2 --bench 10   # wrk figures, then stop

Each node is a namespace with its own address running the launcher
(``--no-migrate``: the schema is migrated once, from here) with HTTP and
Thrift workers and a reporter; all share one PostgreSQL database
(``galaxy_cluster`` on 127.0.0.1:5432, created if missing) and one 3-master
Redis Cluster. HAProxy balances 127.0.0.1:9090 (HTTP) and :9091 (Thrift) over
the nodes, keeping a node while ``/health?type=liveness`` answers and taking it
out while its readiness says its database is unreachable. Ctrl-C or SIGTERM
stops every process it started and removes the namespaces and links.

``--bench SECONDS`` runs wrk's send-package script straight at node 1 and
through HAProxy, alternately, twice each (what the balancer costs), prints the
figures and stops.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cluster_lab import NODE_HTTP_PORT, Lab, LabConfig, missing_requirements  # noqa: E402

WRK_DIR = ROOT / "scripts" / "wrk"
WRK_PARTS = ("send_package.lua", "report.lua")  # as make bench runs it


def main() -> int:
    args = _parse_args()
    why_not = missing_requirements()
    if why_not:
        sys.exit(f"cluster: {why_not}; the README says how to run the same shape elsewhere")
    lab = Lab(
        LabConfig(
            nodes=args.nodes,
            http_port=args.http_port,
            thrift_port=args.thrift_port,
            database=args.database,
            fresh_database=args.fresh,
            workers=args.workers,
            quiet=args.bench is not None,
        )
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        lab.start()
        print(lab.describe(), flush=True)
        if args.bench is not None:
            bench(lab, args.bench, args.connections)
            return 0
        print("cluster: serving; Ctrl-C stops everything", flush=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print("\ncluster: stopping", flush=True)
        return 0
    finally:
        lab.stop()
        print("cluster: every process stopped, namespaces removed", flush=True)


def bench(lab: Lab, seconds: int, connections: int) -> None:
    """Alternate the two targets (twice each) so a slow spell of the machine hits both."""
    if shutil.which("wrk") is None:
        sys.exit("cluster: --bench needs wrk (Debian: apt-get install wrk)")
    targets = {
        "straight at node 1": f"http://{lab.nodes[0].address}:{NODE_HTTP_PORT}",
        "through HAProxy": f"http://127.0.0.1:{lab.config.http_port}",
    }
    rates: dict[str, list[float]] = {target: [] for target in targets}
    for _ in range(2):
        for target, url in targets.items():
            report = wrk(lab, url, seconds, connections)
            rate = report["requests"] / (report["duration_us"] / 1e6)
            rates[target].append(rate)
            latency = report["latency_us"]
            print(
                f"bench: {lab.config.nodes} node(s), POST /v1/packages {target}, "
                f"{connections} connections, {seconds} s: {rate:.0f}/s, "
                f"p50 {latency['p50'] / 1000:.1f} ms, p99 {latency['p99'] / 1000:.1f} ms, "
                f"answers {report['statuses']}, "
                f"socket errors {sum(report['socket_errors'].values())}",
                flush=True,
            )
    summary = ", ".join(f"{t} {sum(r) / len(r):.0f}/s" for t, r in rates.items())
    print(f"bench: {lab.config.nodes} node(s), mean of 2 runs: {summary}", flush=True)


def wrk(lab: Lab, url: str, seconds: int, connections: int) -> dict[str, Any]:
    """wrk's send-package script (unique ids, 10% retries) with the bench's JSON report."""
    script = lab.config.var_dir / "send_package.lua"
    script.write_text("\n".join((WRK_DIR / name).read_text() for name in WRK_PARTS))
    run = f"cluster-{uuid.uuid4().hex[:8]}"
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    argv += ["-s", str(script), f"{url}/v1/packages", "--", run, "1000"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    report: dict[str, Any] = json.loads(line[len("BENCH ") :])
    return report


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--http-port", type=int, default=9090, help="HAProxy's HTTP port")
    parser.add_argument("--thrift-port", type=int, default=9091, help="HAProxy's Thrift port")
    parser.add_argument("--workers", type=int, default=1, help="HTTP workers per node")
    parser.add_argument("--database", default="galaxy_cluster", help="created if missing")
    parser.add_argument("--fresh", action="store_true", help="drop and re-create the database")
    parser.add_argument("--bench", type=int, metavar="SECONDS", help="measure, then stop")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
