"""How long /health waits while big on-demand reports are built.

    .venv/bin/python scripts/bench_report_stall.py [--tasks 3000] [--reports 10]

Starts the service as `make run` does (the launcher, one HTTP worker, so every
request shares one gevent hub) on free ports with its own SQLite file under
var/bench-reports and the Redis at --redis-url, creates one user with --tasks
open tasks, then asks for --reports reports over 366 days at once while a
second client probes /health every 20 ms. Prints the reports' time and size
and the probes' latency (median, p99, max), and the same probes' latency
for as long again with no report running (idle, measured in the same run so
that a busy machine shows in both figures).
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_express.runtime import migrate  # noqa: E402
from tests.launched import launch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--reports", type=int, default=10)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument(
        "--probe",
        default="/health",
        help="what to probe: /health (readiness: asks the database too, so it waits for the "
        "worker's connection) or /health?type=liveness (the hub alone)",
    )
    args = parser.parse_args()
    var_dir = ROOT / "var" / "bench-reports"
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    url = f"sqlite:///{var_dir / 'bench.db'}"
    migrate.upgrade(url)
    service = launch(url, args.redis_url, var_dir, workers=1, quiet=True)
    try:
        service.wait_until_serving()
        owner = "bench-owner"
        service.request("POST", "/v1/users", {"id": owner, "username": "bench"})
        for index in range(args.tasks):
            status, _, task = service.request("POST", "/v1/tasks", {"name": f"task {index}"})
            assert status == 201, status
            status, _, _ = service.request("PUT", f"/v1/tasks/{task['id']}/assignees/{owner}")
            assert status in (200, 201, 204), status
        measure(service.http_port, owner, args.reports, args.probe)
    finally:
        service.stop()


def measure(port: int, owner: str, reports: int, probe_path: str) -> None:
    now = int(time.time())
    path = f"/v1/reports/tasks?user_id={owner}&start={now - 365 * 86400}&end={now + 3600}"
    sizes: list[int] = []
    probes: list[float] = []
    done = threading.Event()

    def report() -> None:
        sizes.append(len(get(port, path)))

    def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            get(port, probe_path)
            probes.append(time.perf_counter() - started)
            time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    time.sleep(0.2)
    started = time.perf_counter()
    threads = [threading.Thread(target=report) for _ in range(reports)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    done.set()
    prober.join()
    during = list(probes)
    idle = idle_probes(port, probe_path, max(elapsed, 3.0))
    print(f"{reports} reports in parallel: {elapsed:.2f} s, {max(sizes) / 1e6:.2f} MB each")
    print(f"{probe_path} latency during them {summary(during)}")
    print(f"{probe_path} latency idle        {summary(idle)}")


def idle_probes(port: int, probe_path: str, seconds: float) -> list[float]:
    """/health's latency, probed as during the reports, with nothing else running."""
    probes: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        get(port, probe_path)
        probes.append(time.perf_counter() - started)
        time.sleep(0.02)
    return probes


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    return (
        f"({len(ordered)} probes): median {statistics.median(ordered) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
    )


def get(port: int, path: str) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, (response.status, body[:200])
        return body
    finally:
        connection.close()


if __name__ == "__main__":
    main()
