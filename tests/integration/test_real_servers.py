"""The real thing: `make run`'s launcher, baseplate-serve workers, real sockets."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from baseplate.thrift.ttypes import Error
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.transport.TSocket import TSocket
from thrift.transport.TTransport import TBufferedTransport

from galaxy_express.core.clock import to_millis
from galaxy_express.thrift.gen import GalaxyExpress
from tests.launched import Launched, launch
from tests.support import new_id

pytestmark = pytest.mark.slow  # starts processes or runs many generated cases


@pytest.fixture
def servers(sqlite_url: str, redis_url: str, tmp_path: Path) -> Iterator[Launched]:
    launched = launch(sqlite_url, redis_url, tmp_path / "var")
    try:
        launched.wait_until_serving()
        yield launched
    finally:
        launched.stop()


def test_http_and_thrift_serve_one_service_and_stop_cleanly(servers: Launched) -> None:
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
    assert servers.process.wait(timeout=30) == 0
    # No worker hangs on shutdown (e.g. a trace exporter retrying a missing collector).
    assert time.monotonic() - stopping < 15
