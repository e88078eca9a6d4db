"""The real thing: `make run`'s launcher, baseplate-serve workers, real sockets."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from baseplate.thrift.ttypes import Error
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.transport.TSocket import TSocket
from thrift.transport.TTransport import TBufferedTransport

from galaxy_express.clock import to_millis
from galaxy_express.thrift.gen import GalaxyExpress
from tests.conftest import ROOT, TEST_CONFIG, free_port, new_id


class Servers:
    def __init__(self, http_port: int, thrift_port: int, process: subprocess.Popen[bytes]):
        self.http_port, self.thrift_port, self.process = http_port, thrift_port, process
        self.log: Path | None = None

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log else ""

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        payload = None if body is None else json.dumps(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        connection.request(method, path, payload, headers)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, dict(response.getheaders()), json.loads(data) if data else None


@pytest.fixture
def servers(sqlite_url: str, redis_url: str, tmp_path: Path) -> Iterator[Servers]:
    http_port, thrift_port = free_port(), free_port()
    env = os.environ | {"DATABASE_URL": sqlite_url, "REDIS_URL": redis_url}
    argv = [sys.executable, "-m", "galaxy_express.launcher", "--config", str(TEST_CONFIG)]
    argv += ["--workers", "2", "--thrift-workers", "1", "--no-reporter"]
    argv += ["--http-port", str(http_port), "--thrift-port", str(thrift_port)]
    argv += ["--var-dir", str(tmp_path / "var")]
    log = tmp_path / "launcher.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=output, stderr=output)
    servers = Servers(http_port, thrift_port, process)
    servers.log = log
    try:
        _wait_until_healthy(servers)
        yield servers
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_until_healthy(servers: Servers) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if servers.request("GET", "/health")[0] == 200:
                return
        except OSError:
            pass
        assert servers.process.poll() is None, f"the launcher exited:\n{servers.log_tail()}"
        time.sleep(0.2)
    raise TimeoutError(f"the servers did not become healthy:\n{servers.log_tail()}")


def test_http_and_thrift_serve_one_service_and_stop_cleanly(servers: Servers) -> None:
    package_id = new_id("real")
    body = {
        "timestamp": "2142-03-04T05:06:07Z",
        "sender_id": "moon-base",
        "recipient_id": "venus-7",
        "package_id": package_id,
        "package_type": "personal",
    }
    status, _, created = servers.request("POST", "/v1/packages", body)
    replay_status, replay_headers, _ = servers.request("POST", "/v1/packages", body)

    transport = TBufferedTransport(TSocket("127.0.0.1", servers.thrift_port))
    client = GalaxyExpress.Client(TBinaryProtocol(transport))
    transport.open()
    try:
        over_thrift = client.get_package(package_id)
        with pytest.raises(Error) as missing:
            client.get_package("missing")
    finally:
        transport.close()

    assert status == 201
    assert (replay_status, replay_headers.get("Idempotent-Replayed")) == (200, "true")
    assert over_thrift.timestamp == to_millis(datetime(2142, 3, 4, 5, 6, 7, tzinfo=UTC))
    assert over_thrift.status == created["status"] == "delivered"
    assert missing.value.code == 404

    stopping = time.monotonic()
    servers.process.send_signal(signal.SIGTERM)
    assert servers.process.wait(timeout=30) == 0, servers.log_tail()
    # No worker hangs on shutdown (e.g. a trace exporter retrying a missing collector).
    assert time.monotonic() - stopping < 15
