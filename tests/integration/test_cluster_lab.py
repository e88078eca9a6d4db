"""Two machines (network namespaces) behind HAProxy: a send on one node, its read on the other.

Needs root and Debian's haproxy (skipped otherwise); uses its own subnet,
names, ports and PostgreSQL database (dropped at the end), so it can run
beside ``make cluster``.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql

from tests.cluster_lab import (
    Lab,
    LabConfig,
    free_cluster_ports,
    missing_requirements,
    unique_lab_names,
)
from tests.conftest import POSTGRES_URL, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgresql,
    pytest.mark.skipif(missing_requirements() is not None, reason=str(missing_requirements())),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    http_port = free_port()
    prefix, subnet = unique_lab_names()  # a run of its own: no fixed name to collide on
    config = LabConfig(
        nodes=2,
        http_port=http_port,
        thrift_port=free_port(),
        prefix=prefix,
        subnet=subnet,
        redis_ports=tuple(free_cluster_ports(3)),
        postgres_admin_url=POSTGRES_URL,
        database=f"galaxy_cluster_test_{uuid.uuid4().hex[:8]}",
        fresh_database=True,
        var_dir=tmp_path_factory.mktemp("lab"),
        quiet=True,
    )
    running = Lab(config)
    running.start()
    try:
        yield running
    finally:
        running.stop()
        _drop_database(config.database)


def _drop_database(name: str) -> None:
    connection = psycopg2.connect(POSTGRES_URL)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            cursor.execute(statement.format(sql.Identifier(name)))
    finally:
        connection.close()


def request(lab: Lab, method: str, path: str, body: Any = None) -> tuple[int, str, Any]:
    """One request through HAProxy on a fresh connection: status, serving node, JSON."""
    connection = http.client.HTTPConnection("127.0.0.1", lab.config.http_port, timeout=30)
    try:
        payload = None if body is None else json.dumps(body)
        connection.request(method, path, payload, {"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        return response.status, response.getheader("X-Served-By", ""), json.loads(data)
    finally:
        connection.close()


def test_a_package_sent_through_one_node_is_read_through_the_other(lab: Lab) -> None:
    package_id = f"lab-{uuid.uuid4().hex[:12]}"
    body = {
        "timestamp": 1767225600,
        "sender_id": "lab-sender",
        "recipient_id": "lab-recipient",
        "package_id": package_id,
        "package_type": "personal",
    }
    status, sent_by, answer = request(lab, "POST", "/v1/packages", body)
    assert (status, answer["package_id"]) == (201, package_id)

    reads = [request(lab, "GET", f"/v1/packages/{package_id}") for _ in range(4)]

    other = [read for read in reads if read[1] != sent_by]
    assert other, f"round robin never reached the other node: {[r[1] for r in reads]}"
    assert all(status == 200 and read["package_id"] == package_id for status, _, read in other)
    assert {sent_by, *(node for _, node, _ in reads)} == {"node1", "node2"}


def test_haproxy_keeps_both_nodes_in_rotation_by_their_health(lab: Lab) -> None:
    assert lab.backend_states() == {"node1": "UP", "node2": "UP"}
    liveness = request(lab, "GET", "/health?type=liveness")
    assert (liveness[0], liveness[2]) == (200, {"status": "ok"})


def test_a_node_that_cannot_reach_the_database_is_taken_out_until_it_can(lab: Lab) -> None:
    node = lab.nodes[1]
    lab.cut_database(node)
    try:
        out = _wait_for_state(lab, "node2", "DOWN")
        served = {request(lab, "GET", "/health?type=liveness")[1] for _ in range(4)}
    finally:
        lab.restore_database(node)
    back = _wait_for_state(lab, "node2", "UP")

    assert out == {"node1": "UP", "node2": "DOWN"}
    assert served == {"node1"}
    assert back == {"node1": "UP", "node2": "UP"}


def _wait_for_state(lab: Lab, name: str, state: str, seconds: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + seconds
    while (states := lab.backend_states()).get(name) != state and time.monotonic() < deadline:
        time.sleep(0.2)
    return states
