"""Which Redis client the configuration selects."""

from __future__ import annotations

import pytest
from baseplate.clients.redis import MonitoredRedisConnection, RedisClient

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


def test_a_request_gets_the_same_redis_client_baseplate_would_make() -> None:
    factory = redis_client({}).parse("redis", {"redis.url": "redis://127.0.0.1:6379/0"})
    made = factory.make_object_for_context("redis", None)
    baseplates = MonitoredRedisConnection("redis", None, factory.connection_pool)
    assert type(made) is MonitoredRedisConnection
    assert vars(made).keys() == vars(baseplates).keys()
    assert made.connection_pool is factory.connection_pool
    assert made.response_callbacks == baseplates.response_callbacks
    assert type(made.response_callbacks) is type(baseplates.response_callbacks)
    assert made.response_callbacks["smembers"] is baseplates.response_callbacks["SMEMBERS"]
    # Each client's table is its own, as redis-py's are (set_response_callback).
    made.set_response_callback("SMEMBERS", int)
    assert factory.make_object_for_context("redis", None).response_callbacks["SMEMBERS"] is not int
