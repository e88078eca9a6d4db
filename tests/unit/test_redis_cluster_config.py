"""Which Redis client the configuration selects."""

from __future__ import annotations

import pytest
from baseplate.clients.redis import RedisClient

from galaxy_express.core.redis_cluster import Node, cluster_nodes, redis_client


def test_a_single_redis_stays_the_default() -> None:
    assert cluster_nodes({"redis.url": "redis://127.0.0.1:6379/0"}) == []
    assert isinstance(redis_client({"redis.url": "redis://127.0.0.1:6379/0"}), RedisClient)


def test_cluster_nodes_are_listed_by_spaces_or_commas() -> None:
    listed = {"redis.cluster_nodes": "10.0.0.1:7001, 10.0.0.2:7002 [::1]:7003"}
    assert cluster_nodes(listed) == [
        Node("10.0.0.1", 7001),
        Node("10.0.0.2", 7002),
        Node("::1", 7003),
    ]
    assert str(Node("::1", 7003)) == "[::1]:7003"


@pytest.mark.parametrize("value", ["10.0.0.1", "10.0.0.1:port", ":7001"])
def test_a_cluster_node_without_host_and_port_fails_naming_the_key(value: str) -> None:
    with pytest.raises(ValueError, match=r"redis\.cluster_nodes"):
        cluster_nodes({"redis.cluster_nodes": value})
