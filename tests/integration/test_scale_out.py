"""Scale-out: four HTTP workers on one port over PostgreSQL, racing retries of the same ids."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import gevent
import pytest
from sqlalchemy import create_engine, func, select

from galaxy_express.delivery.models import Package
from galaxy_express.inbox.models import InboxEntry
from tests.conftest import ROOT, TEST_CONFIG, free_port
from tests.support import new_id

pytestmark = pytest.mark.slow  # starts processes or runs many generated cases

WORKERS = 4
CLIENTS = 24
IDS = 40


def post(port: int, body: Mapping[str, object]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "POST", "/v1/packages", json.dumps(body), {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def wait_until_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the launcher exited"
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("not healthy")


@pytest.mark.postgresql
def test_racing_clients_across_four_workers_store_each_package_once(
    postgres_database: str, redis_url: str, tmp_path: Path
) -> None:
    from tests.conftest import _empty_tables

    _empty_tables(postgres_database)
    port = free_port()
    env = os.environ | {"DATABASE_URL": postgres_database, "REDIS_URL": redis_url}
    argv = [sys.executable, "-m", "galaxy_express.runtime.launcher", "--config", str(TEST_CONFIG)]
    argv += ["--workers", str(WORKERS), "--thrift-workers", "0", "--no-reporter"]
    argv += ["--http-port", str(port), "--var-dir", str(tmp_path / "var")]
    launcher = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    ids = [new_id("scale") for _ in range(IDS)]
    bodies = [
        {
            "timestamp": "2142-01-01T00:00:00Z",
            "sender_id": "fleet",
            "recipient_id": f"crew-{index % 5}",
            "package_id": package_id,
            "package_type": "personal",
        }
        for index, package_id in enumerate(ids)
    ]
    try:
        wait_until_healthy(port, launcher)
        # Every client sends every id: the same requests race across all workers.
        clients = [
            gevent.spawn(lambda: [post(port, body) for body in bodies]) for _ in range(CLIENTS)
        ]
        gevent.joinall(clients, raise_error=True)
        statuses = Counter(status for client in clients for status in client.value)
    finally:
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=30)

    assert statuses == {201: IDS, 200: IDS * (CLIENTS - 1)}
    engine = create_engine(postgres_database, future=True)
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(Package)).scalar_one()
        inbox = connection.execute(select(func.count()).select_from(InboxEntry)).scalar_one()
    engine.dispose()
    assert stored == inbox == IDS
