"""Scale-out: four HTTP workers on one port over PostgreSQL, racing retries of the same ids."""

from __future__ import annotations

import http.client
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import gevent
import pytest
from sqlalchemy import create_engine, func, select

from galaxy_express.delivery.models import Package
from galaxy_express.inbox.models import InboxEntry
from tests.launched import launch
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


@pytest.mark.postgresql
def test_racing_clients_across_four_workers_store_each_package_once(
    postgres_database: str, redis_url: str, tmp_path: Path
) -> None:
    from tests.conftest import _empty_tables

    _empty_tables(postgres_database)
    launched = launch(
        postgres_database, redis_url, tmp_path / "var", workers=WORKERS, thrift_workers=0
    )
    port = launched.http_port
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
        launched.wait_until_serving(http_workers=WORKERS)
        # Every client sends every id: the same requests race across all workers.
        clients = [
            gevent.spawn(lambda: [post(port, body) for body in bodies]) for _ in range(CLIENTS)
        ]
        gevent.joinall(clients, raise_error=True)
        statuses = Counter(status for client in clients for status in client.value)
    finally:
        launched.stop()

    assert statuses == {201: IDS, 200: IDS * (CLIENTS - 1)}
    engine = create_engine(postgres_database, future=True)
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(Package)).scalar_one()
        inbox = connection.execute(select(func.count()).select_from(InboxEntry)).scalar_one()
    engine.dispose()
    assert stored == inbox == IDS
